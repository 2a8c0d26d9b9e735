//! A jail's port scope: which packets of a banned address are dropped.
//!
//! The scope is that of the jail's firewall actions (those `action::is_firewall_action`
//! names; the backend carries them out), as fail2ban gives each its parameters: the
//! action's own `port` and `protocol` (`iptables-multiport[port="22,2222", protocol=tcp]`,
//! or the action file's `[Init]` defaults, which the configuration reader has merged in),
//! else the jail's, else fail2ban's defaults (`0:65535`, `tcp`). Several firewall actions
//! ban the union of their scopes, per protocol. An action whose name ends in `-allports`
//! (or that is given `type=allports`), and one whose commands take no port (`route`, `ufw`,
//! `shorewall`...), drops every packet; a jail without firewall actions bans with its own
//! `port` and `protocol`. Ports are lists such as `ssh`, `http,https`, `1000:2000`,
//! `0:65535`, with service names as /etc/services lists them (with their aliases), looked
//! up in the text of /etc/services, injected: this module reads no file.

use std::{collections::HashMap, ops::RangeInclusive};

use banxdp_common::{IPPROTO_TCP, IPPROTO_UDP};

use crate::{action::is_firewall_action, config::jails::ActionConfig, enforce::PortScope};

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
    #[error("action `{action}`: {source}")]
    Action {
        action: String,
        #[source]
        source: Box<PortError>,
    },
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

/// fail2ban's firewall actions whose commands take no port: they ban every packet of the
/// address (a blackhole route, `ufw deny from <ip>`, `shorewall drop <ip>`, ...), whatever
/// `port` the jail hands them. A name matches itself and its variants (`shorewall-ipset-proto6`).
const PORTLESS: [&str; 10] = [
    "route",
    "ufw",
    "shorewall",
    "apf",
    "ipfilter",
    "npf",
    "osx-afctl",
    "hostsdeny",
    "iptables-xt_recent-echo",
    "banxdp-hostsdeny",
];

/// Whether a firewall action bans every port: `iptables-allports`,
/// `nftables-allports[name=x]` (`iptables-allports-x` once named), `nftables[type=allports]`,
/// `firewallcmd-ipset[actiontype=<allports>]` (or `actiontype=""`, every protocol), and the
/// actions that take no port at all (`route`, `ufw`, ...).
#[must_use]
pub fn is_allports_action(action: &ActionConfig) -> bool {
    let file = action.file.as_str();
    let portless = PORTLESS.iter().any(|p| {
        file == *p
            || file
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('-'))
    });
    let actiontype = action
        .param("actiontype")
        .map(|t| t.trim().trim_start_matches('<').trim_end_matches('>'));
    portless
        || [&action.file, &action.name]
            .iter()
            .any(|n| n.ends_with("-allports"))
        || action
            .param("type")
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("allports"))
        || matches!(actiontype, Some("allports" | ""))
}

/// The scope of a jail's bans from its `port`, `protocol` and actions: the union of its
/// firewall actions' scopes, each from the action's `port`/`protocol` else the jail's; the
/// jail's own scope when it has no firewall action.
///
/// No `port` means every port (fail2ban's default is `0:65535`); `port = all` or an
/// `-allports` action means every packet; `protocol = all` means TCP and UDP. An error in an
/// action's parameters names the action.
pub fn port_scope(
    port: Option<&str>,
    protocol: Option<&str>,
    actions: &[ActionConfig],
    services: &Services,
) -> Result<PortScope, PortError> {
    let firewalls: Vec<&ActionConfig> = actions
        .iter()
        .filter(|a| is_firewall_action(&a.name))
        .collect();
    if firewalls.is_empty() {
        return scope_of(port, protocol, services);
    }
    let mut scopes = Vec::with_capacity(firewalls.len());
    for action in firewalls {
        if is_allports_action(action) {
            return Ok(PortScope::All);
        }
        let own = |key| action.param(key).filter(|v| !v.trim().is_empty());
        let (own_port, own_protocol) = (own("port"), own("protocol"));
        let scope =
            scope_of(own_port.or(port), own_protocol.or(protocol), services).map_err(|source| {
                // The value in error is the action's own, or else the jail's.
                let from_action = match source {
                    PortError::Protocol(_) => own_protocol.is_some(),
                    _ => own_port.is_some(),
                };
                if from_action {
                    PortError::Action {
                        action: action.name.clone(),
                        source: Box::new(source),
                    }
                } else {
                    source
                }
            })?;
        scopes.push(scope);
    }
    Ok(PortScope::union(&scopes))
}

