//! `ignorecommand`: an external command that says whether to spare an address (exit 0:
//! ignore it, exit 1: ban it, anything else: an error, and the address is banned, as in
//! fail2ban). The one part of `jail` that does I/O; the daemon runs it (blocking: from
//! `spawn_blocking`) before it enforces a ban the state machine decided.
//!
//! fail2ban substitutes `<ip>` in the command and hands the text to a shell. banxdp splits
//! the command into words (shell quoting rules, by shlex) and runs it directly, the address
//! replacing `<ip>` inside the words; only a command that needs a shell (pipes, `&&`,
//! redirections, `$`) goes to `sh -c`, with the address quoted by shlex. The address is an
//! `IpAddr`, never text from a log. The command runs in its own process group, which is
//! killed at the timeout.

use std::{
    net::IpAddr,
    process::{Command, ExitStatus},
    time::Duration,
};

/// What the command answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Exit status 0: never ban this address.
    Ignore,
    /// Exit status 1: ban it.
    Ban,
}

/// A command that could not answer.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreCommandError {
    #[error("ignorecommand `{command}`: cannot be split into words (unbalanced quotes)")]
    Split { command: String },
    #[error("ignorecommand `{command}`: cannot start")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("ignorecommand `{command}`: no answer within {timeout:?}, killed")]
    Timeout { command: String, timeout: Duration },
    #[error("ignorecommand `{command}`: {status} (0 ignores, 1 bans)")]
    Status { command: String, status: ExitStatus },
}

/// A jail's `ignorecommand`, checked and ready to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgnoreCommand {
    text: String,
    /// The command's words, or `None` when it needs a shell.
    words: Option<Vec<String>>,
}

/// Characters that make a command need a shell.
const SHELL_SYNTAX: &[char] = &['|', '&', ';', '<', '>', '(', ')', '$', '`', '*', '?', '\n'];

impl IgnoreCommand {
    /// Reads the command text (`/path/to/check <ip>`).
    pub fn new(text: &str) -> Result<Self, IgnoreCommandError> {
        let text = text.trim().to_string();
        let words = shlex::split(&text).ok_or_else(|| IgnoreCommandError::Split {
            command: text.clone(),
        })?;
        if words.is_empty() {
            return Err(IgnoreCommandError::Split { command: text });
        }
        Ok(Self {
            words: (!needs_shell(&text)).then_some(words),
            text,
        })
    }

    /// The command as configured.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The program and arguments that check `addr`.
    #[must_use]
    pub fn argv(&self, addr: IpAddr) -> Vec<String> {
        let ip = addr.to_canonical().to_string();
        if let Some(words) = &self.words {
            words.iter().map(|w| w.replace("<ip>", &ip)).collect()
        } else {
            let quoted =
                shlex::try_quote(&ip).map_or_else(|_| ip.clone(), std::borrow::Cow::into_owned);
            vec!["sh".into(), "-c".into(), self.text.replace("<ip>", &quoted)]
        }
    }

    /// Runs the command for `addr`, killing it after `timeout`.
    pub fn check(&self, addr: IpAddr, timeout: Duration) -> Result<Verdict, IgnoreCommandError> {
        let argv = self.argv(addr);
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]);
        // The one process runner: its own group, ended whole at the timeout.
        let ran =
            crate::enforce::exec::run_process(command, None, timeout, 0).map_err(|source| {
                IgnoreCommandError::Spawn {
                    command: self.text.clone(),
                    source,
                }
            })?;
        if ran.timed_out {
            return Err(IgnoreCommandError::Timeout {
                command: self.text.clone(),
                timeout,
            });
        }
        let status = ran.status;
        match status.code() {
            Some(0) => Ok(Verdict::Ignore),
            Some(1) => Ok(Verdict::Ban),
            _ => Err(IgnoreCommandError::Status {
                command: self.text.clone(),
                status,
            }),
        }
    }
}

