//! The firewall fallbacks (nftables, ipset + iptables, iptables rule per address) with real
//! packets: each test builds an attacker and a victim namespace joined by a veth pair, runs the
//! backend's tools inside the victim (`ip netns exec`, never in the root namespace), and checks
//! that banned sources are dropped and others pass, port scopes, expiry, unban of one jail's
//! ban while another's stays, the allow list, a restart without duplicated rules or sets, and
//! that `detach` leaves nothing behind.

use std::time::{Duration, Instant};

use banxdp::enforce::{
    Enforcer, JailScope, PortScope,
    exec::Executor,
    ipset::{IpsetEnforcer, IpsetOptions},
    iptables::{IptablesEnforcer, IptablesOptions},
    nftables::{NftEnforcer, NftOptions},
    parse_target,
};
use banxdp_common::{IPPROTO_TCP, IPPROTO_UDP};
use banxdp_tests::{Topology, all_ports, ban_for, privileged};

const BANNED: &str = "203.0.113.7";
const BYSTANDER: &str = "203.0.113.8";
const SHORT: &str = "203.0.113.9";
const BANNED6: &str = "2001:db8:2::7";
const BYSTANDER6: &str = "2001:db8:2::8";
const WEB: u16 = 8080;
const OTHER: u16 = 9090;

/// A backend under test: how to make it in a namespace, and its rules and sets as text.
struct Case {
    make: fn(Executor) -> Box<dyn Enforcer>,
    /// What the backend put in place (rules, set names), without counters or elements.
    layout: fn(&banxdp_tests::Netns) -> String,
}

fn web() -> JailScope {
    JailScope {
        name: "web".into(),
        ports: PortScope::Ports {
            protocols: vec![IPPROTO_TCP, IPPROTO_UDP],
            ranges: vec![WEB..=WEB],
        },
        shadow: false,
    }
}

fn declare(e: &mut dyn Enforcer) {
    e.add_jail(&web()).unwrap();
    e.add_jail(&all_ports("any")).unwrap();
    e.add_jail(&JailScope {
        name: "watch".into(),
        ports: PortScope::All,
        shadow: true,
    })
    .unwrap();
}

fn passes(t: &Topology, source: &str, port: u16) -> bool {
    t.udp_delivered(source, port, 3) == 3
}

fn dropped(t: &Topology, source: &str, port: u16) -> bool {
    t.udp_delivered(source, port, 3) == 0
}

