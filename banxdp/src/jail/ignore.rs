//! Who a jail never bans (`ignoreip`, `ignoreself`), and which addresses a failure's host
//! stands for (`usedns`).
//!
//! `ignoreip` holds addresses, networks (`10.0.0.0/8`, `192.0.2.0/255.255.255.0`) and DNS
//! names; names are resolved by a resolver the caller injects (the daemon's DNS, a table in
//! tests), once, when the jail is built. `ignoreself` adds the machine's own addresses, also
//! injected, and the loopback addresses. The whole list is also what the XDP allow trie
//! holds ([`IgnoreList::allowed_nets`]). Pure: no I/O.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::filter::matcher::Host;

/// An `ignoreip` word that is neither an address, a network nor a host name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid ignoreip `{0}` (an address, a network such as 10.0.0.0/8, or a host name)")]
pub struct IgnoreError(pub String);

/// Resolves a host name to its addresses (empty when it has none).
pub type Resolver<'a> = &'a dyn Fn(&str) -> Vec<IpAddr>;

/// The addresses a jail never bans.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IgnoreList {
    nets: Vec<IpNet>,
    /// Names of `ignoreip` that resolved to nothing (the daemon warns about them).
    pub unresolved: Vec<String>,
}

/// `::ffff:192.0.2.1` is `192.0.2.1`.
#[must_use]
pub fn canonical(addr: IpAddr) -> IpAddr {
    addr.to_canonical()
}

/// A network in canonical form: host bits cleared, IPv4-mapped IPv6 as IPv4.
#[must_use]
pub fn canonical_net(net: IpNet) -> IpNet {
    let net = net.trunc();
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

impl IgnoreList {
    /// Builds the list from `ignoreip`'s words, the machine's own addresses (when
    /// `ignoreself`) and a resolver for the names.
    pub fn new(
        words: &[String],
        local: Option<&[IpAddr]>,
        resolve: Resolver<'_>,
    ) -> Result<Self, IgnoreError> {
        let mut list = Self::default();
        for word in words.iter().map(|w| w.trim()).filter(|w| !w.is_empty()) {
            if let Some(net) = parse_net(word) {
                list.push(net);
            } else if is_host_name(word) {
                let addrs = resolve(word);
                if addrs.is_empty() {
                    list.unresolved.push(word.to_string());
                }
                for addr in addrs {
                    list.push(IpNet::from(canonical(addr)));
                }
            } else {
                return Err(IgnoreError(word.to_string()));
            }
        }
        if let Some(local) = local {
            let loopback = [
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
            ];
            for addr in local.iter().chain(&loopback) {
                list.push(IpNet::from(canonical(*addr)));
            }
        }
        Ok(list)
    }

    fn push(&mut self, net: IpNet) {
        let net = canonical_net(net);
        if !self.nets.iter().any(|n| n.contains(&net)) {
            self.nets.retain(|n| !net.contains(n));
            self.nets.push(net);
        }
    }

    /// Whether `addr` is never to be banned.
    #[must_use]
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.nets.iter().any(|n| n.contains(&addr))
    }

    /// The list as networks, for the XDP allow trie.
    #[must_use]
    pub fn allowed_nets(&self) -> Vec<IpNet> {
        self.nets.clone()
    }
}

/// `1.2.3.4`, `2001:db8::1`, `10.0.0.0/8`, `2001:db8::/32`, `192.0.2.0/255.255.255.0`.
fn parse_net(word: &str) -> Option<IpNet> {
    if let Ok(addr) = word.parse::<IpAddr>() {
        return Some(IpNet::from(addr));
    }
    if let Ok(net) = word.parse::<IpNet>() {
        return Some(net);
    }
    let (addr, mask) = word.split_once('/')?;
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    let mask = u32::from(mask.parse::<std::net::Ipv4Addr>().ok()?);
    // A netmask must be ones then zeros.
    if mask.leading_ones() + mask.trailing_zeros() != 32 {
        return None;
    }
    #[expect(clippy::cast_possible_truncation, reason = "at most 32")]
    IpNet::new(IpAddr::V4(addr), mask.leading_ones() as u8).ok()
}

