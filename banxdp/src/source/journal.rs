//! `backend = systemd`: lines from the systemd journal, read through `journalctl --follow
//! --output=json` run as an argv vector (no shell). The command line and the formatting of an
//! entry are pure functions ([`JournalSpec::argv`], [`format_entry`]); [`JournalSource`] only
//! runs the child and reads its output.
//!
//! An entry becomes the line fail2ban's `filtersystemd` makes of it, the specification read
//! here: `_HOSTNAME`, then `SYSLOG_IDENTIFIER` (else `_COMM`) with `[SYSLOG_PID]` (else
//! `[_PID]`) and a colon, for the kernel its monotonic time as `[%12.6f]`, then `MESSAGE`
//! (a list of them joined by spaces), words joined by one space and newlines written `\n`.
//! Its time is `_SOURCE_REALTIME_TIMESTAMP`, else `__REALTIME_TIMESTAMP`. The entry's cursor is
//! the position to store: `--after-cursor` resumes after it.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Stdio,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader, Lines},
    process::{Child, ChildStderr, ChildStdout, Command},
};

use super::{SourceError, encoding::Encoding};

/// What one jail reads from the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalSpec {
    pub jail: String,
    /// `journalmatch` words, `+` between alternatives, as journalctl takes them.
    pub matches: Vec<String>,
    /// `journalfiles`: `--file` for each (globs are journalctl's to expand).
    pub files: Vec<String>,
    /// `journalpath`: `--directory`.
    pub directory: Option<PathBuf>,
    /// Resume after this cursor (the last one stored).
    pub after_cursor: Option<String>,
    /// Without a cursor: entries from this time on (Unix seconds), e.g. now minus findtime,
    /// as fail2ban seeks; `None` with no cursor: only new entries.
    pub since: Option<i64>,
    /// Keep waiting for new entries (the daemon); `false` stops at the journal's end.
    pub follow: bool,
    pub encoding: Encoding,
    /// The program to run: `journalctl`.
    pub program: PathBuf,
}

impl JournalSpec {
    /// A jail's journal: `options` are those of `backend = systemd[...]` (`journalpath`,
    /// `journalfiles`; others are ignored), `journalmatch` its lines.
    pub fn from_jail(
        jail: &str,
        options: &[(String, String)],
        journalmatch: &[String],
        encoding: Encoding,
    ) -> Result<Self, SourceError> {
        let mut matches = Vec::new();
        for line in journalmatch {
            let words = shlex::split(line).ok_or_else(|| SourceError::JournalMatch {
                jail: jail.to_owned(),
                value: line.clone(),
            })?;
            if let Some(bad) = words.iter().find(|w| *w != "+" && !is_match(w)) {
                return Err(SourceError::JournalMatch {
                    jail: jail.to_owned(),
                    value: bad.clone(),
                });
            }
            if !matches.is_empty() && !words.is_empty() {
                matches.push("+".to_owned());
            }
            matches.extend(words);
        }
        let option = |key: &str| {
            options
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        Ok(Self {
            jail: jail.to_owned(),
            matches,
            files: option("journalfiles").map_or_else(Vec::new, |v| {
                v.split_whitespace().map(str::to_owned).collect()
            }),
            directory: option("journalpath").map(PathBuf::from),
            after_cursor: None,
            since: None,
            follow: true,
            encoding,
            program: PathBuf::from("journalctl"),
        })
    }

    /// journalctl's arguments (after the program name).
    #[must_use]
    pub fn argv(&self) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec!["--output=json".into(), "--no-pager".into()];
        if self.follow {
            argv.push("--follow".into());
        }
        if let Some(dir) = &self.directory {
            argv.push(format!("--directory={}", dir.display()).into());
        }
        for file in &self.files {
            argv.push(format!("--file={file}").into());
        }
        match (&self.after_cursor, self.since) {
            (Some(cursor), _) => argv.push(format!("--after-cursor={cursor}").into()),
            (None, Some(since)) => argv.push(format!("--since=@{since}").into()),
            // Only new entries: --follow alone would first print the last ten.
            (None, None) => argv.push("--lines=0".into()),
        }
        argv.extend(self.matches.iter().map(OsString::from));
        argv
    }
}

