//! Parameters from configuration: errors that name the jail and the value, every stock jail
//! of the installed fail2ban through [`JailParams::from_config`], and the stock sshd jail end
//! to end (real lines, banxdp's filter engine, `usedns`, the jail).

use std::net::IpAddr;

use super::{
    tests::{conf, resolve},
    *,
};

#[test]
fn params_errors_name_the_jail_and_the_value() {
    let services = Services::parse("ssh 22/tcp\n");
    let env = Env {
        services: &services,
        local_addrs: &[],
        resolve: &resolve,
        seed: 0,
        limits: Limits::default(),
    };
    let mut cases: Vec<(JailConfig, &str)> = Vec::new();
    let mut c = conf();
    c.port = Some("ssh,imaps".into());
    cases.push((
        c,
        "jail `sshd`: invalid port `imaps` in `ssh,imaps`: no such service in /etc/services",
    ));
    let mut c = conf();
    c.ignoreip = vec!["10.0.0.0/40".into()];
    cases.push((c, "jail `sshd`: invalid ignoreip `10.0.0.0/40` (an address, a network such as 10.0.0.0/8, or a host name)"));
    let mut c = conf();
    c.increment.enabled = true;
    c.increment.formula = Some("ban.Time * bogus".into());
    cases.push((
        c,
        "jail `sshd`: invalid bantime.formula `ban.Time * bogus`: unknown name `bogus`",
    ));
    let mut c = conf();
    c.usedns = "sometimes".into();
    cases.push((
        c,
        "jail `sshd`: invalid usedns `sometimes` (yes, warn, no or raw)",
    ));
    let mut c = conf();
    c.shadow = Some("maybe".into());
    cases.push((c, "jail `sshd`: invalid shadow `maybe` (true or false)"));
    let mut c = conf();
    c.maxretry = 0;
    cases.push((c, "jail `sshd`: invalid maxretry `0` (at least 1)"));
    let mut c = conf();
    c.ignorecommand = Some("/usr/bin/check 'oops".into());
    cases.push((c, "jail `sshd`: ignorecommand `/usr/bin/check 'oops`: cannot be split into words (unbalanced quotes)"));
    for (c, want) in cases {
        assert_eq!(
            JailParams::from_config(&c, &env).unwrap_err().to_string(),
            want
        );
    }
}

/// Every jail section of the installed /etc/fail2ban/jail.conf, all enabled and resolved;
/// A copy of the installed /etc/fail2ban in a temporary directory.
fn stock_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .args(["-r", "/etc/fail2ban/."])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

/// The environment a jail is checked in, with `services` and nothing of this machine's.
fn stock_env(services: &Services) -> Env<'_> {
    Env {
        services,
        local_addrs: &[],
        resolve: &|_| Vec::new(),
        seed: 1,
        limits: Limits::default(),
    }
}

/// `None` (with a line on stderr) where fail2ban is not installed.
fn stock_jails(test: &str) -> Option<Vec<JailConfig>> {
    use crate::config::{dump_stream, fail2ban::Disk};
    use std::fmt::Write as _;
    let stock = std::path::Path::new("/etc/fail2ban");
    if !stock.join("jail.conf").is_file() {
        eprintln!("{test}: skipped, no /etc/fail2ban");
        return None;
    }
    let dir = stock_copy();
    let jail_conf = std::fs::read_to_string(stock.join("jail.conf")).unwrap();
    let mut local = String::new();
    for l in jail_conf.lines() {
        if let Some(name) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if name != "INCLUDES" && name != "DEFAULT" {
                let _ = write!(local, "[{name}]\nenabled = true\n\n");
            }
        }
    }
    std::fs::write(dir.path().join("jail.local"), local).unwrap();
    let dump = dump_stream(&Disk, dir.path()).unwrap();
    Some(
        dump.jails
            .iter()
            .filter(|j| j.error.is_none())
            .map(|j| JailConfig::resolve(j).unwrap())
            .collect(),
    )
}

fn stock_services() -> Services {
    Services::parse(&std::fs::read_to_string("/etc/services").unwrap_or_default())
}

