//! The hosts.deny backend: a line per banned target in `/etc/hosts.deny` (the path is an
//! option), as fail2ban's `hostsdeny` action writes them (`sshd: 192.0.2.7`, `ALL: [2001:db8::7]`),
//! for services that still read TCP wrappers.
//!
//! The file is rewritten atomically (a temporary file beside it, then `rename`) under an
//! exclusive `flock` on the file itself, retried until the locked file is the one at the path,
//! so that two writers never lose each other's lines. Only lines this backend wrote are ever
//! removed; every other byte of the file (comments, foreign lines, a missing final newline)
//! stays as it was. Port scopes do not apply (TCP wrappers know daemons, not ports); a jail in
//! shadow mode writes nothing; an allowed target is not written. Expiry is ours
//! (`remove_expired` rewrites the file).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::{self, File, OpenOptions},
    io::{self, Write as _},
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
    path::{Path, PathBuf},
    time::SystemTime,
};

use ipnet::IpNet;

use super::{
    ActiveBan, Ban, Enforcer, Error, JailScope,
    book::{Book, is_host, normalize, remaining},
};

/// How the hosts.deny backend is set up.
#[derive(Clone, Debug)]
pub struct HostsDenyOptions {
    /// The file (`/etc/hosts.deny`).
    pub path: PathBuf,
    /// A jail's daemon list (`sshd`, `sshd, vsftpd`); jails not named here use `default_daemons`.
    pub daemons: BTreeMap<String, String>,
    /// The daemon list of other jails (`ALL`, fail2ban's default).
    pub default_daemons: String,
}

impl Default for HostsDenyOptions {
    fn default() -> Self {
        Self {
            path: PathBuf::from("/etc/hosts.deny"),
            daemons: BTreeMap::new(),
            default_daemons: "ALL".into(),
        }
    }
}