/// `FIELD=VALUE` with a field name journalctl accepts (upper case, digits, underscores).
fn is_match(word: &str) -> bool {
    word.split_once('=').is_some_and(|(field, _)| {
        !field.is_empty()
            && field
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// One journal entry as a jail reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    /// The syslog-style line (see the module documentation).
    pub line: String,
    /// Microseconds since the Unix epoch.
    pub realtime_us: u64,
    /// `__CURSOR`: store it, resume with [`JournalSpec::after_cursor`].
    pub cursor: String,
}

/// The line, time and cursor of one entry of `journalctl --output=json`; `None` for an entry
/// without a time (not a journal entry).
#[must_use]
pub fn format_entry(entry: &Value, encoding: Encoding) -> Option<JournalEntry> {
    let field = |name: &str| entry.get(name).and_then(|v| text(v, encoding));
    let number = |name: &str| field(name).and_then(|t| t.parse::<u64>().ok());
    let realtime_us =
        number("_SOURCE_REALTIME_TIMESTAMP").or_else(|| number("__REALTIME_TIMESTAMP"))?;
    let mut words = Vec::new();
    if let Some(host) = field("_HOSTNAME").filter(|h| !h.is_empty()) {
        words.push(host);
    }
    if let Some(mut ident) = field("SYSLOG_IDENTIFIER")
        .or_else(|| field("_COMM"))
        .filter(|i| !i.is_empty())
    {
        if let Some(pid) = field("SYSLOG_PID")
            .or_else(|| field("_PID"))
            .filter(|p| !p.is_empty())
        {
            let pid = pid.parse::<i64>().map_or(pid, |n| n.to_string());
            ident = format!("{ident}[{pid}]");
        }
        ident.push(':');
        let kernel = ident == "kernel:";
        words.push(ident);
        if kernel {
            let monotonic =
                number("_SOURCE_MONOTONIC_TIMESTAMP").or_else(|| number("__MONOTONIC_TIMESTAMP"));
            #[expect(
                clippy::cast_precision_loss,
                reason = "microseconds shown with six decimals"
            )]
            words.push(format!("[{:12.6}]", monotonic.unwrap_or(0) as f64 / 1e6));
        }
    }
    words.push(field("MESSAGE").unwrap_or_default());
    Some(JournalEntry {
        line: words.join(" ").replace('\n', "\\n"),
        realtime_us,
        cursor: field("__CURSOR").unwrap_or_default(),
    })
}

/// A field's value as text: a string; bytes (journalctl's form for binary or non-UTF-8
/// values) decoded in the jail's encoding; several values (a repeated field) joined by spaces.
fn text(value: &Value, encoding: Encoding) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(items) if items.iter().all(Value::is_u64) => {
            let bytes: Vec<u8> = items
                .iter()
                .filter_map(Value::as_u64)
                .map(|b| u8::try_from(b).unwrap_or(b'?'))
                .collect();
            Some(encoding.decode(&bytes).into_owned())
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(|v| text(v, encoding)).collect();
            Some(parts.join(" "))
        }
        _ => None,
    }
}

/// Where journald keeps the system journal: persistent, then volatile.
const SYSTEM_JOURNALS: [&str; 2] = ["/var/log/journal", "/run/log/journal"];

/// Whether any of `dirs` (or their machine-id subdirectories) holds a journal file. On a
/// machine without journald `journalctl --follow` would wait silently forever.
fn has_journal(dirs: &[&str]) -> bool {
    let is_journal = |p: &Path| {
        p.extension()
            .is_some_and(|e| e == "journal" || e == "journal~")
    };
    dirs.iter().any(|dir| {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|entry| {
                let path = entry.path();
                is_journal(&path)
                    || std::fs::read_dir(&path)
                        .into_iter()
                        .flatten()
                        .flatten()
                        .any(|inner| is_journal(&inner.path()))
            })
    })
}

/// A running `journalctl` whose entries are read one by one.
#[derive(Debug)]
pub struct JournalSource {
    jail: String,
    encoding: Encoding,
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    /// journalctl's complaints, read as they come so that a full pipe never stops it; the
    /// last [`STDERR_KEPT`] bytes are kept for the error.
    stderr: Option<ChildStderr>,
    complaint: Vec<u8>,
}

const STDERR_KEPT: usize = 4096;