/// Whether `text` (with its `<ip>` tags) has shell syntax outside single quotes (inside
/// double quotes, `$` and backquotes still count).
fn needs_shell(text: &str) -> bool {
    let text = text.replace("<ip>", "");
    let (mut single, mut double, mut escaped) = (false, false, false);
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if !single => escaped = true,
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '$' | '`' if !single => return true,
            _ if !single && !double && SHELL_SYNTAX.contains(&c) => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn exit_status_decides() {
        let ip = addr("192.0.2.1");
        assert_eq!(
            IgnoreCommand::new("true")
                .unwrap()
                .check(ip, SECOND)
                .unwrap(),
            Verdict::Ignore
        );
        assert_eq!(
            IgnoreCommand::new("false")
                .unwrap()
                .check(ip, SECOND)
                .unwrap(),
            Verdict::Ban
        );
        let two = IgnoreCommand::new("sh -c 'exit 2'")
            .unwrap()
            .check(ip, SECOND);
        assert!(
            matches!(two, Err(IgnoreCommandError::Status { .. })),
            "{two:?}"
        );
        let missing = IgnoreCommand::new("/nonexistent/check <ip>")
            .unwrap()
            .check(ip, SECOND);
        assert!(
            matches!(missing, Err(IgnoreCommandError::Spawn { .. })),
            "{missing:?}"
        );
    }

    #[test]
    fn the_address_is_an_argument() {
        let cmd = IgnoreCommand::new(r#"sh -c 'test "$1" = 2001:db8::7' check <ip>"#).unwrap();
        assert_eq!(
            cmd.argv(addr("2001:db8::7")),
            [
                "sh",
                "-c",
                r#"test "$1" = 2001:db8::7"#,
                "check",
                "2001:db8::7"
            ]
        );
        assert_eq!(
            cmd.check(addr("2001:db8::7"), SECOND).unwrap(),
            Verdict::Ignore
        );
        // `::ffff:` addresses are passed as IPv4.
        let cmd = IgnoreCommand::new("test <ip> = 192.0.2.5").unwrap();
        assert_eq!(
            cmd.check(addr("::ffff:192.0.2.5"), SECOND).unwrap(),
            Verdict::Ignore
        );
        assert_eq!(cmd.check(addr("192.0.2.6"), SECOND).unwrap(), Verdict::Ban);
    }

    #[test]
    fn shell_commands_get_a_quoted_address() {
        let cmd = IgnoreCommand::new("echo <ip> | grep -q '^10\\.'").unwrap();
        assert_eq!(cmd.argv(addr("10.1.1.1"))[..2], ["sh", "-c"]);
        assert_eq!(
            cmd.check(addr("10.1.1.1"), SECOND).unwrap(),
            Verdict::Ignore
        );
        assert_eq!(cmd.check(addr("11.1.1.1"), SECOND).unwrap(), Verdict::Ban);
        assert!(IgnoreCommand::new("check 'unbalanced").is_err());
    }

    #[test]
    fn a_slow_command_is_killed_at_the_timeout() {
        let cmd = IgnoreCommand::new("sh -c 'sleep 30; exit 0'").unwrap();
        let start = Instant::now();
        let result = cmd.check(addr("192.0.2.1"), Duration::from_millis(200));
        assert!(
            matches!(result, Err(IgnoreCommandError::Timeout { .. })),
            "{result:?}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn the_timeout_kills_the_commands_children_too() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        // The subshell is a process of its own, which outlives `sh` unless the group dies.
        let text = format!("sh -c '(sleep 1; touch {}) & wait'", marker.display());
        let result = IgnoreCommand::new(&text)
            .unwrap()
            .check(addr("192.0.2.1"), Duration::from_millis(100));
        assert!(
            matches!(result, Err(IgnoreCommandError::Timeout { .. })),
            "{result:?}"
        );
        std::thread::sleep(Duration::from_millis(1500));
        assert!(!marker.exists(), "the sleeping child outlived the timeout");
    }
}
