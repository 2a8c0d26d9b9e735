//! Running one action command: `sh -c SCRIPT banxdp-action ARGS...` in its own process
//! group, with its output captured, killed (the whole group) when it outlives its timeout.
//!
//! The only place in `action` that starts processes. Blocking by design: fail2ban runs an
//! action's commands one after the other, and the daemon calls enforcers from a blocking
//! context. Nothing here looks at what the command means.

use std::{
    io::Read,
    os::unix::process::{CommandExt as _, ExitStatusExt as _},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use super::tags::Script;

/// How long a command may take when the action does not say (fail2ban's `timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// After the timeout, how long the group has between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_millis(500);

/// Output kept from a command, per stream, for logs and errors.
const OUTPUT_LIMIT: usize = 64 * 1024;

/// What a command that ran to its end left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The exit code, or the signal that ended it, as text (`1`, `signal 9`).
    #[must_use]
    pub fn describe_status(&self) -> String {
        match (self.status.code(), self.status.signal()) {
            (Some(code), _) => code.to_string(),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => "unknown".into(),
        }
    }
}

/// Why a command did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start `{}`", shell.display())]
    Spawn {
        shell: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("still running after {0:?}; its process group was killed")]
    Timeout(Duration, Box<Finished>),
    #[error("cannot wait for the command")]
    Wait(#[source] std::io::Error),
}

/// Starts shell scripts.
#[derive(Clone, Debug)]
pub struct Shell {
    /// The shell (`/bin/sh`).
    pub path: PathBuf,
    /// Extra environment, on top of the daemon's (tests put a fake `sendmail` on `PATH`).
    pub env: Vec<(String, String)>,
}

impl Default for Shell {
    fn default() -> Self {
        Self {
            path: PathBuf::from("/bin/sh"),
            env: Vec::new(),
        }
    }
}

impl Shell {
    /// Runs `script` and waits for it, at most `timeout`.
    pub fn run(&self, script: &Script, timeout: Duration) -> Result<Finished, RunError> {
        let mut command = Command::new(&self.path);
        command
            .arg("-c")
            .arg(&script.text)
            .arg("banxdp-action")
            .args(&script.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so that a timeout ends what the script started too.
            .process_group(0);
        let mut child = command.spawn().map_err(|source| RunError::Spawn {
            shell: self.path.clone(),
            source,
        })?;
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let waited = wait_until(&mut child, Instant::now() + timeout);
        let timed_out = matches!(waited, Ok(None));
        let status = match waited {
            Ok(Some(status)) => status,
            Ok(None) => kill_group(&mut child)?,
            Err(e) => {
                let _ = kill_group(&mut child);
                return Err(RunError::Wait(e));
            }
        };
        let finished = Finished {
            status,
            stdout: stdout.recv_timeout(OUTPUT_GRACE).unwrap_or_default(),
            stderr: stderr.recv_timeout(OUTPUT_GRACE).unwrap_or_default(),
        };
        if timed_out {
            return Err(RunError::Timeout(timeout, Box::new(finished)));
        }
        Ok(finished)
    }
}

/// How long to wait for the rest of the output once the command has exited (a process it
/// left in the background may hold the pipes open).
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// Reads a pipe to its end on a thread (both pipes at once, or a chatty command blocks).
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let Some(mut pipe) = pipe else {
            let _ = tx.send(String::new());
            return;
        };
        let mut kept = Vec::new();
        let mut buf = [0_u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = OUTPUT_LIMIT.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        let _ = tx.send(String::from_utf8_lossy(&kept).into_owned());
    });
    rx
}

/// Polls the child until it exits or `deadline` passes (`Ok(None)`), sleeping a little
/// longer each time: most commands end within milliseconds.
fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
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
fn kill_group(child: &mut Child) -> Result<ExitStatus, RunError> {
    let group = i32::try_from(child.id()).unwrap_or(i32::MAX);
    // SAFETY: `kill` with a negative pid signals the group the child leads (it was started
    // with `process_group(0)`); no memory is involved.
    unsafe { libc::kill(-group, libc::SIGTERM) };
    if let Some(status) = wait_until(child, Instant::now() + KILL_GRACE).map_err(RunError::Wait)? {
        // SAFETY: as above; what the script left behind in the group goes too.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        return Ok(status);
    }
    // SAFETY: as above.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    child.wait().map_err(RunError::Wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(text: &str, args: &[&str]) -> Script {
        Script {
            text: text.into(),
            args: args.iter().map(|a| (*a).to_string()).collect(),
        }
    }

    #[test]
    fn output_status_and_arguments() {
        let shell = Shell::default();
        let done = shell
            .run(
                &script(
                    "v=\"${1}\" \nprintf '%s' \"$v\"; echo err >&2; exit 3",
                    &["a;b `c`"],
                ),
                DEFAULT_TIMEOUT,
            )
            .unwrap();
        assert_eq!(done.stdout, "a;b `c`");
        assert_eq!(done.stderr, "err\n");
        assert_eq!(done.describe_status(), "3");
    }

    #[test]
    fn a_command_past_its_timeout_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("late");
        let text = format!("(sleep 2; touch {}) & sleep 5", marker.display());
        let started = Instant::now();
        let err = Shell::default()
            .run(&script(&text, &[]), Duration::from_millis(200))
            .unwrap_err();
        assert!(matches!(err, RunError::Timeout(..)), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        thread::sleep(Duration::from_millis(2200));
        assert!(
            !marker.exists(),
            "the background child outlived the timeout"
        );
    }

    #[test]
    fn environment_is_added() {
        let shell = Shell {
            env: vec![("BANXDP_TEST_VAR".into(), "x y".into())],
            ..Shell::default()
        };
        let done = shell
            .run(
                &script("printf %s \"$BANXDP_TEST_VAR\"", &[]),
                DEFAULT_TIMEOUT,
            )
            .unwrap();
        assert_eq!(done.stdout, "x y");
    }
}
