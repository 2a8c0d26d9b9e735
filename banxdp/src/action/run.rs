//! Running one action command: `sh -c SCRIPT banxdp-action ARGS...`, through the one process
//! runner (`enforce::exec::run_process`): in its own process group, with its output captured,
//! killed (the whole group) when it outlives its timeout.
//!
//! Blocking by design: fail2ban runs an action's commands one after the other, and the daemon
//! calls enforcers from a blocking context. Nothing here looks at what the command means.

use std::{
    os::unix::process::ExitStatusExt as _,
    path::PathBuf,
    process::{Command, ExitStatus},
    time::Duration,
};

use super::tags::Script;
use crate::enforce::exec::{Ran, run_process};

/// How long a command may take when the action does not say (fail2ban's `timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

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
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let Ran {
            status,
            stdout,
            stderr,
            timed_out,
        } = run_process(command, None, timeout, OUTPUT_LIMIT).map_err(|source| {
            RunError::Spawn {
                shell: self.path.clone(),
                source,
            }
        })?;
        let finished = Finished {
            status,
            stdout,
            stderr,
        };
        if timed_out {
            return Err(RunError::Timeout(timeout, Box::new(finished)));
        }
        Ok(finished)
    }
}

#[cfg(test)]
mod tests {
    use std::{thread, time::Instant};

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
