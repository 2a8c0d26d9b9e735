//! The configuration that ships in `config/`, built into the binary, for machines with
//! neither /etc/banxdp nor /etc/fail2ban. It is read through the same `Files` interface as a
//! directory on disk, under the name `(built-in)`.

use std::path::{Path, PathBuf};

use super::fail2ban::Files;

/// The directory name the built-in files appear under in messages.
pub const ROOT: &str = "(built-in)";

/// `(path under config/, text)`.
const FILES: &[(&str, &str)] = &[
    ("jail.conf", include_str!("../../../config/jail.conf")),
    (
        "filter.d/apache-auth.conf",
        include_str!("../../../config/filter.d/apache-auth.conf"),
    ),
    (
        "filter.d/apache-badbots.conf",
        include_str!("../../../config/filter.d/apache-badbots.conf"),
    ),
    (
        "filter.d/asterisk.conf",
        include_str!("../../../config/filter.d/asterisk.conf"),
    ),
    (
        "filter.d/courier-auth.conf",
        include_str!("../../../config/filter.d/courier-auth.conf"),
    ),
    (
        "filter.d/dovecot.conf",
        include_str!("../../../config/filter.d/dovecot.conf"),
    ),
    (
        "filter.d/mysqld-auth.conf",
        include_str!("../../../config/filter.d/mysqld-auth.conf"),
    ),
    (
        "filter.d/nginx-botsearch.conf",
        include_str!("../../../config/filter.d/nginx-botsearch.conf"),
    ),
    (
        "filter.d/nginx-http-auth.conf",
        include_str!("../../../config/filter.d/nginx-http-auth.conf"),
    ),
    (
        "filter.d/nginx-limit-req.conf",
        include_str!("../../../config/filter.d/nginx-limit-req.conf"),
    ),
    (
        "filter.d/postfix.conf",
        include_str!("../../../config/filter.d/postfix.conf"),
    ),
    (
        "filter.d/proftpd.conf",
        include_str!("../../../config/filter.d/proftpd.conf"),
    ),
    (
        "filter.d/pure-ftpd.conf",
        include_str!("../../../config/filter.d/pure-ftpd.conf"),
    ),
    (
        "filter.d/recidive.conf",
        include_str!("../../../config/filter.d/recidive.conf"),
    ),
    (
        "filter.d/sshd.conf",
        include_str!("../../../config/filter.d/sshd.conf"),
    ),
    (
        "filter.d/vsftpd.conf",
        include_str!("../../../config/filter.d/vsftpd.conf"),
    ),
    (
        "action.d/banxdp-hostsdeny.conf",
        include_str!("../../../config/action.d/banxdp-hostsdeny.conf"),
    ),
    (
        "action.d/banxdp-ipset-allports.conf",
        include_str!("../../../config/action.d/banxdp-ipset-allports.conf"),
    ),
    (
        "action.d/banxdp-ipset.conf",
        include_str!("../../../config/action.d/banxdp-ipset.conf"),
    ),
    (
        "action.d/banxdp-iptables-allports.conf",
        include_str!("../../../config/action.d/banxdp-iptables-allports.conf"),
    ),
    (
        "action.d/banxdp-iptables.conf",
        include_str!("../../../config/action.d/banxdp-iptables.conf"),
    ),
    (
        "action.d/banxdp-nftables-allports.conf",
        include_str!("../../../config/action.d/banxdp-nftables-allports.conf"),
    ),
    (
        "action.d/banxdp-nftables.conf",
        include_str!("../../../config/action.d/banxdp-nftables.conf"),
    ),
    (
        "action.d/mail-whois.conf",
        include_str!("../../../config/action.d/mail-whois.conf"),
    ),
    (
        "action.d/sendmail-whois-lines.conf",
        include_str!("../../../config/action.d/sendmail-whois-lines.conf"),
    ),
];

/// The built-in files.
pub struct Embedded;

impl Files for Embedded {
    fn read(&self, path: &Path) -> Option<String> {
        let relative = path.strip_prefix(ROOT).ok()?;
        FILES
            .iter()
            .find(|(name, _)| Path::new(name) == relative)
            .map(|(_, text)| (*text).to_string())
    }

    fn list(&self, dir: &Path, ext: &str) -> Vec<PathBuf> {
        let Ok(relative) = dir.strip_prefix(ROOT) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = FILES
            .iter()
            .map(|(name, _)| Path::new(name))
            .filter(|p| p.parent() == Some(relative) && p.extension().is_some_and(|e| e == ext))
            .map(|p| Path::new(ROOT).join(p))
            .collect();
        found.sort();
        found
    }
}

/// Where jails come from: a directory, or the built-in files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigDir {
    Disk(PathBuf),
    BuiltIn,
}

/// `explicit` if given, else the first of `candidates` that `is_dir` says exists, else the
/// built-in configuration.
pub fn choose(
    explicit: Option<&Path>,
    candidates: &[&str],
    is_dir: impl Fn(&Path) -> bool,
) -> ConfigDir {
    if let Some(dir) = explicit {
        return ConfigDir::Disk(dir.to_path_buf());
    }
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|d| is_dir(d))
        .map_or(ConfigDir::BuiltIn, ConfigDir::Disk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::dump_stream;

    #[test]
    fn directories_are_chosen_in_order_then_the_built_in_files() {
        let candidates = ["/etc/banxdp", "/etc/fail2ban"];
        let none = |_: &Path| false;
        assert_eq!(choose(None, &candidates, none), ConfigDir::BuiltIn);
        let only_fail2ban = |p: &Path| p == Path::new("/etc/fail2ban");
        assert_eq!(
            choose(None, &candidates, only_fail2ban),
            ConfigDir::Disk("/etc/fail2ban".into())
        );
        let both = |_: &Path| true;
        assert_eq!(
            choose(None, &candidates, both),
            ConfigDir::Disk("/etc/banxdp".into())
        );
        assert_eq!(
            choose(Some(Path::new("/x")), &candidates, both),
            ConfigDir::Disk("/x".into())
        );
    }

    #[test]
    fn the_built_in_jails_read_with_only_sshd_enabled() {
        let dump = dump_stream(&Embedded, Path::new(ROOT)).unwrap();
        let names: Vec<&str> = dump.jails.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["sshd"]);
        assert!(dump.jails[0].error.is_none(), "{:?}", dump.jails[0].error);
        let filter = dump.jails[0].filter.as_ref().unwrap();
        assert!(filter["failregex"].text().contains("Failed (?:password"));
        assert!(dump.loops.is_empty());
    }
}
