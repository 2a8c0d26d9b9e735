//! Enforcement: where a ban decision becomes packets that no longer arrive.
//!
//! One trait, [`Enforcer`], for every backend (XDP here; nftables, ipset, iptables,
//! hosts.deny and fail2ban action.d commands beside it). Backends get decisions that are
//! already made (the jail logic and the ban store sit above them) and must apply them
//! idempotently: banning an address twice, or unbanning one that is not banned, is not an
//! error. Only the XDP backend owns aya handles; nothing here spawns tasks or reads config
//! files.

pub mod book;
pub mod exec;
pub mod hostsdeny;
pub mod ipset;
pub mod iptables;
pub mod nftables;
pub mod xdp;

use std::{ops::RangeInclusive, time::SystemTime};

use ipnet::IpNet;

/// The ports a jail's bans cover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortScope {
    /// Every packet from a banned source (fail2ban's `*-allports` actions).
    All,
    /// Only TCP/UDP packets to these destination ports.
    Ports {
        /// IP protocol numbers (`banxdp_common::IPPROTO_TCP`, `IPPROTO_UDP`).
        protocols: Vec<u8>,
        /// Inclusive port ranges; a single port is `p..=p`.
        ranges: Vec<RangeInclusive<u16>>,
    },
    /// Different ports for different protocols (a jail whose firewall actions ban `tcp 22`
    /// and `udp 53`): each protocol's own ranges. [`PortScope::union`] makes it only when no
    /// `Ports` says the same.
    PerProtocol(Vec<ProtocolPorts>),
}

/// One protocol's ports in a [`PortScope`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolPorts {
    /// An IP protocol number.
    pub protocol: u8,
    /// Inclusive port ranges.
    pub ranges: Vec<RangeInclusive<u16>>,
}

impl PortScope {
    /// Each protocol with its ports, protocols in ascending order, each protocol's ranges
    /// sorted and merged where they touch; `None` for [`PortScope::All`]. What every
    /// backend writes its rules from.
    #[must_use]
    pub fn per_protocol(&self) -> Option<Vec<ProtocolPorts>> {
        let pairs: Vec<(u8, RangeInclusive<u16>)> = match self {
            Self::All => return None,
            Self::Ports { protocols, ranges } => protocols
                .iter()
                .flat_map(|p| ranges.iter().map(|r| (*p, r.clone())))
                .collect(),
            Self::PerProtocol(list) => list
                .iter()
                .flat_map(|p| p.ranges.iter().map(|r| (p.protocol, r.clone())))
                .collect(),
        };
        let mut by: std::collections::BTreeMap<u8, Vec<RangeInclusive<u16>>> =
            std::collections::BTreeMap::new();
        for (protocol, range) in pairs {
            by.entry(protocol).or_default().push(range);
        }
        Some(
            by.into_iter()
                .map(|(protocol, ranges)| ProtocolPorts {
                    protocol,
                    ranges: merge_ranges(ranges),
                })
                .collect(),
        )
    }

    /// Whether the scope covers no packet at all (no protocol or no port): backends refuse it.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.per_protocol()
            .is_some_and(|list| list.iter().all(|p| p.ranges.is_empty()))
    }

    /// The packets that any of `scopes` covers, exactly: [`PortScope::All`] when one is;
    /// else `Ports` when every protocol has the same ports, `PerProtocol` when they differ.
    /// Ranges come sorted and merged.
    #[must_use]
    pub fn union<'a>(scopes: impl IntoIterator<Item = &'a PortScope>) -> PortScope {
        let mut list = Vec::new();
        for scope in scopes {
            match scope.per_protocol() {
                None => return Self::All,
                Some(mut each) => list.append(&mut each),
            }
        }
        let list = Self::PerProtocol(list)
            .per_protocol()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| !p.ranges.is_empty())
            .collect::<Vec<_>>();
        match list.first() {
            Some(first) if list.iter().all(|p| p.ranges == first.ranges) => Self::Ports {
                protocols: list.iter().map(|p| p.protocol).collect(),
                ranges: first.ranges.clone(),
            },
            _ => Self::PerProtocol(list),
        }
    }
}

impl PortScope {
    /// Protocols that share the same ports, grouped, each group with its ports, in the order
    /// of [`PortScope::per_protocol`]; `None` for [`PortScope::All`]. A rule per group is what
    /// nftables and `banxdp dump` write.
    #[must_use]
    pub fn grouped(&self) -> Option<Vec<PortGroup>> {
        let mut groups: Vec<PortGroup> = Vec::new();
        for p in self.per_protocol()? {
            match groups.iter_mut().find(|g| g.ranges == p.ranges) {
                Some(group) => group.protocols.push(p.protocol),
                None => groups.push(PortGroup {
                    protocols: vec![p.protocol],
                    ranges: p.ranges,
                }),
            }
        }
        Some(groups)
    }
}

