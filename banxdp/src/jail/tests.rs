//! The state machine, table-driven, with real log lines as matches: windows, bans, ignores,
//! the increment, manual bans, restores from the store. (Configuration: `config_tests`;
//! memory: `memory_tests`; fail2ban as the oracle: `oracle_tests`.)

use std::net::IpAddr;

use ipnet::IpNet;

use super::*;
use crate::{config::jails::Increment as IncrementConf, enforce::Expiry};

pub(super) const T0: i64 = 1_765_000_000;

pub(super) fn line(ip: &str, n: usize) -> String {
    format!(
        "Failed password for invalid user admin{n} from {ip} port {} ssh2",
        40_000 + n
    )
}

pub(super) fn net(s: &str) -> IpNet {
    crate::enforce::parse_target(s).unwrap()
}

pub(super) fn conf() -> JailConfig {
    JailConfig {
        name: "sshd".into(),
        backend: "auto".into(),
        logpaths: vec!["/var/log/auth.log".into()],
        logencoding: None,
        logtimezone: None,
        failregex: vec![],
        ignoreregex: vec![],
        prefregex: None,
        datepattern: None,
        journalmatch: vec![],
        maxlines: 1,
        usedns: "warn".into(),
        maxretry: 3,
        maxmatches: None,
        findtime: 600,
        bantime: Bantime::Seconds(600),
        increment: IncrementConf::default(),
        ignoreip: vec![
            "127.0.0.1/8".into(),
            "::1".into(),
            "trusted.example.org".into(),
        ],
        ignoreself: true,
        ignorecommand: None,
        port: Some("ssh".into()),
        protocol: None,
        chain: None,
        shadow: None,
        actions: vec!["iptables-multiport".into()],
    }
}

pub(super) fn resolve(name: &str) -> Vec<IpAddr> {
    match name {
        "trusted.example.org" => vec!["198.51.100.10".parse().unwrap()],
        _ => vec![],
    }
}

pub(super) fn params_with(c: &JailConfig, limits: Limits) -> JailParams {
    let services = Services::parse("ssh 22/tcp\nhttp 80/tcp www\nhttps 443/tcp\n");
    let local: Vec<IpAddr> = vec!["192.0.2.254".parse().unwrap()];
    let env = Env {
        services: &services,
        local_addrs: &local,
        resolve: &resolve,
        seed: 7,
        limits,
    };
    JailParams::from_config(c, &env).unwrap()
}

pub(super) fn jail(c: &JailConfig) -> Jail {
    Jail::new(params_with(c, Limits::default()))
}

/// Feeds `(address, seconds after T0)` failures with `now` equal to the failure's time;
/// returns the indices of the failures that banned, and the decisions.
pub(super) fn feed(jail: &mut Jail, failures: &[(&str, i64)]) -> Vec<(usize, Decision)> {
    failures
        .iter()
        .enumerate()
        .filter_map(|(i, (ip, at))| {
            let t = T0 + at;
            jail.failure(net(ip), t, &line(ip, i), t).map(|d| (i, d))
        })
        .collect()
}

#[test]
fn bans_at_maxretry_within_findtime() {
    // (failures, indices that ban) with maxretry 3, findtime 600.
    type Case<'a> = (&'a [(&'a str, i64)], &'a [usize]);
    let cases: [Case; 6] = [
        (
            &[("192.0.2.7", 0), ("192.0.2.7", 10), ("192.0.2.7", 20)],
            &[2],
        ),
        (
            &[("192.0.2.7", 0), ("192.0.2.8", 10), ("192.0.2.7", 20)],
            &[],
        ),
        // The window slides: 0 and 500 then 1000 is two in the last 600 seconds.
        (
            &[("192.0.2.7", 0), ("192.0.2.7", 500), ("192.0.2.7", 1000)],
            &[],
        ),
        (
            &[
                ("192.0.2.7", 0),
                ("192.0.2.7", 500),
                ("192.0.2.7", 1000),
                ("192.0.2.7", 1001),
            ],
            &[3],
        ),
        // A failure after a whole findtime of quiet starts again.
        (
            &[
                ("192.0.2.7", 0),
                ("192.0.2.7", 1),
                ("192.0.2.7", 700),
                ("192.0.2.7", 701),
            ],
            &[],
        ),
        // IPv6, and IPv4-mapped IPv6 as IPv4.
        (
            &[
                ("2001:db8::1", 0),
                ("::ffff:192.0.2.9", 1),
                ("2001:db8::1", 2),
                ("192.0.2.9", 3),
                ("2001:db8::1", 4),
                ("192.0.2.9", 5),
            ],
            &[4, 5],
        ),
    ];
    for (failures, bans) in cases {
        let mut j = jail(&conf());
        let got: Vec<usize> = feed(&mut j, failures).into_iter().map(|(i, _)| i).collect();
        assert_eq!(got, bans, "{failures:?}");
    }
}

#[test]
fn a_decision_carries_what_the_store_needs() {
    let mut j = jail(&conf());
    let bans = feed(
        &mut j,
        &[("203.0.113.5", 0), ("203.0.113.5", 30), ("203.0.113.5", 60)],
    );
    let (_, d) = &bans[0];
    assert_eq!(d.target, net("203.0.113.5"));
    assert_eq!(
        (d.start, d.duration, d.end()),
        (T0 + 60, Some(600), Some(T0 + 660))
    );
    assert_eq!((d.ban_count, d.failures), (1, 3));
    assert_eq!(
        d.matches,
        [
            line("203.0.113.5", 0),
            line("203.0.113.5", 1),
            line("203.0.113.5", 2)
        ]
    );
    assert_eq!(j.currently_failed(), 0);
    assert_eq!(j.total_failed(), 3);
    assert!(j.is_banned(net("203.0.113.5")));
    let ban = d.to_ban("sshd");
    let end = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_765_000_660);
    assert_eq!(
        (ban.jail.as_str(), ban.target, ban.expiry),
        ("sshd", d.target, Expiry::At(end))
    );
}

