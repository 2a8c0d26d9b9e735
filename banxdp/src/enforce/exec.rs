//! The one executor of external commands (`nft`, `ipset`, `iptables`, action.d commands).
//!
//! Backends build a [`Command`] with pure functions (an argv vector and, for batch tools such as
//! `nft -f -` or `ipset restore`, a script on standard input); [`Executor::run`] runs it with a
//! timeout, captures its output and returns an error that names the command. No shell is
//! involved: arguments reach the program as they are. The executor may prefix every argv (for
//! example `ip netns exec NAME`, which tests and benchmarks use to act on a namespace of their
//! own); it reads no configuration and keeps no state.
//!
//! Under both, [`run_process`] is where every process banxdp starts for a backend or an
//! action runs: its own process group, which a timeout ends whole, its input fed and its
//! output read on threads of their own. `action::run` starts action.d shell scripts with it.

use std::{
    fmt,
    io::{self, Write as _},
    os::unix::process::CommandExt as _,
    process::{Child, ExitStatus, Stdio},
    sync::mpsc,
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
        let mut process = std::process::Command::new(program);
        process.args(rest);
        let ran = run_process(process, command.stdin.clone(), self.timeout, usize::MAX).map_err(
            |source| ExecError::Spawn {
                command: name(),
                source,
            },
        )?;
        if ran.timed_out {
            return Err(ExecError::Timeout {
                command: name(),
                timeout: self.timeout,
            });
        }
        let Ran {
            status,
            stdout,
            stderr,
            ..
        } = ran;
        Ok((status, Output { stdout, stderr }))
    }
}

/// A process run by [`run_process`], to its end or to its timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// It outlived its timeout, and its process group was ended.
    pub timed_out: bool,
}

/// After a timeout, how long the group has between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_millis(500);

/// How long to wait for the rest of the output once the process has exited (a process it
/// left in the background may hold the pipes open).
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// Runs `process` (its standard streams are set here) in a process group of its own, feeding
/// it `stdin` and keeping up to `limit` bytes of each output. Past `timeout` the whole group is
/// ended (SIGTERM, then SIGKILL after a grace period), so what a script started goes too.
/// `Err` only when it cannot be started or waited for.
pub fn run_process(
    mut process: std::process::Command,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    limit: usize,
) -> io::Result<Ran> {
    process
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = process.spawn()?;
    let feeder = stdin.and_then(|input| {
        let mut pipe = child.stdin.take()?;
        // A closed pipe (the program exited early) shows in its status, not here.
        Some(thread::spawn(move || drop(pipe.write_all(&input))))
    });
    let stdout = drain(child.stdout.take(), limit);
    let stderr = drain(child.stderr.take(), limit);
    let waited = match wait_until(&mut child, Instant::now() + timeout) {
        Ok(waited) => waited,
        Err(e) => {
            let _ = end_group(&mut child);
            return Err(e);
        }
    };
    let timed_out = waited.is_none();
    let status = match waited {
        Some(status) => status,
        None => end_group(&mut child)?,
    };
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    Ok(Ran {
        status,
        stdout: stdout.recv_timeout(OUTPUT_GRACE).unwrap_or_default(),
        stderr: stderr.recv_timeout(OUTPUT_GRACE).unwrap_or_default(),
        timed_out,
    })
}

/// Reads a pipe to its end on a thread of its own (both pipes at once, or a chatty process
/// blocks), keeping its first `limit` bytes.
fn drain(pipe: Option<impl io::Read + Send + 'static>, limit: usize) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut pipe) = pipe {
            let mut buf = [0_u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
        let _ = tx.send(String::from_utf8_lossy(&kept).into_owned());
    });
    rx
}

/// Polls the child until it exits or `deadline` passes (`Ok(None)`), sleeping a little
/// longer each time: most commands end within milliseconds.
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_micros(200);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Ends the child's process group: SIGTERM, then SIGKILL after a grace period.
fn end_group(child: &mut Child) -> io::Result<ExitStatus> {
    let group = i32::try_from(child.id()).unwrap_or(i32::MAX);
    // SAFETY: `kill` with a negative pid signals the group the child leads (it was started
    // with `process_group(0)`); no memory is involved.
    unsafe { libc::kill(-group, libc::SIGTERM) };
    let ended = wait_until(child, Instant::now() + KILL_GRACE)?;
    // SAFETY: as above; what the process left behind in the group goes too.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    match ended {
        Some(status) => Ok(status),
        None => child.wait(),
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