/// Every jail of the installed /etc/fail2ban/jail.conf, all enabled, reads into parameters.
#[test]
fn every_stock_jail_reads_into_params() {
    use banxdp_common::{IPPROTO_TCP, IPPROTO_UDP};
    let Some(jails) = stock_jails("every_stock_jail_reads_into_params") else {
        return;
    };
    let services = stock_services();
    let env = stock_env(&services);
    let mut params = Vec::new();
    let mut failures = Vec::new();
    for c in &jails {
        match JailParams::from_config(c, &env) {
            Ok(p) => params.push(p),
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(params.len() > 80, "{} jails", params.len());
    let scope = |name: &str| {
        params
            .iter()
            .find(|p| p.name == name)
            .unwrap()
            .ports
            .clone()
    };
    let tcp = |ranges: Vec<std::ops::RangeInclusive<u16>>| PortScope::Ports {
        protocols: vec![IPPROTO_TCP],
        ranges,
    };
    assert_eq!(scope("sshd"), tcp(vec![22..=22]));
    assert_eq!(scope("apache-auth"), tcp(vec![80..=80, 443..=443]));
    assert_eq!(scope("domino-smtp"), tcp(vec![25..=25, 465..=465]));
    assert_eq!(scope("recidive"), PortScope::All);
    assert_eq!(scope("pam-generic"), PortScope::All);
    assert_eq!(
        scope("softethervpn"),
        PortScope::Ports {
            protocols: vec![IPPROTO_UDP],
            ranges: vec![500..=500, 4500..=4500]
        }
    );
    // Its two actions ban TCP and UDP ports of their own (jail.conf's `tcpport`, `udpport`).
    assert_eq!(
        scope("counter-strike"),
        PortScope::PerProtocol(vec![
            crate::enforce::ProtocolPorts {
                protocol: IPPROTO_TCP,
                ranges: vec![27030..=27039]
            },
            crate::enforce::ProtocolPorts {
                protocol: IPPROTO_UDP,
                ranges: vec![1200..=1200, 27000..=27015]
            },
        ])
    );
}

/// The stock configuration with `local` as its jail.local, read as the daemon reads it
/// (`dump_stream`, then each jail resolved and checked), the jails by name; `None` where
/// fail2ban is not installed.
fn load_with_local(test: &str, local: &str) -> Option<Vec<(String, Result<JailParams, String>)>> {
    use crate::config::{dump_stream, fail2ban::Disk};
    if !std::path::Path::new("/etc/fail2ban/jail.conf").is_file() {
        eprintln!("{test}: skipped, no /etc/fail2ban");
        return None;
    }
    let dir = stock_copy();
    std::fs::write(dir.path().join("jail.local"), local).unwrap();
    let _ = std::fs::remove_dir_all(dir.path().join("jail.d"));
    let dump = dump_stream(&Disk, dir.path()).unwrap();
    let services = stock_services();
    let env = stock_env(&services);
    Some(
        dump.jails
            .iter()
            .map(|j| {
                let params = match &j.error {
                    Some(e) => Err(e.to_string()),
                    None => JailConfig::resolve(j)
                        .map_err(|e| e.to_string())
                        .and_then(|c| JailParams::from_config(&c, &env).map_err(|e| e.to_string())),
                };
                (j.name.clone(), params)
            })
            .collect(),
    )
}

/// banxdp's `shadow` reaches the enforcer's scope of the jail: off unless set (whatever the
/// jail's actions), on with `true`/`yes`; fail2ban's own stream does not carry it.
#[test]
fn shadow_comes_from_the_jail_section() {
    let local = "
[sshd]
enabled = true
shadow = true

[recidive]
enabled = true
shadow = yes
action = sendmail-whois[dest=root]

[nginx-http-auth]
enabled = true
logpath = /var/log/nginx/error.log
shadow = false

[postfix]
enabled = true
logpath = /var/log/mail.log
action = sendmail-whois[dest=root]
";
    let Some(jails) = load_with_local("shadow_comes_from_the_jail_section", local) else {
        return;
    };
    let shadow = |name: &str| {
        let (_, params) = jails.iter().find(|(n, _)| n == name).unwrap();
        params.as_ref().unwrap().scope().shadow
    };
    assert!(shadow("sshd"));
    assert!(shadow("recidive"));
    assert!(!shadow("nginx-http-auth"));
    assert!(
        !shadow("postfix"),
        "a notification-only jail still enforces"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("jail.conf"),
        "[sshd]\nenabled = true\nshadow = true\n",
    )
    .unwrap();
    let stream = crate::config::dump_stream(&crate::config::fail2ban::Disk, dir.path()).unwrap();
    assert!(
        !serde_json::to_string(&stream.stream)
            .unwrap()
            .contains("shadow"),
        "fail2ban's stream has no `shadow` option"
    );
}

/// A jail's bans take the port of its firewall action, as fail2ban hands the action its
/// parameters (`fail2ban-client -d` shows the same `port` for each of these).
#[test]
fn the_firewall_action_port_scopes_the_jail() {
    use banxdp_common::{IPPROTO_TCP, IPPROTO_UDP};
    let local = r#"
[DEFAULT]
banaction = nftables
[sshd]
enabled = true
port = ssh
action = iptables-multiport[port="2222"]

[sshd-named]
filter = sshd
logpath = /var/log/auth.log
enabled = true
port = 2222
action = iptables-multiport[name=SSH]

[web]
filter = apache-auth
logpath = /var/log/apache2/error.log
enabled = true
port = http,https
action = %(action_)s
         sendmail-whois[dest=root, port=25]

[dns]
filter = named-refused
logpath = /var/log/named.log
enabled = true
port = domain
action = iptables[port="ssh, 2222", protocol=tcp]
         nftables[port=domain, protocol=udp, name=dns-udp]

[every]
filter = sshd
logpath = /var/log/auth.log
enabled = true
port = ssh
action = iptables-allports[name=SSH, port=ssh]

[bad]
filter = sshd
logpath = /var/log/auth.log
enabled = true
port = ssh
action = iptables-multiport[port="22,sshh"]
"#;
    let Some(jails) = load_with_local("the_firewall_action_port_scopes_the_jail", local) else {
        return;
    };
    let scope = |name: &str| {
        let (_, params) = jails.iter().find(|(n, _)| n == name).expect(name);
        params.clone().map(|p| p.ports)
    };
    let tcp = |ranges: Vec<std::ops::RangeInclusive<u16>>| PortScope::Ports {
        protocols: vec![IPPROTO_TCP],
        ranges,
    };
    assert_eq!(scope("sshd"), Ok(tcp(vec![2222..=2222])));
    // No `port` given to the action: fail2ban hands it its action.d file's `[Init]` default
    // (`port = ssh` in iptables.conf), not the jail's.
    assert_eq!(scope("sshd-named"), Ok(tcp(vec![22..=22])));
    assert_eq!(scope("web"), Ok(tcp(vec![80..=80, 443..=443])));
    assert_eq!(
        scope("dns"),
        Ok(PortScope::PerProtocol(vec![
            crate::enforce::ProtocolPorts {
                protocol: IPPROTO_TCP,
                ranges: vec![22..=22, 2222..=2222]
            },
            crate::enforce::ProtocolPorts {
                protocol: IPPROTO_UDP,
                ranges: vec![53..=53]
            },
        ]))
    );
    // Named `iptables-allports-SSH` by the reader, the file still tells every port.
    assert_eq!(scope("every"), Ok(PortScope::All));
    assert_eq!(
        scope("bad"),
        Err(
            "jail `bad`: action `iptables-multiport`: invalid port `sshh` in `22,sshh`: \
             no such service in /etc/services"
                .to_string()
        )
    );
}

/// Real sshd lines through the stock sshd jail: its filter (banxdp's engine), `usedns`,
/// then the jail, which bans at the stock `maxretry` (5) and spares the loopback
/// (`ignoreself`).
#[test]
fn stock_sshd_end_to_end() {
    use crate::filter::{
        FilterSpec, Scanner,
        date::{Clock, Zone},
    };
    let Some(jails) = stock_jails("stock_sshd_end_to_end") else {
        return;
    };
    let c = jails
        .iter()
        .find(|j| j.name == "sshd")
        .expect("a stock sshd jail");
    let services = stock_services();
    let local: Vec<IpAddr> = vec!["192.0.2.254".parse().unwrap()];
    let env = Env {
        services: &services,
        local_addrs: &local,
        resolve: &resolve,
        seed: 1,
        limits: Limits::default(),
    };
    let params = JailParams::from_config(c, &env).unwrap();
    assert_eq!(params.maxretry, 5);
    let usedns = params.usedns;
    let mut jail = Jail::new(params);
    let spec = FilterSpec {
        prefregex: c.prefregex.clone(),
        failregex: c.failregex.clone(),
        ignoreregex: c.ignoreregex.clone(),
        usedns: c.usedns.clone(),
        maxlines: c.maxlines as usize,
        datepattern: c.datepattern.clone(),
    };
    let mut scanner = Scanner::new(&spec, 2026).unwrap();
    // 2026-12-05 10:00:00 UTC, and a minute of lines after it.
    let start = 1_796_464_800;
    let log = [
        "Dec  5 10:00:01 web sshd[811]: Failed password for root from 203.0.113.9 port 50122 ssh2",
        "Dec  5 10:00:02 web sshd[811]: Failed password for invalid user admin from 127.0.0.1 port 50124 ssh2",
        "Dec  5 10:00:03 web sshd[812]: Invalid user oracle from 203.0.113.9 port 50130",
        "Dec  5 10:00:04 web sshd[813]: Accepted publickey for deploy from 198.51.100.20 port 41000 ssh2: ED25519 SHA256:x",
        "Dec  5 10:00:05 web sshd[814]: Failed password for invalid user oracle from 203.0.113.9 port 50132 ssh2",
        "Dec  5 10:00:06 web sshd[815]: Failed password for root from 192.0.2.254 port 50140 ssh2",
        "Dec  5 10:00:07 web sshd[816]: Failed password for root from 2001:db8::66 port 50150 ssh2",
        "Dec  5 10:00:08 web sshd[817]: Failed password for root from 203.0.113.9 port 50160 ssh2",
        "Dec  5 10:00:09 web sshd[818]: Failed password for root from 203.0.113.9 port 50170 ssh2",
        "Dec  5 10:00:10 web sshd[819]: Failed password for root from 203.0.113.9 port 50180 ssh2",
        "Dec  5 10:00:11 web sshd[819]: Failed password for root from 127.0.0.1 port 50182 ssh2",
        "Dec  5 10:00:12 web sshd[819]: Failed password for root from 127.0.0.1 port 50184 ssh2",
        "Dec  5 10:00:13 web sshd[819]: Failed password for root from 127.0.0.1 port 50186 ssh2",
        "Dec  5 10:00:14 web sshd[819]: Failed password for root from 127.0.0.1 port 50188 ssh2",
    ];
    let mut decisions = Vec::new();
    for (i, line) in log.iter().enumerate() {
        let now = start + 60;
        let clock = Clock {
            now,
            zone: Zone::Offset(0),
        };
        let read = scanner.line(line, &clock);
        let time = read.time.expect("every line has a date");
        for failure in &read.failures {
            for net in targets(&failure.host, usedns, &resolve).nets {
                if let Some(d) = jail.failure(net, time, line, now) {
                    decisions.push((i, d));
                }
            }
        }
    }
    assert_eq!(decisions.len(), 1, "{decisions:#?}");
    let (i, d) = &decisions[0];
    assert_eq!(*i, 8, "the fifth failure of 203.0.113.9");
    assert_eq!(d.target.to_string(), "203.0.113.9/32");
    assert_eq!((d.start, d.duration, d.failures), (start + 9, Some(600), 5));
    assert_eq!(d.matches.len(), 5);
    assert!(
        d.matches[1].contains("Invalid user oracle"),
        "{:?}",
        d.matches
    );
    let s = jail.stats();
    assert_eq!(
        s.ignored, 6,
        "127.0.0.1 five times and 192.0.2.254 once: {s:?}"
    );
    assert_eq!(s.already_banned, 1, "203.0.113.9 at 10:00:10: {s:?}");
    assert_eq!(s.currently_failed, 1, "2001:db8::66: {s:?}");
}
