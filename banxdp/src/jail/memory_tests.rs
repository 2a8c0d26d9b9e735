//! Bounded memory: the tracking limits and what happens at them, a flood of a million
//! distinct addresses, and its resident memory measured.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{
    tests::{T0, conf, feed, jail, line, net, params_with},
    *,
};

#[test]
fn the_oldest_addresses_go_first_at_the_cap() {
    let limits = Limits {
        max_tracked: 3,
        max_match_bytes: 1 << 20,
    };
    let mut j = Jail::new(params_with(&conf(), limits));
    // .1 fails at 0 and 3 (the most recent then), .2 and .3 once; .4 and .5 evict .2 and .3.
    let none = feed(
        &mut j,
        &[
            ("192.0.2.1", 0),
            ("192.0.2.2", 1),
            ("192.0.2.3", 2),
            ("192.0.2.1", 3),
            ("192.0.2.4", 4),
            ("192.0.2.5", 5),
        ],
    );
    assert!(none.is_empty());
    assert_eq!((j.stats().currently_failed, j.stats().evicted), (3, 2));
    // .1 kept its two failures: a third bans.
    assert_eq!(feed(&mut j, &[("192.0.2.1", 6)]).len(), 1);
    // .2 lost its first: two more do not ban.
    assert!(feed(&mut j, &[("192.0.2.2", 7), ("192.0.2.2", 8)]).is_empty());
    let s = j.stats();
    assert_eq!((s.currently_failed, s.evicted), (3, 2), "{s:?}");
}

#[test]
fn matched_text_is_bounded_too() {
    let limits = Limits {
        max_tracked: 1000,
        max_match_bytes: 1000,
    };
    let mut j = Jail::new(params_with(&conf(), limits));
    for i in 0..100u8 {
        let ip = format!("192.0.2.{i}");
        j.failure(net(&ip), T0, &line(&ip, 0), T0);
    }
    let s = j.stats();
    assert!(s.match_bytes <= 1000, "{s:?}");
    assert_eq!(
        s.currently_failed + usize::try_from(s.evicted).unwrap(),
        100
    );
    assert!(s.evicted > 80, "{s:?}");
    // Lines added to addresses already tracked count too.
    let mut c = conf();
    c.maxretry = 100;
    c.maxmatches = Some(100);
    let mut j = Jail::new(params_with(&c, limits));
    for n in 0..50 {
        for i in 0..3u8 {
            let ip = format!("192.0.2.{i}");
            j.failure(net(&ip), T0 + n, &line(&ip, 0), T0 + n);
        }
    }
    let s = j.stats();
    assert!(s.match_bytes <= 1000, "{s:?}");
    // Three addresses in turn, each evicting the oldest when its lines grow.
    assert!(s.evicted > 20, "{s:?}");
}

/// 1,000,000 addresses that fail once each: the jail stays within its limits, and its heap
/// (by its own account) stays under 128 MiB.
#[test]
fn a_flood_of_distinct_addresses_stays_bounded() {
    let mut j = jail(&conf());
    let mut text = String::new();
    for i in 0..1_000_000u32 {
        let ip = IpAddr::from((0x0A00_0000 + i).to_be_bytes());
        text.clear();
        text.push_str("Failed password for invalid user oracle from ");
        text.push_str(&ip.to_string());
        text.push_str(" port 51234 ssh2");
        assert_eq!(
            j.failure(
                IpNet::from(ip),
                T0 + i64::from(i / 2000),
                &text,
                T0 + i64::from(i / 2000)
            ),
            None
        );
    }
    let s = j.stats();
    assert_eq!(s.currently_failed, DEFAULT_MAX_TRACKED);
    assert_eq!(s.evicted, 1_000_000 - DEFAULT_MAX_TRACKED as u64);
    assert_eq!(s.total_failed, 1_000_000);
    let heap = j.tracked_heap_bytes();
    assert!(heap < 128 << 20, "{heap} bytes");
}

/// The resident memory of that flood, measured (run alone:
/// `cargo test -p banxdp --lib --release jail::memory_tests::flood_rss -- --ignored --nocapture`).
#[test]
#[ignore = "measures the process's RSS: run alone"]
fn flood_rss() {
    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
    let lines: Vec<(IpNet, String)> = (0..1_000_000u32)
        .map(|i| {
            let ip = IpAddr::from((0x0A00_0000 + i).to_be_bytes());
            let text = format!("Failed password for invalid user oracle from {ip} port 51234 ssh2");
            (IpNet::from(ip), text)
        })
        .collect();
    let before = rss_kib();
    let mut j = jail(&conf());
    let start = std::time::Instant::now();
    for (ip, text) in &lines {
        j.failure(*ip, T0, text, T0);
    }
    let elapsed = start.elapsed();
    let after = rss_kib();
    eprintln!("{} ns a failure", elapsed.as_nanos() / 1_000_000);
    eprintln!(
        "1,000,000 one-failure addresses: RSS {before} KiB -> {after} KiB (+{} MiB), {:?}, \
         own account {} MiB, {} bytes per tracked address",
        (after - before) / 1024,
        j.stats(),
        j.tracked_heap_bytes() >> 20,
        (after - before) * 1024 / DEFAULT_MAX_TRACKED as u64
    );
    // The lines fed are held outside the jail: the jail is the difference.
    assert!(after - before < 128 * 1024, "{before} KiB -> {after} KiB");
}

#[test]
fn limits_and_threads() {
    fn send<T: Send + Sync>() {}
    send::<Jail>();
    send::<JailParams>();
    let shared = Limits::default().shared_by(4);
    assert_eq!(
        (shared.max_tracked, shared.max_match_bytes),
        (114_688, 16 << 20)
    );
    assert_eq!(Limits::default().shared_by(0), Limits::default());
    assert_eq!(Limits::default().shared_by(10_000).max_tracked, 1024);
}
