//! What the firewall backends share: the index of the bans they applied (which jail bans which
//! target until when), target normalisation, and names safe for nft, ipset and iptables.
//!
//! Pure: no I/O, and the time is always an argument. The XDP backend keeps its own index in
//! its maps; the nftables, ipset, iptables and hosts.deny backends keep theirs here, so that
//! `unban` of one jail's ban leaves another jail's ban of the same target in place and
//! `active` answers without asking the kernel.

use std::{
    collections::{BTreeMap, btree_map::Entry},
    time::{Duration, SystemTime},
};

use ipnet::{IpNet, Ipv4Net};

use super::{ActiveBan, Expiry};

/// Normalises a target: host bits cleared, IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as IPv4, since
/// that is how such a peer's packets arrive (the XDP backend does the same).
#[must_use]
pub fn normalize(net: IpNet) -> IpNet {
    let net = net.trunc();
    if let IpNet::V6(v6) = net {
        if let Some(v4) = v6.addr().to_ipv4_mapped() {
            if v6.prefix_len() >= 96 {
                let prefix = v6.prefix_len() - 96;
                return IpNet::V4(Ipv4Net::new(v4, prefix).expect("prefix <= 32").trunc());
            }
        }
    }
    net
}

/// Whether `net` is a single address (`/32`, `/128`).
#[must_use]
pub fn is_host(net: IpNet) -> bool {
    net.prefix_len() == net.max_prefix_len()
}

/// How long a ban still runs at `now`: `None` when it has ended, `Some(None)` when it never
/// ends.
#[must_use]
pub fn remaining(expiry: Expiry, now: SystemTime) -> Option<Option<Duration>> {
    match expiry {
        Expiry::Never => Some(None),
        Expiry::At(at) => match at.duration_since(now) {
            Ok(left) if !left.is_zero() => Some(Some(left)),
            _ => None,
        },
    }
}

/// `name` as an identifier of at most `max` bytes of `[A-Za-z0-9_]`. A name that had to change
/// (other characters, too long) gets a hash of the original appended, so that two jails never
/// share an identifier.
#[must_use]
pub fn safe_name(name: &str, max: usize) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if clean == name && clean.len() <= max && !clean.is_empty() {
        return clean;
    }
    // FNV-1a, 32 bits: stable across runs and versions, which the kernel-side names need.
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let keep = max.saturating_sub(9).min(clean.len());
    format!("{}_{hash:08x}", &clean[..keep])
}

/// The bans a backend applied: target → the jails banning it, each with its expiry.
#[derive(Clone, Debug, Default)]
pub struct Book {
    entries: BTreeMap<IpNet, Vec<(String, Expiry)>>,
}

impl Book {
    /// Records `jail`'s ban of `target`; returns the expiry it replaces, if it held one.
    pub fn ban(&mut self, jail: &str, target: IpNet, expiry: Expiry) -> Option<Expiry> {
        let jails = self.entries.entry(target).or_default();
        if let Some(slot) = jails.iter_mut().find(|(j, _)| j == jail) {
            return Some(std::mem::replace(&mut slot.1, expiry));
        }
        jails.push((jail.to_string(), expiry));
        None
    }

    /// Forgets `jail`'s ban of `target`; returns whether it held one.
    pub fn unban(&mut self, jail: &str, target: IpNet) -> bool {
        let Entry::Occupied(mut entry) = self.entries.entry(target) else {
            return false;
        };
        let before = entry.get().len();
        entry.get_mut().retain(|(j, _)| j != jail);
        let removed = entry.get().len() != before;
        if entry.get().is_empty() {
            entry.remove();
        }
        removed
    }

    /// Whether `jail` bans `target`.
    #[must_use]
    pub fn holds(&self, jail: &str, target: IpNet) -> bool {
        self.expiry(jail, target).is_some()
    }

    /// `jail`'s expiry for `target`, if it bans it.
    #[must_use]
    pub fn expiry(&self, jail: &str, target: IpNet) -> Option<Expiry> {
        self.entries
            .get(&target)?
            .iter()
            .find(|(j, _)| j == jail)
            .map(|(_, e)| *e)
    }

