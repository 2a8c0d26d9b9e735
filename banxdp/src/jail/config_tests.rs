//! Parameters from configuration: errors that name the jail and the value, and every stock
//! jail of the installed fail2ban through [`JailParams::from_config`].

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

/// Every jail of the installed /etc/fail2ban/jail.conf, all enabled, reads into parameters.
#[test]
fn every_stock_jail_reads_into_params() {
    use crate::config::fail2ban::{Disk, dump_stream};
    use banxdp_common::{IPPROTO_TCP, IPPROTO_UDP};
    use std::fmt::Write as _;
    let stock = std::path::Path::new("/etc/fail2ban");
    if !stock.join("jail.conf").is_file() {
        eprintln!("every_stock_jail_reads_into_params: skipped, no /etc/fail2ban");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .args(["-r", "/etc/fail2ban/."])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
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
    let services = Services::parse(&std::fs::read_to_string("/etc/services").unwrap());
    let env = Env {
        services: &services,
        local_addrs: &[],
        resolve: &|_| Vec::new(),
        seed: 1,
        limits: Limits::default(),
    };
    let mut params = Vec::new();
    let mut failures = Vec::new();
    for jail in &dump.jails {
        if jail.error.is_some() {
            continue;
        }
        let c = JailConfig::resolve(jail).unwrap();
        match JailParams::from_config(&c, &env) {
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
    assert_eq!(scope("counter-strike"), tcp(vec![0..=65535]));
}
