//! Firewall action.d files run for real inside network namespaces this test made: Debian's
//! iptables/nftables-multiport and banxdp's nftables, ipset and iptables actions, with real
//! connections (banned sources dropped, others pass, ports scoped, kernel expiry, restart
//! without duplicates, nothing left after stop), and the command backend through the
//! `Enforcer` trait. Also the load-time measurement (ignored unless asked for).

mod action_support;

use std::{
    path::Path,
    time::{Duration, Instant, SystemTime},
};

use action_support::{DEBIAN, actions, ban, context, eventually, ours, read_jail};
use banxdp::{action::ActionSet, config::fail2ban::Jail, enforce::parse_target};
use banxdp_tests::{Netns, Topology, privileged, with_netns};

// ---- firewalls, with real packets ----------------------------------------------------------

const BANNED: &str = "203.0.113.7";
const OTHER: &str = "203.0.113.8";
const BANNED6: &str = "2001:db8:2::7";

/// What the victim's firewall holds, without what changes by itself (counters, expiries).
fn firewall_state(ns: &Netns) -> String {
    let mut out = String::new();
    for args in [
        &["nft", "list", "ruleset"][..],
        &["ipset", "list", "-t"][..],
    ] {
        for line in ns.exec(args).lines() {
            if !line.contains("expires")
                && !line.contains("elements")
                && !line.contains("Size in memory")
            {
                // Counters move with the test's own packets.
                let line = match line.find("counter packets") {
                    Some(at) => {
                        let rest = &line[at..];
                        let end = rest.find(" bytes ").map_or(rest.len(), |b| {
                            let tail = &rest[b + 7..];
                            b + 7 + tail.find(' ').unwrap_or(tail.len())
                        });
                        format!("{}counter{}", &line[..at], &rest[end..])
                    }
                    None => line.to_string(),
                };
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    // Sorted: a chain made again lists in another place; a duplicate still shows.
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    lines.join("\n")
}

/// How the daemon restarts between two sets of the same jail.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// As fail2ban does: the old set stops first (fail2ban's files need it).
    Stopped,
    /// As after a crash: the new set starts over what the old one left (banxdp's files).
    Crashed,
}

/// Runs a firewall action through a ban's life inside a fresh victim namespace: bans drop
/// (v4 and v6, to the jail's ports only unless `all_ports`), other sources pass, a restart
/// duplicates nothing, unban lifts, stop leaves no rule and nothing whose name holds `marker`.
fn firewall_round(action_d: &Path, action: &str, all_ports: bool, marker: &str, restart: Restart) {
    let dir = tempfile::tempdir().unwrap();
    let jail = read_jail(dir.path(), action_d, &format!("action = {action}"));
    let topo = Topology::new(&[BANNED, OTHER], &[BANNED6]);
    let victim = &topo.victim;
    assert_clean(victim, "a fresh namespace", marker);
    let run = |f: &mut dyn FnMut()| with_netns(victim, f);
    let mut set = actions(&jail, context(None));
    run(&mut || {
        set.start().unwrap();
        set.ban(&ban(BANNED, 600)).unwrap();
        set.ban(&ban(BANNED6, 600)).unwrap();
    });
    assert!(
        !topo.tcp_connects(BANNED, 8080),
        "{action}: banned source passed"
    );
    assert!(
        !topo.tcp_connects(BANNED6, 8081),
        "{action}: banned v6 source passed"
    );
    assert!(
        topo.tcp_connects(OTHER, 8080),
        "{action}: another source was dropped"
    );
    assert_eq!(
        topo.tcp_connects(BANNED, 9090),
        !all_ports,
        "{action}: port scope"
    );
    // The daemon restarts: a new set starts again and restores the same bans.
    let banned = firewall_state(victim);
    assert!(
        banned.contains(marker),
        "{action}: nothing named `{marker}`:\n{banned}"
    );
    let mut again = restarted(&jail, victim, &mut set, restart);
    assert_eq!(
        firewall_state(victim),
        banned,
        "{action}: the restart changed the rules"
    );
    run(&mut || {
        again.unban(&ban(BANNED, 600)).unwrap();
        // banxdp's files take an unban of what is not banned (fail2ban's need not).
        if restart == Restart::Crashed {
            again.unban(&ban(BANNED, 600)).unwrap();
        }
    });
    assert!(
        topo.tcp_connects(BANNED, 8080),
        "{action}: unbanned source dropped"
    );
    assert!(
        !topo.tcp_connects(BANNED6, 8081),
        "{action}: the other ban went too"
    );
    run(&mut || {
        again.flush(&[ban(BANNED6, 600)]).unwrap();
        again.stop().unwrap();
    });
    assert!(
        topo.tcp_connects(BANNED6, 8081),
        "{action}: stopped, still dropping"
    );
    assert_clean(victim, action, marker);
}

/// A new set for `jail` that starts as the daemon would after `restart` of `old`, and
/// restores the bans of [`firewall_round`].
fn restarted(jail: &Jail, victim: &Netns, old: &mut ActionSet, restart: Restart) -> ActionSet {
    let mut again = actions(jail, context(None));
    with_netns(victim, || {
        if restart == Restart::Stopped {
            old.stop().unwrap();
        }
        again.start().unwrap();
        for ip in [BANNED, BANNED6] {
            let mut info = ban(ip, 600);
            info.restored = true;
            again.ban(&info).unwrap();
        }
    });
    again
}

/// No rule and nothing named `marker` is left in `victim`'s firewall (iptables-nft leaves its
/// empty built-in tables and chains).
fn assert_clean(victim: &Netns, action: &str, marker: &str) {
    let after = firewall_state(victim);
    for word in [marker, "saddr", "jump", "drop", "reject", "match-set"] {
        assert!(
            !after.contains(word),
            "{action}: `{word}` left behind:\n{after}"
        );
    }
}

#[test]
fn debian_iptables_multiport_in_a_namespace() {
    if privileged("debian_iptables_multiport_in_a_namespace") {
        firewall_round(
            Path::new(DEBIAN),
            "iptables-multiport[name=t, port=\"8080,8081\", protocol=tcp]",
            false,
            "f2b-t",
            Restart::Stopped,
        );
    }
}

#[test]
fn debian_nftables_multiport_in_a_namespace() {
    if privileged("debian_nftables_multiport_in_a_namespace") {
        firewall_round(
            Path::new(DEBIAN),
            "nftables-multiport[name=t, port=\"8080,8081\", protocol=tcp]",
            false,
            "f2b-table",
            Restart::Stopped,
        );
    }
}

#[test]
fn banxdp_nftables_in_a_namespace() {
    if privileged("banxdp_nftables_in_a_namespace") {
        firewall_round(
            &ours(),
            "banxdp-nftables[name=t, port=\"8080,8081\", protocol=tcp]",
            false,
            "banxdp-actions",
            Restart::Crashed,
        );
        firewall_round(
            &ours(),
            "banxdp-nftables-allports[name=t]",
            true,
            "banxdp-actions",
            Restart::Crashed,
        );
    }
}

#[test]
fn banxdp_ipset_in_a_namespace() {
    if privileged("banxdp_ipset_in_a_namespace") {
        firewall_round(
            &ours(),
            "banxdp-ipset[name=t, port=\"8080,8081\", protocol=tcp]",
            false,
            "banxdp-t",
            Restart::Crashed,
        );
        firewall_round(
            &ours(),
            "banxdp-ipset-allports[name=t]",
            true,
            "banxdp-t",
            Restart::Crashed,
        );
    }
}

#[test]
fn banxdp_iptables_in_a_namespace() {
    if privileged("banxdp_iptables_in_a_namespace") {
        firewall_round(
            &ours(),
            "banxdp-iptables[name=t, port=\"8080,8081\", protocol=tcp]",
            false,
            "banxdp-t",
            Restart::Crashed,
        );
        firewall_round(
            &ours(),
            "banxdp-iptables-allports[name=t]",
            true,
            "banxdp-t",
            Restart::Crashed,
        );
    }
}

/// The kernel lifts a ban of banxdp's set actions when its time is up, with no command run.
#[test]
fn banxdp_set_actions_expire_in_the_kernel() {
    if !privileged("banxdp_set_actions_expire_in_the_kernel") {
        return;
    }
    for action in [
        "banxdp-nftables[name=t, port=8080]",
        "banxdp-ipset[name=t, port=8080]",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let jail = read_jail(dir.path(), &ours(), &format!("action = {action}"));
        let topo = Topology::new(&[BANNED], &[]);
        let mut set = actions(&jail, context(None));
        with_netns(&topo.victim, || {
            set.start().unwrap();
            set.ban(&ban(BANNED, 5)).unwrap();
        });
        // 5 s: a connection attempt retries its SYN after 1 s, which must not outlive it.
        assert!(!topo.tcp_connects(BANNED, 8080), "{action}: not banned");
        assert!(
            eventually(Duration::from_secs(10), || topo.tcp_connects(BANNED, 8080)),
            "{action}: the ban did not expire"
        );
        // An unban after the kernel's expiry is not an error.
        with_netns(&topo.victim, || {
            set.unban(&ban(BANNED, 5)).unwrap();
            set.stop().unwrap();
        });
    }
}

// ---- the command backend, through the `Enforcer` trait --------------------------------------

#[test]
fn command_enforcer_bans_through_banxdp_nftables() {
    use banxdp::{
        action::CommandEnforcer,
        enforce::{Enforcer as _, Expiry},
    };
    use banxdp_tests::{all_ports, ban_for, ban_until};
    if !privileged("command_enforcer_bans_through_banxdp_nftables") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let jail = read_jail(
        dir.path(),
        &ours(),
        "action = banxdp-nftables[name=t, port=8080]\n         mail-whois[dest=nobody]",
    );
    let (set, skipped) =
        ActionSet::for_jail(&jail, context(None), |name| name != "mail-whois").unwrap();
    assert!(skipped.is_empty());
    assert_eq!(set.names(), ["banxdp-nftables"]);
    let topo = Topology::new(&[BANNED, OTHER], &[BANNED6]);
    let victim = &topo.victim;
    let mut backend = CommandEnforcer::new(vec![set], context(None));
    with_netns(victim, || {
        backend.add_jail(&all_ports("t")).unwrap();
        backend
            .ban_many(&[ban_for("t", BANNED, 600), ban_for("t", BANNED6, 600)])
            .unwrap();
        backend.ban(&ban_for("t", BANNED, 900)).unwrap();
        backend
            .ban(&ban_until(
                "t",
                OTHER,
                Expiry::At(SystemTime::now() + Duration::from_secs(1)),
            ))
            .unwrap();
    });
    assert_eq!(backend.active().unwrap().len(), 3);
    assert!(!topo.tcp_connects(BANNED, 8080));
    assert!(!topo.tcp_connects(BANNED6, 8080));
    assert!(
        topo.tcp_connects(BANNED, 8081),
        "port scope from the action's `port`"
    );
    // The allow list wins over bans, and lets go again.
    with_netns(victim, || {
        backend
            .set_allowed(&[parse_target(BANNED).unwrap()])
            .unwrap();
    });
    assert!(
        topo.tcp_connects(BANNED, 8080),
        "an allowed source was dropped"
    );
    with_netns(victim, || backend.set_allowed(&[]).unwrap());
    assert!(!topo.tcp_connects(BANNED, 8080));
    // Expiry: the kernel's, and the backend's own index.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(with_netns(victim, || backend.remove_expired().unwrap()), 1);
    assert!(topo.tcp_connects(OTHER, 8080));
    with_netns(victim, || {
        backend.unban("t", parse_target(BANNED).unwrap()).unwrap();
    });
    assert!(topo.tcp_connects(BANNED, 8080));
    assert_eq!(backend.active().unwrap().len(), 1);
    assert!(
        backend.describe().contains("t: banxdp-nftables"),
        "{}",
        backend.describe()
    );
    with_netns(victim, || Box::new(backend).detach().unwrap());
    assert!(topo.tcp_connects(BANNED6, 8080), "detached, still dropping");
    let after = firewall_state(victim);
    assert!(!after.contains("banxdp"), "left behind:\n{after}");
}

/// How long loading bans through each action takes (one `sh -c` per ban, as fail2ban runs
/// them). Not a pass/fail test: `cargo test -p banxdp-tests --release --test action_firewalls --
/// --ignored --nocapture load_time`, with `BANXDP_LOAD_BANS` bans (2000 by default).
#[test]
#[ignore = "a measurement"]
fn load_time() {
    if !privileged("load_time") {
        return;
    }
    let count: u32 = std::env::var("BANXDP_LOAD_BANS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().unwrap();
    let deny = dir.path().join("hosts.deny");
    let lock = dir.path().join("lock");
    let hostsdeny = format!(
        "banxdp-hostsdeny[file={}, lockfile={}]",
        deny.display(),
        lock.display()
    );
    for action in [
        "banxdp-nftables[name=t, port=8080]",
        "banxdp-ipset[name=t, port=8080]",
        "banxdp-iptables[name=t, port=8080]",
        &hostsdeny,
    ] {
        let ns = Netns::new("bxl");
        let jail = read_jail(dir.path(), &ours(), &format!("action = {action}"));
        let mut set = actions(&jail, context(None));
        let elapsed = with_netns(&ns, || {
            set.start().unwrap();
            let started = Instant::now();
            for i in 0..count {
                let [_, _, hi, lo] = i.to_be_bytes();
                set.ban(&ban(&format!("10.7.{hi}.{lo}"), 600)).unwrap();
            }
            let elapsed = started.elapsed();
            set.flush(&[]).unwrap();
            set.stop().unwrap();
            elapsed
        });
        let per_ban = elapsed / count;
        println!(
            "{action}: {count} bans in {elapsed:.2?} ({per_ban:.2?} per ban, 100,000 in about {:.0?})",
            per_ban * 100_000
        );
    }
}
