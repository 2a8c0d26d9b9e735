//! A jail's port scope: which packets of a banned address are dropped.
//!
//! fail2ban hands a jail's `port` and `protocol` to its firewall actions: `ssh`,
//! `http,https`, `1000:2000`, `0:65535`, service names as /etc/services lists them (with
//! their aliases); an action whose name ends in `-allports` (or that is given
//! `type=allports`) drops every packet whatever the ports. Service names are looked up in
//! the text of /etc/services, injected: this module reads no file.

use std::{collections::HashMap, ops::RangeInclusive};

use banxdp_common::{IPPROTO_TCP, IPPROTO_UDP};

use crate::enforce::PortScope;

/// A port scope that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("invalid port `{word}` in `{text}`: {why}")]
    Port {
        text: String,
        word: String,
        why: &'static str,
    },
    #[error("invalid protocol `{0}` (tcp, udp or all)")]
    Protocol(String),
    #[error("no port in `{0}`")]
    Empty(String),
}

/// /etc/services, read: `(name or alias, protocol)` → port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Services {
    ports: HashMap<(String, String), u16>,
}

impl Services {
    /// Reads the text of an /etc/services file (`name port/protocol aliases... # comment`).
    /// Lines it cannot read are skipped, as libc's `getservbyname` skips them.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let mut ports = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let (Some(name), Some(spec)) = (words.next(), words.next()) else {
                continue;
            };
            let Some((port, proto)) = spec.split_once('/') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            for n in std::iter::once(name).chain(words) {
                // The first line that names a service wins, as in libc.
                ports
                    .entry((n.to_string(), proto.to_ascii_lowercase()))
                    .or_insert(port);
            }
        }
        Self { ports }
    }

    /// The port of service `name` for `protocol`, else for any protocol.
    #[must_use]
    pub fn port(&self, name: &str, protocol: &str) -> Option<u16> {
        self.ports
            .get(&(name.to_string(), protocol.to_string()))
            .or_else(|| {
                ["tcp", "udp", "sctp", "dccp"]
                    .iter()
                    .find_map(|p| self.ports.get(&(name.to_string(), (*p).to_string())))
            })
            .copied()
    }
}

/// Whether one of a jail's actions bans every port: `iptables-allports`,
/// `nftables-allports[...]`, `nftables[type=allports]`.
#[must_use]
pub fn is_allports_action(action: &str) -> bool {
    let action = action.trim();
    let (name, params) = match action.split_once('[') {
        Some((name, rest)) => (name.trim(), rest.trim_end().trim_end_matches(']')),
        None => (action, ""),
    };
    name.ends_with("-allports")
        || params
            .split(',')
            .any(|p| p.replace(['"', '\'', ' '], "") == "type=allports")
}

/// The scope of a jail's bans from its `port`, `protocol` and action names.
///
/// No `port` means every port (fail2ban's default is `0:65535`); `port = all` or an
/// `-allports` action means every packet; `protocol = all` means TCP and UDP.
pub fn port_scope(
    port: Option<&str>,
    protocol: Option<&str>,
    actions: &[String],
    services: &Services,
) -> Result<PortScope, PortError> {
    if actions.iter().any(|a| is_allports_action(a)) {
        return Ok(PortScope::All);
    }
    let protocol = protocol.map_or("tcp", str::trim).to_ascii_lowercase();
    let protocols = match protocol.as_str() {
        "" | "tcp" => vec![IPPROTO_TCP],
        "udp" => vec![IPPROTO_UDP],
        "all" | "tcp,udp" | "udp,tcp" => vec![IPPROTO_TCP, IPPROTO_UDP],
        _ => return Err(PortError::Protocol(protocol)),
    };
    let text = port.map_or("0:65535", str::trim);
    if text.eq_ignore_ascii_case("all") || text.eq_ignore_ascii_case("any") {
        return Ok(PortScope::All);
    }
    let lookup_protocol = if protocols == [IPPROTO_UDP] {
        "udp"
    } else {
        "tcp"
    };
    let mut ranges = Vec::new();
    for word in text.split([',', ' ', '\t', '\n']).filter(|w| !w.is_empty()) {
        ranges.push(port_range(text, word, lookup_protocol, services)?);
    }
    if ranges.is_empty() {
        return Err(PortError::Empty(text.into()));
    }
    Ok(PortScope::Ports { protocols, ranges })
}

