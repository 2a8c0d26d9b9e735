//! From a jail's configuration to what it reads: its files (one [`FollowSpec`] per `logpath`
//! line) or its journal. Pure: values in, values out; the daemon builds one
//! [`super::Follower`] from the file specs of every jail, and one [`super::JournalSource`]
//! per journal jail.

use super::{Backend, Encoding, FollowSpec, JournalSpec, SourceError};
use crate::config::jails::JailConfig;

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
}