/// A DNS name: labels of letters, digits, `-` and `_`, separated by dots.
fn is_host_name(word: &str) -> bool {
    word.len() <= 253
        && word.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        && word.chars().any(|c| c.is_ascii_alphabetic())
}

/// `usedns`: what a host name in a log line is worth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UseDns {
    /// Resolve names.
    Yes,
    /// Resolve names, and warn that a name was resolved (fail2ban's default).
    Warn,
    /// Addresses only; names are dropped.
    No,
    /// The host as written; a name cannot be banned by address, so it is dropped.
    Raw,
}

impl UseDns {
    /// fail2ban's parsing: case-insensitive, `true`/`false` for `yes`/`no`; anything else is
    /// `no` (fail2ban logs an error and uses the safe value; so does the daemon, with
    /// the `bool` this returns).
    #[must_use]
    pub fn parse(text: &str) -> (Self, bool) {
        match text.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" | "1" | "on" => (Self::Yes, true),
            "warn" => (Self::Warn, true),
            "no" | "false" | "0" | "off" => (Self::No, true),
            "raw" => (Self::Raw, true),
            _ => (Self::No, false),
        }
    }
}

/// The addresses a failure's host stands for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Targets {
    pub nets: Vec<IpNet>,
    /// A name was resolved with `usedns = warn`: the daemon says so.
    pub warn: bool,
}

