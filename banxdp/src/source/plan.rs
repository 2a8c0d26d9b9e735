//! From a jail's configuration to what it reads: its files (one [`FollowSpec`] per `logpath`
//! line, watched as its [`Backend`] says) or its journal. Pure: values in, values out; the daemon builds one
//! [`super::Follower`] from the file specs of every jail, and one [`super::JournalSource`]
//! per journal jail.

use super::{Encoding, JournalSpec, SourceError};
use crate::config::jails::JailConfig;

/// How a jail's files are watched, from its `backend`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `auto`, `pyinotify`, `inotify`, `gamin`: inotify, else polling.
    Inotify,
    /// `polling`: a stat of every file on each tick.
    Polling,
    /// `systemd[...]`: the journal (see [`super::journal`]); the options in brackets.
    Systemd(Vec<(String, String)>),
}

impl Backend {
    /// Parses a jail's `backend` value; `jail` names the jail in the error.
    pub fn parse(jail: &str, value: &str) -> Result<Self, SourceError> {
        let value = value.trim();
        let (name, options) = match value.split_once('[') {
            Some((name, rest)) => match rest.strip_suffix(']') {
                Some(options) => (name.trim(), options),
                None => return Err(bad_backend(jail, value)),
            },
            None => (value, ""),
        };
        match name {
            "auto" | "pyinotify" | "inotify" | "gamin" if options.trim().is_empty() => {
                Ok(Self::Inotify)
            }
            "polling" if options.trim().is_empty() => Ok(Self::Polling),
            "systemd" => {
                let mut pairs = Vec::new();
                for option in options.split(',').filter(|o| !o.trim().is_empty()) {
                    let (key, value) = option
                        .split_once('=')
                        .ok_or_else(|| bad_backend(jail, value))?;
                    let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
                    pairs.push((key.trim().to_owned(), value.to_owned()));
                }
                Ok(Self::Systemd(pairs))
            }
            _ => Err(bad_backend(jail, value)),
        }
    }
}

fn bad_backend(jail: &str, value: &str) -> SourceError {
    SourceError::Backend {
        jail: jail.to_owned(),
        value: value.to_owned(),
    }
}

/// What one jail follows: one `logpath` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowSpec {
    /// A path or glob.
    pub pattern: String,
    /// `tail`: files present at the start are read from their end, not their start.
    pub from_end: bool,
    pub encoding: Encoding,
    /// `backend = polling`.
    pub polling: bool,
}

impl FollowSpec {
    /// One `logpath` line as fail2ban writes it: `PATTERN [head|tail]`.
    #[must_use]
    pub fn from_logpath(line: &str, encoding: Encoding, polling: bool) -> Self {
        let line = line.trim();
        let (pattern, from_end) = match line.rsplit_once(char::is_whitespace) {
            Some((p, "tail")) => (p.trim_end(), true),
            Some((p, "head")) => (p.trim_end(), false),
            _ => (line, false),
        };
        Self {
            pattern: pattern.to_owned(),
            from_end,
            encoding,
            polling,
        }
    }
}

/// What one jail reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JailSource {
    /// `backend = auto | pyinotify | inotify | polling`: its `logpath` lines.
    Files(Vec<FollowSpec>),
    /// `backend = systemd`: its `journalmatch`.
    Journal(JournalSpec),
}

