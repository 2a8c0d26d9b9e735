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
    io::{AsyncBufReadExt as _, BufReader, Lines},
    process::{Child, ChildStdout, Command},
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

/// A running `journalctl` whose entries are read one by one.
#[derive(Debug)]
pub struct JournalSource {
    jail: String,
    encoding: Encoding,
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl JournalSource {
    /// Starts `journalctl` for `spec`. A machine without journalctl, or (reading the system
    /// journal) without a journal directory, is a clear error for this jail alone.
    pub fn spawn(spec: &JournalSpec) -> Result<Self, SourceError> {
        if spec.directory.is_none()
            && spec.files.is_empty()
            && !["/var/log/journal", "/run/log/journal"]
                .iter()
                .any(|d| Path::new(d).is_dir())
        {
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
            child,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// The next entry; `Ok(None)` once journalctl has ended cleanly (only without `follow`).
    pub async fn next(&mut self) -> Result<Option<JournalEntry>, SourceError> {
        loop {
            let line = self
                .lines
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

    /// Waits for journalctl to exit; its complaint, if it failed, is the error.
    async fn finish(&mut self) -> Result<(), SourceError> {
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            use tokio::io::AsyncReadExt as _;
            let _ = pipe.read_to_string(&mut stderr).await;
        }
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