#[test]
fn maxmatches_keeps_the_last_lines() {
    let mut c = conf();
    c.maxretry = 5;
    c.maxmatches = Some(2);
    let mut j = jail(&c);
    let ip = "203.0.113.5";
    let bans = feed(&mut j, &[(ip, 0), (ip, 1), (ip, 2), (ip, 3), (ip, 4)]);
    assert_eq!(bans[0].1.matches, [line(ip, 3), line(ip, 4)]);
    assert_eq!(bans[0].1.failures, 5);
    c.maxmatches = Some(0);
    let mut j = jail(&c);
    let bans = feed(&mut j, &[(ip, 0), (ip, 1), (ip, 2), (ip, 3), (ip, 4)]);
    assert!(bans[0].1.matches.is_empty());
    assert_eq!(j.stats().match_bytes, 0);
}

#[test]
fn old_lines_do_not_ban() {
    // A restart re-reads lines from an hour ago: none count.
    let mut j = jail(&conf());
    let now = T0 + 3600;
    for i in 0..10 {
        assert_eq!(j.failure(net("192.0.2.7"), T0 + i, "old", now), None);
    }
    assert_eq!(j.stats().too_old, 10);
    assert_eq!(j.total_failed(), 0);
    // Lines within findtime but whose ban would be over already do not ban either.
    let mut c = conf();
    c.bantime = Bantime::Seconds(60);
    let mut j = jail(&c);
    let now = T0 + 500;
    let got: Vec<_> = (0..3)
        .filter_map(|i| j.failure(net("192.0.2.7"), T0 + i, "x", now))
        .collect();
    assert!(got.is_empty());
    assert!(!j.is_banned(net("192.0.2.7")));
}

#[test]
fn ignored_addresses_are_dropped_and_counted() {
    let mut j = jail(&conf());
    for ip in [
        "127.0.0.1",
        "127.9.9.9",
        "::1",
        "198.51.100.10",
        "192.0.2.254",
    ] {
        let bans = feed(&mut j, &[(ip, 0), (ip, 1), (ip, 2), (ip, 3)]);
        assert!(bans.is_empty(), "{ip}");
    }
    assert_eq!(j.stats().ignored, 20);
    assert_eq!(j.currently_failed(), 0);
    let allowed: Vec<String> = j
        .params()
        .ignore
        .allowed_nets()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        allowed,
        [
            "127.0.0.0/8",
            "::1/128",
            "198.51.100.10/32",
            "192.0.2.254/32"
        ]
    );
}

#[test]
fn a_banned_address_is_not_banned_again_until_unbanned() {
    let mut j = jail(&conf());
    let ip = "192.0.2.7";
    let five: Vec<(&str, i64)> = (0..5).map(|i| (ip, i)).collect();
    assert_eq!(feed(&mut j, &five).len(), 1);
    assert_eq!(feed(&mut j, &[(ip, 10), (ip, 11), (ip, 12)]).len(), 0);
    assert_eq!(j.stats().already_banned, 5);
    j.unbanned(net(ip));
    let again = feed(&mut j, &[(ip, 20), (ip, 21), (ip, 22)]);
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].1.ban_count, 1,
        "without increment, counts are not kept"
    );
    assert_eq!(again[0].1.duration, Some(600));
    let s = j.stats();
    assert_eq!((s.total_banned, s.currently_banned), (2, 1));
}