/// The source a jail's `backend`, `logpath`, `logencoding` and `journalmatch` describe.
pub fn for_jail(jail: &JailConfig) -> Result<JailSource, SourceError> {
    let encoding = Encoding::parse(&jail.name, jail.logencoding.as_deref().unwrap_or("auto"))?;
    match Backend::parse(&jail.name, &jail.backend)? {
        Backend::Systemd(options) => Ok(JailSource::Journal(JournalSpec::from_jail(
            &jail.name,
            &options,
            &jail.journalmatch,
            encoding,
        )?)),
        backend => {
            if jail.logpaths.is_empty() {
                return Err(SourceError::NoLogpath {
                    jail: jail.name.clone(),
                    backend: jail.backend.clone(),
                });
            }
            let polling = backend == Backend::Polling;
            Ok(JailSource::Files(
                jail.logpaths
                    .iter()
                    .map(|line| FollowSpec::from_logpath(line, encoding, polling))
                    .collect(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::jails::{Bantime, Increment};

    fn jail(backend: &str, logpaths: &[&str], journalmatch: &[&str]) -> JailConfig {
        JailConfig {
            name: "sshd".into(),
            backend: backend.into(),
            logpaths: logpaths.iter().map(|&l| l.to_owned()).collect(),
            logencoding: Some("latin-1".into()),
            logtimezone: None,
            failregex: vec![],
            ignoreregex: vec![],
            prefregex: None,
            datepattern: None,
            journalmatch: journalmatch.iter().map(|&l| l.to_owned()).collect(),
            maxlines: 1,
            usedns: "warn".into(),
            maxretry: 5,
            maxmatches: None,
            findtime: 600,
            bantime: Bantime::Seconds(600),
            increment: Increment::default(),
            ignoreip: vec![],
            ignoreself: true,
            ignorecommand: None,
            port: None,
            protocol: None,
            chain: None,
            shadow: None,
            actions: vec![],
        }
    }

    #[test]
    fn a_jail_reads_its_files_or_its_journal() {
        let files = for_jail(&jail(
            "polling",
            &["/var/log/auth.log tail", "/var/log/secure"],
            &[],
        ));
        let JailSource::Files(specs) = files.unwrap() else {
            panic!("files")
        };
        assert_eq!(specs.len(), 2);
        assert!(specs[0].from_end && specs[0].polling && !specs[1].from_end);
        assert_eq!(specs[1].encoding, Encoding::Latin1);

        let journal = for_jail(&jail(
            "systemd",
            &["/ignored"],
            &["_SYSTEMD_UNIT=sshd.service + _COMM=sshd"],
        ));
        let JailSource::Journal(spec) = journal.unwrap() else {
            panic!("journal")
        };
        assert_eq!(
            spec.matches,
            ["_SYSTEMD_UNIT=sshd.service", "+", "_COMM=sshd"]
        );

        let errors = [
            (
                jail("auto", &[], &[]),
                "jail `sshd`: backend `auto` reads files, but no logpath is set",
            ),
            (
                jail("inotifyy", &["/x"], &[]),
                "jail `sshd`: unknown backend `inotifyy` (expected auto, pyinotify, inotify, polling or systemd)",
            ),
        ];
        for (jail, want) in errors {
            assert_eq!(for_jail(&jail).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn backends_and_logpaths_parse_as_fail2ban_writes_them() {
        for value in ["auto", "pyinotify", "inotify", " gamin "] {
            assert_eq!(
                Backend::parse("sshd", value).unwrap(),
                Backend::Inotify,
                "{value}"
            );
        }
        assert_eq!(Backend::parse("sshd", "polling").unwrap(), Backend::Polling);
        assert_eq!(
            Backend::parse("sshd", "systemd").unwrap(),
            Backend::Systemd(vec![])
        );
        assert_eq!(
            Backend::parse(
                "sshd",
                "systemd[journalpath=/var/log/remote, journalflags=1]"
            )
            .unwrap(),
            Backend::Systemd(vec![
                ("journalpath".into(), "/var/log/remote".into()),
                ("journalflags".into(), "1".into())
            ])
        );
        let err = Backend::parse("sshd", "inotfy").unwrap_err().to_string();
        assert_eq!(
            err,
            "jail `sshd`: unknown backend `inotfy` (expected auto, pyinotify, inotify, polling or systemd)"
        );
        assert!(Backend::parse("sshd", "systemd[journalpath").is_err());

        let tail = FollowSpec::from_logpath(" /var/log/auth.log  tail ", Encoding::Auto, false);
        assert_eq!(
            (tail.pattern.as_str(), tail.from_end),
            ("/var/log/auth.log", true)
        );
        let head = FollowSpec::from_logpath("/var/log/nginx/*.log head", Encoding::Auto, false);
        assert_eq!(
            (head.pattern.as_str(), head.from_end),
            ("/var/log/nginx/*.log", false)
        );
        let bare = FollowSpec::from_logpath("/var/log/tail", Encoding::Auto, false);
        assert_eq!(
            (bare.pattern.as_str(), bare.from_end),
            ("/var/log/tail", false)
        );
        let bad = FollowSpec::from_logpath("/var/log/[x", Encoding::Auto, false);
        let err = crate::source::Follower::new(vec![bad], std::collections::HashMap::new());
        let err = err.unwrap_err();
        assert_eq!(err.to_string(), "invalid logpath pattern `/var/log/[x`");
    }
}