/// The targets of a failure whose host is `host`, as fail2ban's `textToIp` finds them: an
/// address (with its `<CIDR>`/`<SUBNET>` prefix) is itself; a name that is an address is
/// that address; other names are resolved with `yes` and `warn`, dropped with `no` and
/// `raw`; a failure id that is not an address cannot be banned.
pub fn targets(host: &Host, usedns: UseDns, resolve: Resolver<'_>) -> Targets {
    let one = |net: IpNet| Targets {
        nets: vec![canonical_net(net)],
        warn: false,
    };
    match host {
        Host::Ip(addr, None) => one(IpNet::from(*addr)),
        Host::Ip(addr, Some(prefix)) => {
            // The prefix is the address's own: `::ffff:192.0.2.7/24` is 192.0.2.0/24.
            let addr = canonical(*addr);
            IpNet::new(addr, *prefix).map_or_else(|_| one(IpNet::from(addr)), one)
        }
        Host::Name(text) | Host::Id(text) => {
            if let Some(net) = parse_net(text.trim()) {
                return one(net);
            }
            let resolves =
                matches!(usedns, UseDns::Yes | UseDns::Warn) && matches!(host, Host::Name(_));
            if !resolves {
                return Targets::default();
            }
            let mut nets: Vec<IpNet> = resolve(text.trim())
                .into_iter()
                .map(|a| IpNet::from(canonical(a)))
                .collect();
            nets.sort();
            nets.dedup();
            Targets {
                warn: usedns == UseDns::Warn && !nets.is_empty(),
                nets,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(name: &str) -> Vec<IpAddr> {
        match name {
            "gw.example.org" => vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
            "bot.example.net" => vec![
                "198.51.100.7".parse().unwrap(),
                "198.51.100.7".parse().unwrap(),
            ],
            _ => vec![],
        }
    }

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(Into::into).collect()
    }

    #[test]
    fn ignoreip_words() {
        let list = IgnoreList::new(
            &words("127.0.0.1/8 ::1 10.1.2.3/255.255.0.0 gw.example.org nowhere.example 203.0.113.9 ::ffff:198.51.100.0/120"),
            None,
            &dns,
        )
        .unwrap();
        let cases = [
            ("127.3.4.5", true),
            ("128.0.0.1", false),
            ("::1", true),
            ("10.1.200.200", true),
            ("10.2.0.1", false),
            ("192.0.2.1", true),
            ("192.0.2.2", false),
            ("2001:db8::1", true),
            ("203.0.113.9", true),
            ("::ffff:203.0.113.9", true),
            ("198.51.100.200", true),
            ("198.51.101.1", false),
        ];
        for (addr, ignored) in cases {
            assert_eq!(list.contains(addr.parse().unwrap()), ignored, "{addr}");
        }
        assert_eq!(list.unresolved, ["nowhere.example"]);
        let allowed: Vec<String> = list
            .allowed_nets()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            allowed,
            [
                "127.0.0.0/8",
                "::1/128",
                "10.1.0.0/16",
                "192.0.2.1/32",
                "2001:db8::1/128",
                "203.0.113.9/32",
                "198.51.100.0/24"
            ]
        );
    }

    #[test]
    fn ignoreself_adds_local_and_loopback() {
        let local: Vec<IpAddr> = vec!["192.0.2.10".parse().unwrap(), "fe80::1".parse().unwrap()];
        let list = IgnoreList::new(&[], Some(&local), &dns).unwrap();
        for addr in ["192.0.2.10", "fe80::1", "127.0.0.1", "::1"] {
            assert!(list.contains(addr.parse().unwrap()), "{addr}");
        }
        assert!(!list.contains("192.0.2.11".parse().unwrap()));
        let without = IgnoreList::new(&[], None, &dns).unwrap();
        assert!(!without.contains("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn bad_ignoreip_words() {
        for word in [
            "10.0.0.0/33",
            "1.2.3.4/255.0.255.0",
            "bad name!",
            "-",
            "1.2.3.4.5",
        ] {
            let err = IgnoreList::new(&[word.to_string()], None, &dns).unwrap_err();
            assert_eq!(err, IgnoreError(word.into()), "{word}");
        }
    }

    #[test]
    fn usedns_modes() {
        let name = Host::Name("gw.example.org".into());
        let v = |s: &str| s.parse::<IpNet>().unwrap();
        let cases: [(Host, UseDns, Vec<IpNet>, bool); 10] = [
            (
                Host::Ip("192.0.2.7".parse().unwrap(), None),
                UseDns::No,
                vec![v("192.0.2.7/32")],
                false,
            ),
            (
                Host::Ip("::ffff:192.0.2.7".parse().unwrap(), Some(24)),
                UseDns::No,
                vec![v("192.0.2.0/24")],
                false,
            ),
            (
                Host::Ip("::ffff:192.0.2.7".parse().unwrap(), None),
                UseDns::Raw,
                vec![v("192.0.2.7/32")],
                false,
            ),
            (
                Host::Ip("192.0.2.7".parse().unwrap(), Some(24)),
                UseDns::No,
                vec![v("192.0.2.0/24")],
                false,
            ),
            (
                name.clone(),
                UseDns::Yes,
                vec![v("192.0.2.1/32"), v("2001:db8::1/128")],
                false,
            ),
            (
                name.clone(),
                UseDns::Warn,
                vec![v("192.0.2.1/32"), v("2001:db8::1/128")],
                true,
            ),
            (name.clone(), UseDns::No, vec![], false),
            (name, UseDns::Raw, vec![], false),
            (
                Host::Name("192.0.2.9".into()),
                UseDns::No,
                vec![v("192.0.2.9/32")],
                false,
            ),
            (Host::Id("user42".into()), UseDns::Yes, vec![], false),
        ];
        for (host, usedns, nets, warn) in cases {
            assert_eq!(
                targets(&host, usedns, &dns),
                Targets { nets, warn },
                "{host:?} {usedns:?}"
            );
        }
        let dup = targets(&Host::Name("bot.example.net".into()), UseDns::Yes, &dns);
        assert_eq!(dup.nets.len(), 1);
    }

    #[test]
    fn usedns_values() {
        assert_eq!(UseDns::parse("WARN"), (UseDns::Warn, true));
        assert_eq!(UseDns::parse("raw"), (UseDns::Raw, true));
        assert_eq!(UseDns::parse("maybe"), (UseDns::No, false));
    }
}