    /// Every target `jail` bans, with its expiry.
    #[must_use]
    pub fn of_jail(&self, jail: &str) -> Vec<(IpNet, Expiry)> {
        self.entries
            .iter()
            .filter_map(|(target, jails)| {
                jails
                    .iter()
                    .find(|(j, _)| j == jail)
                    .map(|(_, e)| (*target, *e))
            })
            .collect()
    }

    /// Forgets every ban of `jail`; returns the targets it banned.
    pub fn remove_jail(&mut self, jail: &str) -> Vec<IpNet> {
        let targets: Vec<IpNet> = self.of_jail(jail).into_iter().map(|(t, _)| t).collect();
        for target in &targets {
            self.unban(jail, *target);
        }
        targets
    }

    /// Forgets every ban that has ended at `now`; returns them as `(jail, target)`.
    pub fn remove_expired(&mut self, now: SystemTime) -> Vec<(String, IpNet)> {
        let ended: Vec<(String, IpNet)> = self
            .entries
            .iter()
            .flat_map(|(target, jails)| {
                jails
                    .iter()
                    .filter(|(_, e)| remaining(*e, now).is_none())
                    .map(|(j, _)| (j.clone(), *target))
            })
            .collect();
        for (jail, target) in &ended {
            self.unban(jail, *target);
        }
        ended
    }

    /// Every ban, one entry per target, with its jails and the latest expiry among them.
    #[must_use]
    pub fn active(&self) -> Vec<ActiveBan> {
        self.entries
            .iter()
            .map(|(target, jails)| ActiveBan {
                target: *target,
                jails: jails.iter().map(|(j, _)| j.clone()).collect(),
                expiry: jails
                    .iter()
                    .map(|(_, e)| *e)
                    .max()
                    .expect("an entry has a jail"),
                drops: None,
                shadow_hits: None,
            })
            .collect()
    }

    /// How many (jail, target) bans there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.values().map(Vec::len).sum()
    }

    /// Whether there is no ban.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        crate::enforce::parse_target(s).unwrap()
    }

    #[test]
    fn one_jails_unban_leaves_the_others_ban() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut book = Book::default();
        assert_eq!(book.ban("sshd", net("192.0.2.7"), Expiry::At(t0)), None);
        book.ban("web", net("192.0.2.7"), Expiry::Never);
        let active = book.active();
        assert_eq!(active[0].jails, ["sshd", "web"]);
        assert_eq!(active[0].expiry, Expiry::Never);
        assert!(book.unban("web", net("192.0.2.7")));
        assert!(!book.unban("web", net("192.0.2.7")));
        assert!(book.holds("sshd", net("192.0.2.7")));
        assert_eq!(book.active()[0].expiry, Expiry::At(t0));
    }

    #[test]
    fn expiry_removes_only_what_ended() {
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let mut book = Book::default();
        book.ban("a", net("192.0.2.1"), Expiry::At(t(10)));
        book.ban("b", net("192.0.2.1"), Expiry::At(t(20)));
        book.ban("a", net("2001:db8::/64"), Expiry::Never);
        assert_eq!(book.remove_expired(t(10)), [("a".into(), net("192.0.2.1"))]);
        assert_eq!(book.len(), 2);
        assert_eq!(book.remove_expired(t(25)).len(), 1);
        assert_eq!(book.remove_jail("a"), [net("2001:db8::/64")]);
        assert!(book.is_empty());
    }

    #[test]
    fn remaining_time() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(remaining(Expiry::Never, now), Some(None));
        assert_eq!(remaining(Expiry::At(now), now), None);
        assert_eq!(
            remaining(Expiry::At(now + Duration::from_secs(5)), now),
            Some(Some(Duration::from_secs(5)))
        );
    }

    #[test]
    fn names_are_safe_and_distinct() {
        assert_eq!(safe_name("sshd", 20), "sshd");
        let dashed = safe_name("sshd-ddos", 20);
        assert!(dashed.starts_with("sshd_ddos_"), "{dashed}");
        assert_ne!(dashed, safe_name("sshd_ddos", 20));
        let long = safe_name(&"x".repeat(40), 20);
        assert_eq!(long.len(), 20);
        assert_eq!(safe_name("", 20).len(), 9);
    }

    #[test]
    fn normalize_unmaps_ipv4() {
        assert_eq!(normalize(net("::ffff:192.0.2.7")), net("192.0.2.7"));
        assert_eq!(normalize(net("10.1.2.3/24")), net("10.1.2.0/24"));
    }
}