/// One word of a port list: `22`, `ssh`, `1000:2000`, `1000-2000`, `:1024`, `1024:`.
fn port_range(
    text: &str,
    word: &str,
    protocol: &str,
    services: &Services,
) -> Result<RangeInclusive<u16>, PortError> {
    let error = |why| PortError::Port {
        text: text.into(),
        word: word.into(),
        why,
    };
    let one = |w: &str| -> Result<u16, PortError> {
        if w.chars().all(|c| c.is_ascii_digit()) {
            w.parse::<u16>().map_err(|_| error("ports go up to 65535"))
        } else {
            services
                .port(w, protocol)
                .ok_or_else(|| error("no such service in /etc/services"))
        }
    };
    // `a-b` is a range only between numbers: `ftp-data` is a service.
    let dash = word.split_once('-').filter(|(a, b)| {
        a.chars().all(|c| c.is_ascii_digit()) && b.chars().all(|c| c.is_ascii_digit())
    });
    let range = match word.split_once(':').or(dash) {
        None => {
            let p = one(word)?;
            p..=p
        }
        Some((a, b)) => {
            let low = if a.is_empty() { 0 } else { one(a)? };
            let high = if b.is_empty() { u16::MAX } else { one(b)? };
            if low > high {
                return Err(error("the range runs backwards"));
            }
            low..=high
        }
    };
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES: &str = "\
# comment
ftp-data\t20/tcp
ftp\t\t21/tcp
ssh\t\t22/tcp\t\t\t\t# SSH Remote Login Protocol
smtp\t\t25/tcp\t\tmail
domain\t\t53/tcp
domain\t\t53/udp
http\t\t80/tcp\t\twww
https\t\t443/tcp
https\t\t443/udp
submissions\t465/tcp\t\tssmtp smtps urd
ftps-data\t989/tcp
openvpn\t\t1194/udp
garbage line
";

    fn scope(
        port: Option<&str>,
        protocol: Option<&str>,
        actions: &[&str],
    ) -> Result<PortScope, PortError> {
        let actions: Vec<String> = actions.iter().map(ToString::to_string).collect();
        port_scope(port, protocol, &actions, &Services::parse(SERVICES))
    }

    fn tcp(ranges: &[RangeInclusive<u16>]) -> PortScope {
        PortScope::Ports {
            protocols: vec![IPPROTO_TCP],
            ranges: ranges.to_vec(),
        }
    }

    #[test]
    fn port_lists() {
        let cases: [(&str, PortScope); 10] = [
            ("ssh", tcp(&[22..=22])),
            ("http,https", tcp(&[80..=80, 443..=443])),
            ("1000:2000", tcp(&[1000..=2000])),
            ("1000-2000", tcp(&[1000..=2000])),
            ("0:65535", tcp(&[0..=65535])),
            (
                " 80,443,3128,8080",
                tcp(&[80..=80, 443..=443, 3128..=3128, 8080..=8080]),
            ),
            ("smtp,ssmtp", tcp(&[25..=25, 465..=465])),
            (
                "ftp,ftp-data,ftps-data",
                tcp(&[21..=21, 20..=20, 989..=989]),
            ),
            (":1024", tcp(&[0..=1024])),
            ("www:https", tcp(&[80..=443])),
        ];
        for (port, want) in cases {
            assert_eq!(scope(Some(port), None, &[]).unwrap(), want, "{port}");
        }
    }

    #[test]
    fn protocols_and_allports() {
        assert_eq!(
            scope(Some("domain"), Some("udp"), &[]).unwrap(),
            PortScope::Ports {
                protocols: vec![IPPROTO_UDP],
                ranges: vec![53..=53]
            }
        );
        assert_eq!(
            scope(Some("openvpn"), Some("all"), &[]).unwrap(),
            PortScope::Ports {
                protocols: vec![IPPROTO_TCP, IPPROTO_UDP],
                ranges: vec![1194..=1194]
            }
        );
        assert_eq!(scope(None, None, &[]).unwrap(), tcp(&[0..=65535]));
        assert_eq!(scope(Some("all"), None, &[]).unwrap(), PortScope::All);
        for action in [
            "iptables-allports",
            "nftables-allports[name=x]",
            "nftables[type=allports]",
            "nftables[ type=\"allports\" ]",
        ] {
            assert_eq!(
                scope(Some("ssh"), None, &["sendmail-whois", action]).unwrap(),
                PortScope::All,
                "{action}"
            );
        }
        assert!(!is_allports_action("iptables-multiport"));
        assert!(!is_allports_action("nftables[type=multiport]"));
    }

    #[test]
    fn errors_name_the_word() {
        let cases = [
            (
                Some("sshh"),
                None,
                "invalid port `sshh` in `sshh`: no such service in /etc/services",
            ),
            (
                Some("22,70000"),
                None,
                "invalid port `70000` in `22,70000`: ports go up to 65535",
            ),
            (
                Some("2000:1000"),
                None,
                "invalid port `2000:1000` in `2000:1000`: the range runs backwards",
            ),
            (Some(" , "), None, "no port in `,`"),
            (
                Some("ssh"),
                Some("icmp"),
                "invalid protocol `icmp` (tcp, udp or all)",
            ),
        ];
        for (port, protocol, want) in cases {
            assert_eq!(scope(port, protocol, &[]).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn services_first_line_wins_and_aliases_count() {
        let s = Services::parse(SERVICES);
        assert_eq!(s.port("mail", "tcp"), Some(25));
        assert_eq!(s.port("smtps", "tcp"), Some(465));
        assert_eq!(
            s.port("openvpn", "tcp"),
            Some(1194),
            "any protocol when tcp has none"
        );
        assert_eq!(s.port("garbage", "tcp"), None);
    }
}