/// Waits up to `limit` for `condition`, calling `tick` (a backend's expiry sweep) in between.
fn eventually(
    limit: Duration,
    mut tick: impl FnMut(),
    mut condition: impl FnMut() -> bool,
) -> bool {
    let start = Instant::now();
    loop {
        tick();
        if condition() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn scenario(test: &str, case: &Case) {
    if !privileged(test) {
        return;
    }
    let t = Topology::new(&[BANNED, BYSTANDER, SHORT], &[BANNED6, BYSTANDER6]);
    let exec = Executor::in_netns(&t.victim.name);
    let mut e = (case.make)(exec.clone());
    declare(e.as_mut());
    assert!(passes(&t, BANNED, WEB), "{test}: nothing banned yet");
    e.ban_many(&[
        ban_for("web", BANNED, 600),
        ban_for("any", BANNED6, 600),
        ban_for("any", SHORT, 8),
        ban_for("watch", BYSTANDER, 600),
    ])
    .unwrap();
    // Counted at once: the probes below take seconds, and the short ban's end must not race them.
    assert_eq!(e.active().unwrap().len(), 4);
    assert!(
        dropped(&t, SHORT, OTHER),
        "{test}: the short ban holds at first"
    );

    // Banned sources dropped, within their jail's ports; others pass.
    assert!(
        dropped(&t, BANNED, WEB),
        "{test}: banned on its jail's port"
    );
    assert!(!t.tcp_connects(BANNED, WEB), "{test}: tcp too");
    assert!(passes(&t, BANNED, OTHER), "{test}: other ports pass");
    assert!(
        passes(&t, BYSTANDER, WEB),
        "{test}: a shadow jail's ban passes"
    );
    assert!(t.tcp_connects(BYSTANDER, WEB), "{test}: bystander connects");
    assert!(dropped(&t, BANNED6, OTHER), "{test}: IPv6, all ports");
    assert!(passes(&t, BYSTANDER6, OTHER), "{test}: IPv6 bystander");

    // Expiry: the short ban ends by itself (the kernel's timeout or the sweep).
    assert!(
        eventually(
            Duration::from_secs(20),
            || {
                e.remove_expired().unwrap();
            },
            || passes(&t, SHORT, OTHER)
        ),
        "{test}: the 4-second ban ended"
    );
    assert_eq!(e.active().unwrap().len(), 3);
    e.unban("watch", parse_target(BYSTANDER).unwrap()).unwrap();

    // The allow list wins over every ban.
    e.set_allowed(&[parse_target(BANNED).unwrap()]).unwrap();
    assert!(passes(&t, BANNED, WEB), "{test}: allowed");
    e.set_allowed(&[]).unwrap();
    assert!(dropped(&t, BANNED, WEB), "{test}: allowed no more");

    // Two jails ban one source: unbanning one leaves the other's ban.
    e.ban(&ban_for("any", BANNED, 600)).unwrap();
    assert!(dropped(&t, BANNED, OTHER), "{test}: `any` bans every port");
    e.unban("web", parse_target(BANNED).unwrap()).unwrap();
    assert!(dropped(&t, BANNED, WEB), "{test}: `any` still bans it");
    e.unban("any", parse_target(BANNED).unwrap()).unwrap();
    e.unban("any", parse_target(BANNED).unwrap()).unwrap();
    assert!(passes(&t, BANNED, WEB), "{test}: unbanned by both");

    // A restart (a new process adopting what the old one left) duplicates nothing.
    e.ban(&ban_for("web", BANNED, 600)).unwrap();
    let before = (case.layout)(&t.victim);
    drop(e);
    let mut e = (case.make)(exec);
    declare(e.as_mut());
    e.ban_many(&[ban_for("web", BANNED, 600), ban_for("any", BANNED6, 600)])
        .unwrap();
    assert_eq!(
        (case.layout)(&t.victim),
        before,
        "{test}: same layout after restart"
    );
    assert!(
        dropped(&t, BANNED, WEB),
        "{test}: still banned after restart"
    );

    // A jail removed lifts its bans; detach leaves nothing.
    e.remove_jail("web").unwrap();
    assert!(passes(&t, BANNED, WEB), "{test}: jail removed");
    assert!(dropped(&t, BANNED6, OTHER), "{test}: the other jail holds");
    e.detach().unwrap();
    assert!(passes(&t, BANNED6, OTHER), "{test}: detached");
    let left = (case.layout)(&t.victim);
    assert!(left.trim().is_empty(), "{test}: left behind:\n{left}");
}

/// Lines of `text` that do not mention counters or set elements, as a layout.
fn structure(text: &str) -> String {
    text.lines()
        .map(|l| {
            l.split(" counter packets")
                .next()
                .unwrap_or_default()
                .trim_end()
        })
        .filter(|l| !l.trim_start().starts_with("elements") && !l.starts_with("\t\t\t"))
        .fold(String::new(), |acc, l| acc + l + "\n")
}

fn iptables_layout(ns: &banxdp_tests::Netns) -> String {
    let mut out = String::new();
    for tool in ["iptables", "ip6tables"] {
        let rules = ns.exec(&[tool, "-S"]);
        for line in rules.lines().filter(|l| !l.starts_with("-P ")) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn nftables_drops_scopes_expires_and_cleans_up() {
    scenario(
        "nftables_drops_scopes_expires_and_cleans_up",
        &Case {
            make: |exec| {
                Box::new(
                    NftEnforcer::new(NftOptions {
                        exec,
                        ..NftOptions::default()
                    })
                    .unwrap(),
                )
            },
            layout: |ns| structure(&ns.exec(&["nft", "list", "ruleset"])),
        },
    );
}

#[test]
fn ipset_drops_scopes_expires_and_cleans_up() {
    scenario(
        "ipset_drops_scopes_expires_and_cleans_up",
        &Case {
            make: |exec| {
                Box::new(
                    IpsetEnforcer::new(IpsetOptions {
                        exec,
                        ..IpsetOptions::default()
                    })
                    .unwrap(),
                )
            },
            layout: |ns| iptables_layout(ns) + &ns.exec(&["ipset", "list", "-n"]),
        },
    );
}

#[test]
fn iptables_rule_per_address_drops_scopes_expires_and_cleans_up() {
    scenario(
        "iptables_rule_per_address_drops_scopes_expires_and_cleans_up",
        &Case {
            make: |exec| {
                Box::new(
                    IptablesEnforcer::new(IptablesOptions {
                        exec,
                        ..IptablesOptions::default()
                    })
                    .unwrap(),
                )
            },
            layout: iptables_layout,
        },
    );
}

#[test]
fn iptables_rules_are_newest_first() {
    if !privileged("iptables_rules_are_newest_first") {
        return;
    }
    let t = Topology::new(&[], &[]);
    let mut e = IptablesEnforcer::new(IptablesOptions {
        exec: Executor::in_netns(&t.victim.name),
        ..IptablesOptions::default()
    })
    .unwrap();
    e.add_jail(&all_ports("sshd")).unwrap();
    e.ban(&ban_for("sshd", "192.0.2.1", 60)).unwrap();
    e.ban_many(&[
        ban_for("sshd", "192.0.2.2", 60),
        ban_for("sshd", "192.0.2.1", 60),
    ])
    .unwrap();
    let rules = t.victim.exec(&["iptables", "-S", "bx-sshd"]);
    let lines: Vec<&str> = rules.lines().collect();
    assert_eq!(
        lines,
        [
            "-N bx-sshd",
            "-A bx-sshd -s 192.0.2.2/32 -j DROP",
            "-A bx-sshd -s 192.0.2.1/32 -j DROP"
        ]
    );
    Box::new(e).detach().unwrap();
}

#[test]
fn a_hundred_thousand_bans_load_in_one_transaction_each() {
    if !privileged("a_hundred_thousand_bans_load_in_one_transaction_each") {
        return;
    }
    let t = Topology::new(&[], &[]);
    let bans: Vec<banxdp::enforce::Ban> = (0..100_000u32)
        .map(|i| {
            let addr = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            ban_for("bulk", &addr.to_string(), 600)
        })
        .collect();
    let exec = Executor::in_netns(&t.victim.name);
    let backends: [(&str, Box<dyn Enforcer>); 2] = [
        (
            "nftables",
            Box::new(
                NftEnforcer::new(NftOptions {
                    exec: exec.clone(),
                    ..NftOptions::default()
                })
                .unwrap(),
            ),
        ),
        (
            "ipset",
            Box::new(
                IpsetEnforcer::new(IpsetOptions {
                    exec,
                    ..IpsetOptions::default()
                })
                .unwrap(),
            ),
        ),
    ];
    for (name, mut e) in backends {
        e.add_jail(&all_ports("bulk")).unwrap();
        let (start, cpu) = (Instant::now(), cpu_time());
        e.ban_many(&bans).unwrap();
        let (took, cpu) = (start.elapsed(), cpu_time().saturating_sub(cpu));
        eprintln!("{name}: 100,000 bans in {took:?} ({cpu:?} of CPU, tools included)");
        // The bound is one second (release build, idle machine). The CPU time is
        // held, not the wall time, which a shared machine stretches at will; a debug build,
        // and the tools other tests here start meanwhile (counted as children too), get
        // four times the bound.
        assert!(cpu < Duration::from_secs(4), "{name}: {cpu:?} of CPU");
        assert_eq!(e.active().unwrap().len(), 100_000);
        e.detach().unwrap();
    }
    let tables = t.victim.exec(&["nft", "list", "tables"]);
    assert!(!tables.contains("banxdp"), "{tables}");
    assert_eq!(t.victim.exec(&["ipset", "list", "-n"]), "");
}

/// User and system time of this thread and of the process's waited-for children so far.
fn cpu_time() -> Duration {
    let of = |who| {
        // SAFETY: getrusage fills the struct it is given; zeroed is a valid start.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::getrusage(who, &raw mut usage) };
        let tv = |t: libc::timeval| {
            Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
                + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
        };
        tv(usage.ru_utime) + tv(usage.ru_stime)
    };
    of(libc::RUSAGE_THREAD) + of(libc::RUSAGE_CHILDREN)
}

/// The three backends, each acting in the namespace `exec` names.
fn all_backends(exec: &Executor) -> Vec<(&'static str, Box<dyn Enforcer>)> {
    vec![
        (
            "nftables",
            Box::new(
                NftEnforcer::new(NftOptions {
                    exec: exec.clone(),
                    ..NftOptions::default()
                })
                .unwrap(),
            ),
        ),
        (
            "ipset",
            Box::new(
                IpsetEnforcer::new(IpsetOptions {
                    exec: exec.clone(),
                    ..IpsetOptions::default()
                })
                .unwrap(),
            ),
        ),
        (
            "iptables",
            Box::new(
                IptablesEnforcer::new(IptablesOptions {
                    exec: exec.clone(),
                    ..IptablesOptions::default()
                })
                .unwrap(),
            ),
        ),
    ]
}

#[test]
fn a_longer_ban_replaces_the_first_ones_expiry() {
    if !privileged("a_longer_ban_replaces_the_first_ones_expiry") {
        return;
    }
    let t = Topology::new(&[BANNED, BYSTANDER], &[]);
    let exec = Executor::in_netns(&t.victim.name);
    let mut backends = all_backends(&exec);
    // Each backend in turn; the others hold no ban meanwhile.
    for (name, e) in &mut backends {
        e.add_jail(&all_ports("sshd")).unwrap();
        e.ban(&ban_for("sshd", BANNED, 2)).unwrap();
        // bantime.increment: the same jail bans again, for longer.
        e.ban(&ban_for("sshd", BANNED, 600)).unwrap();
        std::thread::sleep(Duration::from_secs(3));
        e.remove_expired().unwrap();
        assert!(dropped(&t, BANNED, OTHER), "{name}: the longer ban holds");
        assert_eq!(e.active().unwrap().len(), 1, "{name}");
        e.unban("sshd", parse_target(BANNED).unwrap()).unwrap();
        assert!(passes(&t, BANNED, OTHER), "{name}: unbanned");
    }
    for (_, e) in backends {
        e.detach().unwrap();
    }
}

/// Nested network bans of one jail, each with its own end, in one batch (as a restore sends
/// them): every backend takes both, and when the wider one ends, the narrower still drops.
/// (An nftables interval set refuses overlapping elements: each prefix length has its set.)
#[test]
fn nested_networks_each_hold_until_their_own_end() {
    if !privileged("nested_networks_each_hold_until_their_own_end") {
        return;
    }
    let t = Topology::new(&[BANNED, BYSTANDER], &[]);
    let exec = Executor::in_netns(&t.victim.name);
    let mut backends = all_backends(&exec);
    for (name, e) in &mut backends {
        e.add_jail(&all_ports("sshd")).unwrap();
        // 203.0.113.0/29 holds BANNED (.7) for 2 s; 203.0.113.4/30 holds it for 600 s.
        e.ban_many(&[
            ban_for("sshd", "203.0.113.0/29", 2),
            ban_for("sshd", "203.0.113.4/30", 600),
        ])
        .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert!(dropped(&t, BANNED, OTHER), "{name}: banned");
        assert!(passes(&t, BYSTANDER, OTHER), "{name}: .8 is in neither");
        std::thread::sleep(Duration::from_secs(3));
        e.remove_expired().unwrap();
        assert!(
            dropped(&t, BANNED, OTHER),
            "{name}: the /30 outlives the /29"
        );
        assert_eq!(e.active().unwrap().len(), 1, "{name}");
        e.unban("sshd", parse_target("203.0.113.4/30").unwrap())
            .unwrap();
        assert!(passes(&t, BANNED, OTHER), "{name}: unbanned");
    }
    for (_, e) in backends {
        e.detach().unwrap();
    }
}