/// The scope of one `port` and `protocol`.
fn scope_of(
    port: Option<&str>,
    protocol: Option<&str>,
    services: &Services,
) -> Result<PortScope, PortError> {
    let protocol = protocol.map_or("tcp", str::trim).to_ascii_lowercase();
    let protocols = match protocol.replace(' ', "").as_str() {
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
    Ok(PortScope::union(&[PortScope::Ports { protocols, ranges }]))
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
        let actions: Vec<ActionConfig> = actions.iter().map(|a| ActionConfig::parse(a)).collect();
        port_scope(port, protocol, &actions, &Services::parse(SERVICES))
    }

    fn ports(protocols: &[u8], ranges: &[RangeInclusive<u16>]) -> PortScope {
        PortScope::Ports {
            protocols: protocols.to_vec(),
            ranges: ranges.to_vec(),
        }
    }

    fn tcp(ranges: &[RangeInclusive<u16>]) -> PortScope {
        ports(&[IPPROTO_TCP], ranges)
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
            ("ftp,ftp-data,ftps-data", tcp(&[20..=21, 989..=989])),
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
            ports(&[IPPROTO_UDP], &[53..=53])
        );
        assert_eq!(
            scope(Some("openvpn"), Some("all"), &[]).unwrap(),
            ports(&[IPPROTO_TCP, IPPROTO_UDP], &[1194..=1194])
        );
        assert_eq!(scope(None, None, &[]).unwrap(), tcp(&[0..=65535]));
        assert_eq!(scope(Some("all"), None, &[]).unwrap(), PortScope::All);
        for action in [
            "iptables-allports",
            "nftables-allports[name=x]",
            "nftables[type=allports]",
            "nftables[ type=\"allports\"]",
        ] {
            assert_eq!(
                scope(Some("ssh"), None, &["sendmail-whois", action]).unwrap(),
                PortScope::All,
                "{action}"
            );
        }
        assert!(!is_allports_action(&"iptables-multiport".into()));
        assert!(!is_allports_action(&"nftables[type=multiport]".into()));
    }

    fn per_protocol(tcp: &[RangeInclusive<u16>], udp: &[RangeInclusive<u16>]) -> PortScope {
        PortScope::PerProtocol(vec![
            crate::enforce::ProtocolPorts {
                protocol: IPPROTO_TCP,
                ranges: tcp.to_vec(),
            },
            crate::enforce::ProtocolPorts {
                protocol: IPPROTO_UDP,
                ranges: udp.to_vec(),
            },
        ])
    }

    #[test]
    fn an_action_port_overrides_the_jail_port() {
        let cases: [(&str, &str, PortScope); 7] = [
            (
                "ssh",
                r#"iptables-multiport[port="2222"]"#,
                tcp(&[2222..=2222]),
            ),
            (
                "2222",
                r#"iptables-multiport[name=SSH, port="22,2222", protocol=tcp]"#,
                tcp(&[22..=22, 2222..=2222]),
            ),
            (
                "ssh",
                r#"nftables[port="http, https", protocol="tcp"]"#,
                tcp(&[80..=80, 443..=443]),
            ),
            (
                "ssh",
                "nftables[port='1000:2000,ssh']",
                tcp(&[22..=22, 1000..=2000]),
            ),
            (
                "ssh",
                "nftables[ port=http , protocol=tcp ]",
                tcp(&[80..=80]),
            ),
            (
                "ssh",
                "nftables[port=openvpn, protocol=udp]",
                ports(&[IPPROTO_UDP], &[1194..=1194]),
            ),
            (
                "ssh",
                r#"iptables[port=domain, protocol="tcp, udp"]"#,
                ports(&[IPPROTO_TCP, IPPROTO_UDP], &[53..=53]),
            ),
        ];
        for (jail_port, action, want) in cases {
            assert_eq!(
                scope(Some(jail_port), None, &[action]).unwrap(),
                want,
                "{action}"
            );
        }
    }

    #[test]
    fn an_action_without_port_takes_the_jail_port_and_protocol() {
        for action in [
            "iptables-multiport",
            "iptables-multiport[name=SSH]",
            "nftables[]",
        ] {
            assert_eq!(
                scope(Some("http,https"), None, &[action]).unwrap(),
                tcp(&[80..=80, 443..=443]),
                "{action}"
            );
        }
        assert_eq!(
            scope(Some("domain"), Some("udp"), &["iptables[port=domain]"]).unwrap(),
            ports(&[IPPROTO_UDP], &[53..=53]),
            "the jail's protocol, the action's port"
        );
        // Neither says: fail2ban's jail.conf default, every TCP port.
        assert_eq!(scope(None, None, &["iptables"]).unwrap(), tcp(&[0..=65535]));
    }

    #[test]
    fn only_firewall_actions_scope_the_ban() {
        assert_eq!(
            scope(
                Some("ssh"),
                None,
                &[
                    "sendmail-whois[port=25]",
                    "iptables[port=2222]",
                    "abuseipdb[port=1]"
                ]
            )
            .unwrap(),
            tcp(&[2222..=2222])
        );
        // No firewall action: the backend bans with the jail's own scope.
        assert_eq!(
            scope(Some("ssh"), None, &["sendmail-whois[port=25]"]).unwrap(),
            tcp(&[22..=22])
        );
    }

    #[test]
    fn several_firewall_actions_ban_the_union_per_protocol() {
        assert_eq!(
            scope(
                Some("ssh"),
                None,
                &["iptables[port=ssh]", "nftables[port=domain, protocol=udp]"]
            )
            .unwrap(),
            per_protocol(&[22..=22], &[53..=53]),
            "tcp 22 and udp 53, not tcp,udp 22,53"
        );
        assert_eq!(
            scope(
                Some("ssh"),
                None,
                &[
                    r#"iptables[port="22,2222"]"#,
                    r#"nftables[port="http, https,ssh"]"#
                ]
            )
            .unwrap(),
            tcp(&[22..=22, 80..=80, 443..=443, 2222..=2222])
        );
        assert_eq!(
            scope(
                Some("https"),
                Some("all"),
                &["iptables-multiport", "nftables[port=2222]"]
            )
            .unwrap(),
            ports(&[IPPROTO_TCP, IPPROTO_UDP], &[443..=443, 2222..=2222]),
            "the second takes the jail's protocol"
        );
        assert_eq!(
            scope(
                Some("https"),
                Some("all"),
                &["iptables-multiport", "nftables[port=2222, protocol=tcp]"]
            )
            .unwrap(),
            per_protocol(&[443..=443, 2222..=2222], &[443..=443])
        );
    }

    #[test]
    fn an_allports_action_wins() {
        for actions in [
            &["iptables[port=22]", "iptables-allports[name=x]"][..],
            &["nftables[type=allports, port=22]", "iptables[port=22]"],
            &["iptables[port=all]"],
        ] {
            assert_eq!(
                scope(Some("ssh"), None, actions).unwrap(),
                PortScope::All,
                "{actions:?}"
            );
        }
        // Actions that take no port ban every packet, whatever port they are handed.
        for action in [
            "route[port=ssh]",
            "ufw[port=ssh]",
            "shorewall-ipset-proto6[port=ssh]",
            "hostsdeny",
            "firewallcmd-ipset[actiontype=<allports>]",
            "firewallcmd-ipset[actiontype=\"\"]",
        ] {
            assert_eq!(
                scope(Some("ssh"), None, &[action]).unwrap(),
                PortScope::All,
                "{action}"
            );
        }
        for action in [
            "routes[port=ssh]",
            "firewallcmd-ipset[actiontype=<multiport>]",
            "iptables-ipset-proto4[port=ssh]",
        ] {
            assert_eq!(
                scope(Some("ssh"), None, &[action]).unwrap(),
                tcp(&[22..=22]),
                "{action}"
            );
        }
        // Named by the configuration reader, the file still tells.
        let named = ActionConfig {
            name: "iptables-allports-SSH".into(),
            file: "iptables-allports".into(),
            params: vec![("port".into(), "ssh".into())],
        };
        let services = Services::parse(SERVICES);
        assert_eq!(
            port_scope(Some("ssh"), None, &[named], &services).unwrap(),
            PortScope::All
        );
    }

    #[test]
    fn an_action_error_names_the_action_and_the_word() {
        let cases = [
            (
                r#"iptables-multiport[port="22,sshh"]"#,
                "action `iptables-multiport`: invalid port `sshh` in `22,sshh`: no such service in /etc/services",
            ),
            (
                "nftables[port=22, protocol=icmp]",
                "action `nftables`: invalid protocol `icmp` (tcp, udp or all)",
            ),
            (
                "iptables[port=99999]",
                "action `iptables`: invalid port `99999` in `99999`: ports go up to 65535",
            ),
        ];
        for (action, want) in cases {
            let got = scope(Some("ssh"), None, &["iptables", action]).unwrap_err();
            assert_eq!(got.to_string(), want);
        }
        // The jail's own port, taken by an action that gives none, is the jail's error.
        assert_eq!(
            scope(Some("sshh"), None, &["iptables"])
                .unwrap_err()
                .to_string(),
            "invalid port `sshh` in `sshh`: no such service in /etc/services"
        );
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