/// Errors of the hosts.deny backend.
#[derive(Debug, thiserror::Error)]
pub enum HostsDenyError {
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot lock `{}`", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A target as TCP wrappers read it: `192.0.2.7`, `192.0.2.0/255.255.255.0`, `[2001:db8::7]`,
/// `[2001:db8::]/64`.
#[must_use]
pub fn pattern(target: IpNet) -> String {
    match target {
        IpNet::V4(n) if is_host(target) => n.addr().to_string(),
        IpNet::V4(n) => format!("{}/{}", n.network(), n.netmask()),
        IpNet::V6(n) if is_host(target) => format!("[{}]", n.addr()),
        IpNet::V6(n) => format!("[{}]/{}", n.network(), n.prefix_len()),
    }
}

/// The line of a ban: `daemons: pattern`.
#[must_use]
pub fn line(daemons: &str, target: IpNet) -> String {
    format!("{daemons}: {}", pattern(target))
}

/// `content` with every line in `remove` taken out and every line of `add` not yet present
/// appended; all other bytes stay as they were.
#[must_use]
pub fn edit(content: &str, add: &BTreeSet<String>, remove: &BTreeSet<String>) -> String {
    let mut out = String::with_capacity(content.len());
    let mut present = BTreeSet::new();
    for piece in content.split_inclusive('\n') {
        let text = piece.strip_suffix('\n').unwrap_or(piece);
        if remove.contains(text) {
            continue;
        }
        present.insert(text);
        out.push_str(piece);
    }
    let missing: Vec<&String> = add
        .iter()
        .filter(|l| !present.contains(l.as_str()))
        .collect();
    if !missing.is_empty() && !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for l in missing {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// The hosts.deny enforcer.
pub struct HostsDenyEnforcer {
    options: HostsDenyOptions,
    jails: BTreeMap<String, JailScope>,
    allowed: Vec<IpNet>,
    book: Book,
    /// The lines this backend wrote and has not removed.
    written: BTreeSet<String>,
}

impl HostsDenyEnforcer {
    /// Does not touch the file until the first ban.
    #[must_use]
    pub fn new(options: HostsDenyOptions) -> Self {
        Self {
            options,
            jails: BTreeMap::new(),
            allowed: Vec::new(),
            book: Book::default(),
            written: BTreeSet::new(),
        }
    }

    /// The lines the current bans need.
    fn wanted(&self, now: SystemTime) -> BTreeSet<String> {
        let mut lines = BTreeSet::new();
        for ban in self.book.active() {
            if remaining(ban.expiry, now).is_none()
                || self.allowed.iter().any(|a| a.contains(&ban.target))
            {
                continue;
            }
            for jail in &ban.jails {
                let Some(scope) = self.jails.get(jail) else {
                    continue;
                };
                if scope.shadow {
                    continue;
                }
                let daemons = self
                    .options
                    .daemons
                    .get(jail)
                    .unwrap_or(&self.options.default_daemons);
                lines.insert(line(daemons, ban.target));
            }
        }
        lines
    }

    /// Makes the file hold exactly our wanted lines besides what else it holds.
    fn sync(&mut self) -> Result<(), Error> {
        let wanted = self.wanted(SystemTime::now());
        let remove: BTreeSet<String> = self.written.difference(&wanted).cloned().collect();
        if remove.is_empty() && wanted == self.written {
            return Ok(());
        }
        rewrite(&self.options.path, |content| {
            edit(content, &wanted, &remove)
        })?;
        self.written = wanted;
        Ok(())
    }
}

/// Opens and exclusively locks the file at `path` (created empty if missing), retrying until
/// the locked file is still the one at the path (another writer may have renamed over it).
fn lock(path: &Path) -> Result<File, HostsDenyError> {
    let err = |source| HostsDenyError::Lock {
        path: path.to_path_buf(),
        source,
    };
    loop {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(err)?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(err(io::Error::last_os_error()));
        }
        let held = file.metadata().map_err(err)?;
        match fs::metadata(path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(file),
            Ok(_) | Err(_) => {}
        }
    }
}

/// Replaces the file at `path` with `change(content)`, atomically and under its lock.
fn rewrite(path: &Path, change: impl FnOnce(&str) -> String) -> Result<(), HostsDenyError> {
    let locked = lock(path)?;
    let content = fs::read_to_string(path).map_err(|source| HostsDenyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let new = change(&content);
    if new == content {
        return Ok(());
    }
    let werr = |source| HostsDenyError::Write {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map_or_else(|| "hosts.deny".into(), |n| n.to_string_lossy().into_owned());
    let temp = path.with_file_name(format!(".{name}.banxdp-{}", std::process::id()));
    let mode = locked.metadata().map_err(werr)?.permissions();
    let written = (|| {
        let mut file = File::create(&temp)?;
        file.write_all(new.as_bytes())?;
        fs::set_permissions(&temp, mode)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written.map_err(werr)?;
    drop(locked);
    Ok(())
}

impl Enforcer for HostsDenyEnforcer {
    fn name(&self) -> &'static str {
        "hostsdeny"
    }

    fn describe(&self) -> String {
        format!("hostsdeny: {}", self.options.path.display())
    }

    fn add_jail(&mut self, jail: &JailScope) -> Result<(), Error> {
        self.jails.insert(jail.name.clone(), jail.clone());
        self.sync()
    }

    fn remove_jail(&mut self, name: &str) -> Result<(), Error> {
        if self.jails.remove(name).is_none() {
            return Err(Error::UnknownJail(name.to_string()));
        }
        self.book.remove_jail(name);
        self.sync()
    }

    fn ban_many(&mut self, bans: &[Ban]) -> Result<(), Error> {
        for ban in bans {
            if !self.jails.contains_key(&ban.jail) {
                return Err(Error::UnknownJail(ban.jail.clone()));
            }
        }
        for ban in bans {
            self.book.ban(&ban.jail, normalize(ban.target), ban.expiry);
        }
        self.sync()
    }

    fn unban(&mut self, jail: &str, target: IpNet) -> Result<(), Error> {
        if !self.jails.contains_key(jail) {
            return Err(Error::UnknownJail(jail.to_string()));
        }
        self.book.unban(jail, normalize(target));
        self.sync()
    }

    fn set_allowed(&mut self, nets: &[IpNet]) -> Result<(), Error> {
        self.allowed = nets.iter().map(|n| normalize(*n)).collect();
        self.sync()
    }

    fn active(&self) -> Result<Vec<ActiveBan>, Error> {
        Ok(self.book.active())
    }

    fn remove_expired(&mut self) -> Result<usize, Error> {
        let ended = self.book.remove_expired(SystemTime::now()).len();
        if ended > 0 {
            self.sync()?;
        }
        Ok(ended)
    }

    fn detach(mut self: Box<Self>) -> Result<(), Error> {
        self.book = Book::default();
        self.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        crate::enforce::parse_target(s).unwrap()
    }

    fn set(lines: &[&str]) -> BTreeSet<String> {
        lines.iter().map(|l| (*l).to_string()).collect()
    }

    #[test]
    fn patterns_are_as_tcp_wrappers_read_them() {
        assert_eq!(line("sshd", net("192.0.2.7")), "sshd: 192.0.2.7");
        assert_eq!(pattern(net("192.0.2.0/24")), "192.0.2.0/255.255.255.0");
        assert_eq!(pattern(net("2001:db8::7")), "[2001:db8::7]");
        assert_eq!(pattern(net("2001:db8::/48")), "[2001:db8::]/48");
    }

    #[test]
    fn edits_keep_every_other_byte() {
        let content = "# comment\r\nALL: 10.0.0.1\nsshd: 192.0.2.7\n\nvsftpd: 192.0.2.7";
        let out = edit(
            content,
            &set(&["ALL: 192.0.2.9"]),
            &set(&["sshd: 192.0.2.7"]),
        );
        assert_eq!(
            out,
            "# comment\r\nALL: 10.0.0.1\n\nvsftpd: 192.0.2.7\nALL: 192.0.2.9\n"
        );
        assert_eq!(edit(content, &set(&["ALL: 10.0.0.1"]), &set(&[])), content);
        assert_eq!(edit("", &set(&["a: b"]), &set(&[])), "a: b\n");
    }
}
