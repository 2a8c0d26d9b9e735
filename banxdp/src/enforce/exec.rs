//! The one executor of external commands (`nft`, `ipset`, `iptables`, action.d commands).
//!
//! Backends build a [`Command`] with pure functions (an argv vector and, for batch tools such as
//! `nft -f -` or `ipset restore`, a script on standard input); [`Executor::run`] runs it with a
//! timeout, captures its output and returns an error that names the command. No shell is
//! involved: arguments reach the program as they are. The executor may prefix every argv (for
//! example `ip netns exec NAME`, which tests and benchmarks use to act on a namespace of their
//! own); it reads no configuration and keeps no state.

use std::{
    fmt,
    io::{self, Write as _},
    process::{Child, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

/// A command to run: the program and its arguments, and what to feed its standard input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub argv: Vec<String>,
    pub stdin: Option<Vec<u8>>,
}

impl Command {
    /// `argv`, with nothing on standard input.
    #[must_use]
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            stdin: None,
        }
    }

    /// The same command, fed `input` on standard input.
    #[must_use]
    pub fn with_stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }
}

impl fmt::Display for Command {
    /// The argv as a shell would read it (for messages only; nothing runs through a shell).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = self
            .argv
            .iter()
            .map(|w| shlex::try_quote(w).map_or_else(|_| format!("{w:?}"), Into::into))
            .collect();
        f.write_str(&words.join(" "))
    }
}

/// What a finished command wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// Errors of running a command; each names the command.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("`{command}` is empty: no program to run")]
    Empty { command: String },
    #[error("cannot run `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` did not finish within {timeout:?} and was killed")]
    Timeout { command: String, timeout: Duration },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("`{command}`: {reason}")]
    Output { command: String, reason: String },
}

/// Runs commands, each within a timeout, optionally behind a fixed argv prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executor {
    /// Prepended to every argv (`["ip", "netns", "exec", "ns1"]`); empty by default.
    pub prefix: Vec<String>,
    /// How long a command may run before it is killed.
    pub timeout: Duration,
}

impl Default for Executor {
    fn default() -> Self {
        Self {
            prefix: Vec::new(),
            timeout: Duration::from_secs(60),
        }
    }
}

impl Executor {
    /// An executor that runs every command inside the named network namespace
    /// (`ip netns exec NAME ...`).
    #[must_use]
    pub fn in_netns(name: &str) -> Self {
        Self {
            prefix: ["ip", "netns", "exec", name].map(String::from).to_vec(),
            ..Self::default()
        }
    }

    /// The full argv that runs `command`.
    #[must_use]
    pub fn argv(&self, command: &Command) -> Vec<String> {
        self.prefix.iter().chain(&command.argv).cloned().collect()
    }

    /// Runs `command`; an exit status other than 0 is an error carrying its stderr.
    pub fn run(&self, command: &Command) -> Result<Output, ExecError> {
        let (status, output) = self.run_status(command)?;
        if status.success() {
            Ok(output)
        } else {
            Err(ExecError::Failed {
                command: command.to_string(),
                status,
                stderr: output.stderr.trim_end().to_string(),
            })
        }
    }

    /// Runs `command` and returns its exit status with its output, whatever the status.
    pub fn run_status(&self, command: &Command) -> Result<(ExitStatus, Output), ExecError> {
        let argv = self.argv(command);
        let name = || command.to_string();
        let Some((program, rest)) = argv.split_first() else {
            return Err(ExecError::Empty { command: name() });
        };
        let mut child = std::process::Command::new(program)
            .args(rest)
            .stdin(if command.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| ExecError::Spawn {
                command: name(),
                source,
            })?;
        let feeder = command.stdin.clone().and_then(|input| {
            let mut pipe = child.stdin.take()?;
            // A closed pipe (the program exited early) shows in its status, not here.
            Some(thread::spawn(move || drop(pipe.write_all(&input))))
        });
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let status = wait(&mut child, self.timeout).map_err(|source| ExecError::Spawn {
            command: name(),
            source,
        })?;
        if let Some(feeder) = feeder {
            let _ = feeder.join();
        }
        let output = Output {
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        };
        status.map(|s| (s, output)).ok_or(ExecError::Timeout {
            command: name(),
            timeout: self.timeout,
        })
    }
}

/// Reads a pipe to its end on a thread of its own, so that neither pipe can fill and block.
fn drain(pipe: Option<impl io::Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits for `child` up to `timeout`; kills it and returns `None` when it runs longer.
fn wait(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(200);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_with_stdin_and_captures_output() {
        let out = Executor::default()
            .run(&Command::new(["cat"]).with_stdin("a line\n"))
            .unwrap();
        assert_eq!(out.stdout, "a line\n");
    }

    #[test]
    fn arguments_are_not_read_by_a_shell() {
        let word = "`touch /tmp/banxdp-exec-pwned`; $(id) 'x\"";
        let out = Executor::default()
            .run(&Command::new(["printf", "%s", word]))
            .unwrap();
        assert_eq!(out.stdout, word);
        assert!(!std::path::Path::new("/tmp/banxdp-exec-pwned").exists());
    }

    #[test]
    fn failure_names_the_command_and_carries_stderr() {
        let err = Executor::default()
            .run(&Command::new(["sh", "-c", "echo nope >&2; exit 3", "x y"]))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`sh -c 'echo nope >&2; exit 3' 'x y'`"),
            "{text}"
        );
        assert!(text.contains("nope"), "{text}");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = Executor::default()
            .run(&Command::new(["/nonexistent/banxdp-tool"]))
            .unwrap_err();
        assert!(matches!(err, ExecError::Spawn { .. }), "{err}");
    }

    #[test]
    fn a_slow_command_is_killed_at_its_timeout() {
        let exec = Executor {
            timeout: Duration::from_millis(100),
            ..Executor::default()
        };
        let started = Instant::now();
        let err = exec.run(&Command::new(["sleep", "5"])).unwrap_err();
        assert!(matches!(err, ExecError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn the_prefix_comes_first() {
        let exec = Executor::in_netns("ns1");
        assert_eq!(
            exec.argv(&Command::new(["nft", "-f", "-"])),
            ["ip", "netns", "exec", "ns1", "nft", "-f", "-"]
        );
    }
}