/// Protocols that share the same ports (see [`PortScope::grouped`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortGroup {
    /// IP protocol numbers.
    pub protocols: Vec<u8>,
    /// Inclusive port ranges, sorted and merged.
    pub ranges: Vec<RangeInclusive<u16>>,
}

impl PortGroup {
    /// The protocols' names, joined by `separator`.
    #[must_use]
    pub fn names(&self, separator: &str) -> String {
        let names: Vec<String> = self.protocols.iter().map(|p| protocol_name(*p)).collect();
        names.join(separator)
    }
}

/// An IP protocol's name as the firewalls spell it (`tcp`, `udp`, `dccp`, `sctp`), else its
/// number.
#[must_use]
pub fn protocol_name(protocol: u8) -> String {
    match protocol {
        6 => "tcp".into(),
        17 => "udp".into(),
        33 => "dccp".into(),
        132 => "sctp".into(),
        other => other.to_string(),
    }
}

/// Port ranges as a list, `22,80:90`: each range written `start{to}end` (a single port as
/// itself), joined by `separator`.
#[must_use]
pub fn ranges_text(ranges: &[RangeInclusive<u16>], to: char, separator: &str) -> String {
    let words: Vec<String> = ranges
        .iter()
        .map(|r| {
            if r.start() == r.end() {
                r.start().to_string()
            } else {
                format!("{}{to}{}", r.start(), r.end())
            }
        })
        .collect();
    words.join(separator)
}

/// `all ports`, `tcp 22,2200:2299`, `tcp,udp 53`, `tcp 22 and udp 53` (`banxdp dump`).
impl std::fmt::Display for PortScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(groups) = self.grouped() else {
            return f.write_str("all ports");
        };
        let text: Vec<String> = groups
            .iter()
            .map(|g| format!("{} {}", g.names(","), ranges_text(&g.ranges, ':', ",")))
            .collect();
        f.write_str(&text.join(" and "))
    }
}

/// Sorts `ranges` and merges those that overlap or touch (`20..=21` and `22..=22`).
fn merge_ranges(mut ranges: Vec<RangeInclusive<u16>>) -> Vec<RangeInclusive<u16>> {
    ranges.sort_by_key(|r| (*r.start(), *r.end()));
    let mut out: Vec<RangeInclusive<u16>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        if range.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if u32::from(*range.start()) <= u32::from(*last.end()) + 1 => {
                let end = (*last.end()).max(*range.end());
                *last = *last.start()..=end;
            }
            _ => out.push(range),
        }
    }
    out
}

/// What an enforcer must know of a jail before its bans arrive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JailScope {
    pub name: String,
    pub ports: PortScope,
    /// Count what the jail would drop, and pass it.
    pub shadow: bool,
}

/// When a ban ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Expiry {
    At(SystemTime),
    Never,
}

/// One ban: a jail bans an address or a network until a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    pub jail: String,
    pub target: IpNet,
    pub expiry: Expiry,
}

/// A ban as a backend holds it, with what it knows of its effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveBan {
    pub target: IpNet,
    /// The jails banning the target.
    pub jails: Vec<String>,
    /// The latest expiry among them.
    pub expiry: Expiry,
    /// Packets dropped because of this ban, where the backend counts them.
    pub drops: Option<u64>,
    /// Packets that a shadow-mode jail would have dropped.
    pub shadow_hits: Option<u64>,
}

/// A backend that makes bans take effect.
pub trait Enforcer {
    /// A short name for logs (`xdp`, `nftables`, ...).
    fn name(&self) -> &'static str;

    /// Declares a jail, or changes its port scope or shadow mode.
    fn add_jail(&mut self, jail: &JailScope) -> Result<(), Error>;

    /// Forgets a jail and lifts every ban it holds.
    fn remove_jail(&mut self, name: &str) -> Result<(), Error>;

    /// Applies many bans at once (the start-up restore uses this).
    fn ban_many(&mut self, bans: &[Ban]) -> Result<(), Error>;

    /// [`Enforcer::ban_many`] for bans whose targets the backend holds for no jail now (the
    /// start-up restore knows which): a backend may skip reading what it holds. A target may
    /// come more than once in `bans`.
    fn ban_many_new(&mut self, bans: &[Ban]) -> Result<(), Error> {
        self.ban_many(bans)
    }

    /// Applies one ban.
    fn ban(&mut self, ban: &Ban) -> Result<(), Error> {
        self.ban_many(std::slice::from_ref(ban))
    }

    /// Lifts `jail`'s ban of `target`; other jails' bans of it stay.
    fn unban(&mut self, jail: &str, target: IpNet) -> Result<(), Error>;

    /// Replaces the allow list: sources in it are never dropped, whatever bans them.
    fn set_allowed(&mut self, nets: &[IpNet]) -> Result<(), Error>;

    /// Every ban the backend holds now.
    fn active(&self) -> Result<Vec<ActiveBan>, Error>;

    /// [`Enforcer::active`] one ban at a time, for callers that keep less than an
    /// `ActiveBan` of each (the start-up reconciliation of a million pinned bans).
    fn each_active(&self, each: &mut dyn FnMut(ActiveBan)) -> Result<(), Error> {
        for ban in self.active()? {
            each(ban);
        }
        Ok(())
    }