fn increment_conf() -> JailConfig {
    let mut c = conf();
    c.increment = IncrementConf {
        enabled: true,
        maxtime: Some(86_400),
        ..IncrementConf::default()
    };
    c
}

#[test]
fn repeat_offenders_get_longer_bans_and_fewer_chances() {
    let mut j = jail(&increment_conf());
    let ip = "192.0.2.7";
    let mut durations = Vec::new();
    let mut failures_needed = Vec::new();
    let mut t = 0;
    for _ in 0..5 {
        let mut n = 0;
        loop {
            n += 1;
            t += 1;
            if let Some(d) = j.failure(net(ip), T0 + t, "x", T0 + t) {
                durations.push(d.duration.unwrap());
                assert_eq!(d.ban_count as usize, durations.len());
                break;
            }
        }
        failures_needed.push(n);
        j.unbanned(net(ip));
    }
    assert_eq!(durations, [600, 1200, 2400, 4800, 9600]);
    // After n bans, each failure counts 2^n/2 + 1 (at most maxretry = 3).
    assert_eq!(failures_needed, [3, 2, 1, 1, 1]);
    // With maxretry 5, after one ban: 2 + 2 + 2 ≥ 5, the third failure bans.
    let mut c = increment_conf();
    c.maxretry = 5;
    let mut j = jail(&c);
    j.restore(net(ip), 1, T0 - 3600, false);
    let bans = feed(&mut j, &[(ip, 0), (ip, 1), (ip, 2)]);
    assert_eq!(bans.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [2]);
    assert_eq!(bans[0].1.failures, 3);
}

#[test]
fn ban_counts_come_from_the_store() {
    let mut j = jail(&increment_conf());
    let ip = net("192.0.2.7");
    // Banned 3 times before, the last ban an hour ago, over now.
    j.restore(ip, 3, T0 - 3600, false);
    // A line from before that ban (re-read after a restart) does not count.
    assert_eq!(j.failure(ip, T0 - 3601, "x", T0 - 3500), None);
    let d = j
        .failure(ip, T0, "x", T0)
        .expect("the first failure counts maxretry");
    assert_eq!((d.ban_count, d.duration), (4, Some(4800)));
    // A ban still in force: failures do not ban again.
    let other = net("192.0.2.8");
    j.restore(other, 1, T0 - 10, true);
    assert!(j.is_banned(other));
    assert_eq!(j.failure(other, T0, "x", T0), None);
    // maxtime caps growth.
    j.restore(net("192.0.2.9"), 12, T0 - 86_400, false);
    assert_eq!(
        j.failure(net("192.0.2.9"), T0, "x", T0).unwrap().duration,
        Some(86_400)
    );
}

#[test]
fn rndtime_adds_up_to_its_value() {
    let mut c = increment_conf();
    c.increment.rndtime = Some(300);
    c.increment.maxtime = None;
    let mut j = jail(&c);
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..50u8 {
        let ip = net(&format!("192.0.2.{i}"));
        // Banned twice before: the first failure counts 3, the ban lasts 4 × 600 + 0..300.
        j.restore(ip, 2, T0 - 3600, false);
        let d = j.failure(ip, T0, "x", T0).unwrap().duration.unwrap();
        assert!((2400..2700).contains(&d), "{d}");
        seen.insert(d);
    }
    assert!(seen.len() > 10, "random: {seen:?}");
}

#[test]
fn manual_bans() {
    let mut j = jail(&increment_conf());
    let ip = net("192.0.2.7");
    j.failure(ip, T0, &line("192.0.2.7", 0), T0);
    let d = j.manual_ban(ip, Some(Bantime::Seconds(3600)), T0 + 5);
    assert_eq!(
        (d.start, d.duration, d.ban_count, d.failures),
        (T0 + 5, Some(3600), 1, 1)
    );
    assert_eq!(d.matches, [line("192.0.2.7", 0)]);
    assert_eq!(j.currently_failed(), 0);
    j.unbanned(ip);
    // Without a duration: bantime, grown by the increment.
    assert_eq!(j.manual_ban(ip, None, T0 + 10).duration, Some(1200));
    let subnet = j.manual_ban(net("198.51.100.0/24"), Some(Bantime::Permanent), T0);
    assert_eq!((subnet.duration, subnet.end()), (None, None));
    assert!(j.is_banned(net("198.51.100.0/24")));
    assert!(!j.is_banned(net("198.51.100.1")));
    assert_eq!(j.stats().currently_banned, 2);
    j.restore(net("192.0.2.50"), 1, T0 - 5, true);
    j.restore(net("192.0.2.7"), 2, T0 + 10, true);
    assert_eq!(
        j.stats().currently_banned,
        3,
        "192.0.2.7 restored over itself"
    );
    j.unbanned(net("192.0.2.50"));
    j.forget(net("192.0.2.50"));
    j.unbanned(net("192.0.2.50"));
    assert_eq!((j.stats().currently_banned, j.stats().total_banned), (2, 3));
}