impl JournalSource {
    /// Starts `journalctl` for `spec`. A machine without journalctl, or (reading the system
    /// journal) without journal files, is a clear error for this jail alone.
    pub fn spawn(spec: &JournalSpec) -> Result<Self, SourceError> {
        if spec.directory.is_none() && spec.files.is_empty() && !has_journal(&SYSTEM_JOURNALS) {
            return Err(SourceError::NoJournal {
                jail: spec.jail.clone(),
            });
        }
        let mut child = Command::new(&spec.program)
            .args(spec.argv())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SourceError::JournalctlMissing {
                jail: spec.jail.clone(),
                program: spec.program.display().to_string(),
                source,
            })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        Ok(Self {
            jail: spec.jail.clone(),
            encoding: spec.encoding,
            stderr: child.stderr.take(),
            child,
            lines: BufReader::new(stdout).lines(),
            complaint: Vec::new(),
        })
    }

    /// The next entry; `Ok(None)` once journalctl has ended cleanly (only without `follow`).
    /// Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<JournalEntry>, SourceError> {
        loop {
            let line = self
                .next_line()
                .await
                .map_err(|source| SourceError::JournalRead {
                    jail: self.jail.clone(),
                    source,
                })?;
            let Some(line) = line else {
                return self.finish().await.map(|()| None);
            };
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                tracing::warn!(jail = %self.jail, "journalctl printed a line that is not JSON: skipped");
                continue;
            };
            if let Some(entry) = format_entry(&value, self.encoding) {
                return Ok(Some(entry));
            }
        }
    }

    /// The next line of journalctl's output, reading its complaints meanwhile.
    async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        let mut chunk = [0; 1024];
        loop {
            let Some(stderr) = self.stderr.as_mut() else {
                return self.lines.next_line().await;
            };
            tokio::select! {
                line = self.lines.next_line() => return line,
                read = stderr.read(&mut chunk) => match read {
                    Ok(0) | Err(_) => self.stderr = None,
                    Ok(n) => {
                        self.complaint.extend_from_slice(&chunk[..n]);
                        let excess = self.complaint.len().saturating_sub(STDERR_KEPT);
                        self.complaint.drain(..excess);
                    }
                },
            }
        }
    }

    /// Waits for journalctl to exit; its complaint, if it failed, is the error.
    async fn finish(&mut self) -> Result<(), SourceError> {
        if let Some(mut pipe) = self.stderr.take() {
            let _ = pipe.read_to_end(&mut self.complaint).await;
        }
        let excess = self.complaint.len().saturating_sub(STDERR_KEPT);
        self.complaint.drain(..excess);
        let stderr = String::from_utf8_lossy(&self.complaint).into_owned();
        let status = self
            .child
            .wait()
            .await
            .map_err(|source| SourceError::JournalRead {
                jail: self.jail.clone(),
                source,
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(SourceError::Journalctl {
                jail: self.jail.clone(),
                stderr: format!("{status}: {}", stderr.trim()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    #[test]
    fn entries_read_as_fail2ban_formats_them() {
        let cases = [
            (
                json!({"__REALTIME_TIMESTAMP": "1700000000123456", "_HOSTNAME": "web1",
                       "SYSLOG_IDENTIFIER": "sshd", "_PID": "4242", "__CURSOR": "c1",
                       "MESSAGE": "Failed password for root from 192.0.2.7 port 22 ssh2"}),
                "web1 sshd[4242]: Failed password for root from 192.0.2.7 port 22 ssh2",
            ),
            // _COMM without an identifier, SYSLOG_PID before _PID, newlines escaped.
            (
                json!({"__REALTIME_TIMESTAMP": "1", "_COMM": "dovecot", "SYSLOG_PID": "7",
                       "_PID": "8", "MESSAGE": "a\nb"}),
                "dovecot[7]: a\\nb",
            ),
            // The kernel's monotonic time; bytes; a repeated field joined by spaces.
            (
                json!({"__REALTIME_TIMESTAMP": "1", "SYSLOG_IDENTIFIER": "kernel",
                       "__MONOTONIC_TIMESTAMP": "5000000", "MESSAGE": [104, 105, 0xfc]}),
                "kernel: [    5.000000] hi\u{fc}",
            ),
            (
                json!({"__REALTIME_TIMESTAMP": "1", "MESSAGE": ["x", "y"]}),
                "x y",
            ),
            (
                json!({"__REALTIME_TIMESTAMP": "1", "SYSLOG_IDENTIFIER": "s", "_PID": "abc"}),
                "s[abc]: ",
            ),
        ];
        for (entry, want) in cases {
            assert_eq!(
                format_entry(&entry, Encoding::Auto).unwrap().line,
                want,
                "{entry}"
            );
        }
        let timed = json!({"__REALTIME_TIMESTAMP": "2", "_SOURCE_REALTIME_TIMESTAMP": "1", "__CURSOR": "c"});
        let entry = format_entry(&timed, Encoding::Auto).unwrap();
        assert_eq!((entry.realtime_us, entry.cursor.as_str()), (1, "c"));
        assert_eq!(
            format_entry(&json!({"MESSAGE": "no time"}), Encoding::Auto),
            None
        );
    }

    #[test]
    fn the_command_line_is_built_from_the_jail() {
        let options = [("journalpath".to_owned(), "/srv/journal".to_owned())];
        let matches = [
            "_SYSTEMD_UNIT=sshd.service + _COMM=sshd".to_owned(),
            "_COMM=dropbear".to_owned(),
        ];
        let mut spec = JournalSpec::from_jail("sshd", &options, &matches, Encoding::Auto).unwrap();
        let argv = |spec: &JournalSpec| -> Vec<String> {
            spec.argv()
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect()
        };
        assert_eq!(
            argv(&spec),
            [
                "--output=json",
                "--no-pager",
                "--follow",
                "--directory=/srv/journal",
                "--lines=0",
                "_SYSTEMD_UNIT=sshd.service",
                "+",
                "_COMM=sshd",
                "+",
                "_COMM=dropbear"
            ]
        );
        spec.since = Some(1_700_000_000);
        assert!(argv(&spec).contains(&"--since=@1700000000".to_owned()));
        spec.after_cursor = Some("s=1;i=2".into());
        assert!(argv(&spec).contains(&"--after-cursor=s=1;i=2".to_owned()));
        let err = JournalSpec::from_jail("sshd", &[], &["sshd.service".to_owned()], Encoding::Auto);
        assert_eq!(
            err.unwrap_err().to_string(),
            "jail `sshd`: invalid journalmatch `sshd.service`"
        );
    }

    #[tokio::test]
    async fn a_missing_journalctl_is_a_clear_error_for_its_jail() {
        let mut spec = JournalSpec::from_jail("sshd", &[], &[], Encoding::Auto).unwrap();
        spec.files = vec!["/nonexistent.journal".into()];
        spec.program = PathBuf::from("/nonexistent/journalctl");
        let err = JournalSource::spawn(&spec).unwrap_err().to_string();
        assert_eq!(
            err,
            "jail `sshd`: backend = systemd needs `/nonexistent/journalctl`, which cannot be run"
        );
    }

    #[test]
    fn a_machine_without_journal_files_has_no_journal() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        assert!(!has_journal(&[root, "/nonexistent"]));
        std::fs::create_dir(dir.path().join("0123abcd")).unwrap();
        assert!(
            !has_journal(&[root]),
            "an empty machine-id directory is no journal"
        );
        std::fs::write(dir.path().join("0123abcd/system.journal"), b"").unwrap();
        assert!(has_journal(&["/nonexistent", root]));
    }

    #[tokio::test]
    async fn without_a_journal_the_jail_gets_a_clear_error() {
        if has_journal(&SYSTEM_JOURNALS) {
            eprintln!("skipped: this machine has a system journal");
            return;
        }
        let spec = JournalSpec::from_jail("sshd", &[], &[], Encoding::Auto).unwrap();
        let err = JournalSource::spawn(&spec).unwrap_err().to_string();
        assert!(
            err.starts_with("jail `sshd`: backend = systemd, but this machine has no journal"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_chatty_stderr_never_stops_journalctl_and_a_failure_says_why() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("journalctl");
        // Stands in for a journalctl that complains a lot (far more than a pipe holds).
        std::fs::write(
            &program,
            "#!/bin/sh\nhead -c 1000000 /dev/zero | tr '\\0' x >&2\n\
             echo '{\"__REALTIME_TIMESTAMP\":\"1\",\"MESSAGE\":\"after\"}'\n\
             echo 'Failed to seek to cursor' >&2\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut spec = JournalSpec::from_jail("sshd", &[], &[], Encoding::Auto).unwrap();
        (spec.program, spec.files) = (program, vec!["x.journal".into()]);
        let mut source = JournalSource::spawn(&spec).unwrap();
        let wait = Duration::from_secs(30);
        let entry = tokio::time::timeout(wait, source.next()).await.unwrap();
        assert_eq!(entry.unwrap().unwrap().line, "after");
        let err = tokio::time::timeout(wait, source.next())
            .await
            .unwrap()
            .unwrap_err();
        let err = err.to_string();
        assert!(
            err.starts_with("jail `sshd`: `journalctl` failed: exit status: 1: x"),
            "{err}"
        );
        assert!(
            err.ends_with("xFailed to seek to cursor") && err.len() < 5000,
            "{err}"
        );
    }

    /// One entry in journal export format; values with a newline in the binary form.
    fn export(fields: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in fields {
            out.extend_from_slice(name.as_bytes());
            if value.contains(&b'\n') {
                out.push(b'\n');
                out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            } else {
                out.push(b'=');
            }
            out.extend_from_slice(value);
            out.push(b'\n');
        }
        out.push(b'\n');
        out
    }

    /// A journal file written by Debian's `systemd-journal-remote` from export text.
    fn journal_file(dir: &Path) -> Option<PathBuf> {
        let remote = Path::new("/lib/systemd/systemd-journal-remote");
        if !remote.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI needs systemd-journal-remote"
            );
            eprintln!(
                "skipped: no systemd-journal-remote (apt-get install systemd-journal-remote)"
            );
            return None;
        }
        let boot: &[u8] = b"0123456789abcdef0123456789abcdef";
        let mut text = export(&[
            ("__REALTIME_TIMESTAMP", b"1700000000123456"),
            ("__MONOTONIC_TIMESTAMP", b"5000000"),
            ("_BOOT_ID", boot),
            ("_HOSTNAME", b"web1"),
            ("SYSLOG_IDENTIFIER", b"sshd"),
            ("_PID", b"4242"),
            ("_SYSTEMD_UNIT", b"ssh.service"),
            (
                "MESSAGE",
                b"Failed password for root from 192.0.2.7 port 22 ssh2",
            ),
        ]);
        text.extend(export(&[
            ("__REALTIME_TIMESTAMP", b"1700000001000000"),
            ("__MONOTONIC_TIMESTAMP", b"6000000"),
            ("_BOOT_ID", boot),
            ("_HOSTNAME", b"web1"),
            ("SYSLOG_IDENTIFIER", b"kernel"),
            ("_SYSTEMD_UNIT", b"kernel.service"),
            ("MESSAGE", b"line one\nline two"),
        ]));
        text.extend(export(&[
            ("__REALTIME_TIMESTAMP", b"1700000002000000"),
            ("__MONOTONIC_TIMESTAMP", b"7000000"),
            ("_BOOT_ID", boot),
            ("_HOSTNAME", b"web1"),
            ("_COMM", b"sshd"),
            ("_PID", b"4243"),
            ("_SYSTEMD_UNIT", b"ssh.service"),
            ("MESSAGE", b"Invalid user m\xfcller from 192.0.2.8"),
        ]));
        let input = dir.join("in.export");
        std::fs::write(&input, text).unwrap();
        let output = dir.join("remote.journal");
        let status = std::process::Command::new(remote)
            .arg(format!("--output={}", output.display()))
            .arg(&input)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "systemd-journal-remote: {status}");
        Some(output)
    }

    async fn read_all(spec: &JournalSpec) -> Vec<JournalEntry> {
        let mut source = JournalSource::spawn(spec).unwrap();
        let mut entries = Vec::new();
        while let Some(entry) = source.next().await.unwrap() {
            entries.push(entry);
        }
        entries
    }

    #[tokio::test]
    async fn reads_a_journal_file_written_by_systemd_journal_remote() {
        let dir = tempfile::tempdir().unwrap();
        let Some(file) = journal_file(dir.path()) else {
            return;
        };
        let options = [("journalfiles".to_owned(), file.display().to_string())];
        let mut spec = JournalSpec::from_jail("sshd", &options, &[], Encoding::Auto).unwrap();
        (spec.follow, spec.since) = (false, Some(0));
        let all = read_all(&spec).await;
        let lines: Vec<&str> = all.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(
            lines,
            [
                "web1 sshd[4242]: Failed password for root from 192.0.2.7 port 22 ssh2",
                "web1 kernel: [    6.000000] line one\\nline two",
                "web1 sshd[4243]: Invalid user m\u{fc}ller from 192.0.2.8",
            ]
        );
        assert_eq!(all[0].realtime_us, 1_700_000_000_123_456);
        spec.since = Some(1_700_000_001);
        assert_eq!(read_all(&spec).await[..], all[1..]);

        let matches = ["_SYSTEMD_UNIT=ssh.service".to_owned()];
        let mut sshd = JournalSpec::from_jail("sshd", &options, &matches, Encoding::Auto).unwrap();
        (sshd.follow, sshd.since) = (false, Some(0));
        assert_eq!(read_all(&sshd).await.len(), 2);

        // Resuming after a stored cursor, following: the entries after it, then it waits.
        sshd.follow = true;
        sshd.after_cursor = Some(all[0].cursor.clone());
        let mut source = JournalSource::spawn(&sshd).unwrap();
        let next = tokio::time::timeout(Duration::from_secs(30), source.next()).await;
        assert_eq!(next.unwrap().unwrap().unwrap().line, all[2].line);
    }
}