    /// Removes bans whose expiry has passed; returns how many entries went.
    fn remove_expired(&mut self) -> Result<usize, Error>;

    /// Upkeep on the daemon's tidy tick (once a minute). Nothing for most backends; XDP
    /// checks the clock line its program bounds expiries with, which bans being written
    /// would otherwise be the only occasion to do.
    fn tidy(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Takes over from what an earlier process left enforcing, once this backend holds the
    /// start-up restore (XDP: the pinned links switch to the new program only now, so that a
    /// map started empty is never consulted). Nothing to do for most backends.
    fn take_over(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Where and how the backend enforces, for `status` (`native on eth0`).
    fn describe(&self) -> String {
        self.name().to_string()
    }

    /// Packet counters per interface, where the backend keeps them.
    fn counters(&self) -> Result<Vec<xdp::InterfaceCounters>, Error> {
        Ok(Vec::new())
    }

    /// Removes everything the backend put in place (`banxdp stop --detach`): enforcement
    /// ends. Without it, a backend's state may outlive the process on purpose (XDP's pins).
    fn detach(self: Box<Self>) -> Result<(), Error> {
        Ok(())
    }
}

/// Errors of any backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown jail `{0}`: declare it with `add_jail` first")]
    UnknownJail(String),
    #[error("jail `{name}` cannot be added: the XDP backend holds at most {max} jails")]
    TooManyJails { name: String, max: u32 },
    #[error("jail name `{name}` is longer than {max} bytes")]
    JailNameTooLong { name: String, max: usize },
    #[error("jail `{jail}`: a port scope needs at least one protocol and one port range")]
    EmptyPortScope { jail: String },
    #[error(transparent)]
    Xdp(#[from] xdp::XdpError),
    #[error(transparent)]
    Action(#[from] crate::action::ActionError),
    #[error(transparent)]
    Exec(#[from] exec::ExecError),
    #[error(transparent)]
    HostsDeny(#[from] hostsdeny::HostsDenyError),
}

/// Parses a ban target: an address (`192.0.2.7`, `2001:db8::7`) or a network in CIDR form
/// (`192.0.2.0/24`), its host bits cleared (`192.0.2.5/24` is `192.0.2.0/24`, as fail2ban
/// and the kernel's tries read it), so that one network has one spelling.
pub fn parse_target(text: &str) -> Result<IpNet, ipnet::AddrParseError> {
    match text.parse::<std::net::IpAddr>() {
        Ok(addr) => Ok(IpNet::from(addr)),
        Err(_) => text.parse::<IpNet>().map(|net| net.trunc()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unions_are_exact_per_protocol() {
        let ports = |protocols: &[u8], ranges: &[RangeInclusive<u16>]| PortScope::Ports {
            protocols: protocols.to_vec(),
            ranges: ranges.to_vec(),
        };
        let (tcp, udp) = (6, 17);
        assert_eq!(
            PortScope::union(&[ports(&[tcp], &[22..=22]), ports(&[udp], &[53..=53])]),
            PortScope::PerProtocol(vec![
                ProtocolPorts {
                    protocol: tcp,
                    ranges: vec![22..=22]
                },
                ProtocolPorts {
                    protocol: udp,
                    ranges: vec![53..=53]
                },
            ])
        );
        assert_eq!(
            PortScope::union(&[
                ports(&[tcp], &[2222..=2222, 22..=22]),
                ports(&[tcp], &[22..=22, 20..=21, 1000..=2000, 1500..=3000])
            ]),
            ports(&[tcp], &[20..=22, 1000..=3000])
        );
        assert_eq!(
            PortScope::union(&[ports(&[udp], &[53..=53]), ports(&[tcp], &[53..=53])]),
            ports(&[tcp, udp], &[53..=53])
        );
        assert_eq!(
            PortScope::union(&[ports(&[tcp], &[22..=22]), PortScope::All]),
            PortScope::All
        );
        assert_eq!(
            PortScope::union(&[ports(&[tcp], &[22..=22]), ports(&[udp], &[53..=53])]).to_string(),
            "tcp 22 and udp 53"
        );
        assert_eq!(
            ports(&[tcp, udp], &[22..=22, 80..=90]).to_string(),
            "tcp,udp 22,80:90"
        );
        assert_eq!(PortScope::All.to_string(), "all ports");
        assert!(ports(&[tcp], &[]).is_empty());
        assert!(ports(&[], &[22..=22]).is_empty());
        assert!(!PortScope::All.is_empty());
    }

    #[test]
    fn targets_are_addresses_or_networks() {
        assert_eq!(
            parse_target("192.0.2.7").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(
            parse_target("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(
            parse_target("192.0.2.5/24").unwrap(),
            parse_target("192.0.2.0/24").unwrap()
        );
        assert!(parse_target("192.0.2.300").is_err());
        assert!(parse_target("example.org").is_err());
    }
}