#[test]
fn permanent_bantime_and_networks() {
    let mut c = conf();
    c.bantime = Bantime::Permanent;
    c.increment.enabled = true;
    let mut j = jail(&c);
    let subnet = "203.0.113.0/24";
    let bans = feed(&mut j, &[(subnet, 0), (subnet, 1), (subnet, 2)]);
    assert_eq!(bans[0].1.target, net(subnet));
    assert_eq!(bans[0].1.duration, None);
    assert_eq!(bans[0].1.to_ban("sshd").expiry, Expiry::Never);
    j.unbanned(net(subnet));
    j.failure(net(subnet), T0 + 9, "x", T0 + 9);
    assert_eq!(
        j.failure(net(subnet), T0 + 10, "x", T0 + 10)
            .unwrap()
            .duration,
        None
    );
}

#[test]
fn spared_by_ignorecommand() {
    let mut c = conf();
    c.ignorecommand = Some("/bin/false <ip>".into());
    let mut j = jail(&c);
    let cmd = j.params().ignorecommand.clone().unwrap();
    assert_eq!(
        cmd.argv("192.0.2.7".parse().unwrap()),
        ["/bin/false", "192.0.2.7"]
    );
    let ip = "192.0.2.7";
    let bans = feed(&mut j, &[(ip, 0), (ip, 1), (ip, 2)]);
    j.spared(bans[0].1.target);
    assert!(!j.is_banned(net(ip)));
    let s = j.stats();
    assert_eq!((s.total_banned, s.ignored, s.currently_banned), (0, 1, 0));
}

#[test]
fn expire_frees_closed_windows() {
    let mut j = jail(&conf());
    feed(
        &mut j,
        &[
            ("192.0.2.1", 0),
            ("192.0.2.2", 100),
            ("192.0.2.3", 200),
            ("192.0.2.1", 300),
        ],
    );
    assert_eq!(j.currently_failed(), 3);
    // At T0+800 the windows last touched at 100 and 200 are closed; 192.0.2.1 (300) is not.
    assert_eq!(j.expire(T0 + 800), 2);
    assert_eq!(j.currently_failed(), 1);
    assert_eq!(j.expire(T0 + 900), 1);
    assert_eq!(j.currently_failed(), 0);
}

#[test]
fn a_formula_that_fails_keeps_the_plain_bantime() {
    let mut c = increment_conf();
    c.increment.formula = Some("ban.Time * 600 / (ban.Count - 2)".into());
    let mut j = jail(&c);
    j.restore(net("192.0.2.1"), 2, T0 - 3600, false);
    j.restore(net("192.0.2.2"), 3, T0 - 3600, false);
    let d1 = j.failure(net("192.0.2.1"), T0, "x", T0).unwrap();
    let d2 = j.failure(net("192.0.2.2"), T0, "x", T0).unwrap();
    assert_eq!((d1.duration, d2.duration), (Some(600), Some(86_400)));
    assert_eq!(j.stats().formula_errors, 1);
}

#[test]
fn reload_keeps_counts() {
    let mut j = jail(&conf());
    let ip = "192.0.2.7";
    feed(&mut j, &[(ip, 0), (ip, 1)]);
    let mut c = conf();
    c.maxretry = 4;
    j.reconfigure(params_with(&c, Limits::default()));
    assert!(feed(&mut j, &[(ip, 2)]).is_empty(), "3 < the new maxretry");
    assert_eq!(feed(&mut j, &[(ip, 3)]).len(), 1);
    c.ignoreip = vec!["192.0.2.0/24".into()];
    j.reconfigure(params_with(&c, Limits::default()));
    j.unbanned(net(ip));
    assert!(feed(&mut j, &[(ip, 4), (ip, 5), (ip, 6), (ip, 7)]).is_empty());
    assert_eq!(j.stats().ignored, 4);
}
