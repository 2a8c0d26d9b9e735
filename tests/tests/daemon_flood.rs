//! Restarts under fire (needs root): while banned attackers flood the defender with
//! numbered UDP datagrams and an unbanned control source floods beside them, the daemon is
//! killed with `kill -9` and started again, stopped with SIGTERM (as `systemctl restart`
//! does) and started again, and reloaded. Not one of the attackers' datagrams may reach the
//! listener at any moment of it, while the control's keep arriving through every restart:
//! the listener could have counted them. The XDP program's own drop counts must account for
//! every attacker datagram that reached the interface.
//!
//! One test bans through the log (failure lines reaching `maxretry`, as a user would), the
//! other through `banxdp ban` (a network, whose trie the program consults only while a
//! settings flag says it is not empty, and an IPv6 address). Two more restart once across a
//! change the new daemon must absorb without a gap: an upgrade whose ban map changed layout,
//! and new map capacities. And one shows that the flood sees a gap where there is one: a
//! daemon set to detach on exit lets the attacker through until the next start.

use std::{
    fmt::Write as _,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use banxdp_tests::{
    Topology,
    daemon::{Daemon, Setup},
    flood::{Flood, Source, Tally, pin_incompatible_map},
    privileged,
};

/// The port the listener counts on; the jail's scope is `7000:7010/udp`.
const PORT: u16 = 7000;
const CONTROL: &str = "198.51.100.67";
/// Datagrams per second: each attacker, and the control.
const ATTACK_RATE: u64 = 10_000;
const CONTROL_RATE: u64 = 2_000;
/// Control datagrams to see arrive between two steps (about 100 ms of them).
const STEADY: u64 = CONTROL_RATE / 10;
/// The longest the control's path may be dark inside a restart.
const DARK_LIMIT_MS: f64 = 100.0;

/// Held by each flood test: two floods at once on a 2-core machine (six real-time senders,
/// two daemons loading programs) starve the softirq that delivers the control's datagrams,
/// a darkness of the machine's and not of the restart measured.
static ONE_FLOOD: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_flood() -> std::sync::MutexGuard<'static, ()> {
    ONE_FLOOD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A jail `web` reading `app.log` in the test's temp dir, banning for an hour on UDP ports
/// 7000 to 7010 after 3 failures; `xdp` is appended to banxdp.toml's `[xdp]` section.
fn setup(xdp: &str) -> Setup {
    let setup = Setup::new("", xdp);
    std::fs::write(
        setup.path("jail.conf"),
        format!(
            "[web]\nenabled = true\nfilter = web\nport = 7000:7010\nprotocol = udp\n\
             logpath = {}\nmaxretry = 3\nfindtime = 600\nbantime = 1h\n",
            setup.path("app.log").display()
        ),
    )
    .unwrap();
    setup.filter(
        "web",
        "[Definition]\nfailregex = ^ login failed for \\S+ from <HOST>$\n",
    );
    setup.append("app.log", &[format!("{} service started", now_iso())]);
    setup
}

fn now_iso() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    banxdp::filter::report::iso8601(i64::try_from(secs).unwrap())
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Starts the daemon (its log `daemonN.log`) and waits until it enforces and answers.
fn start(topo: &Topology, setup: &Setup, n: usize) -> Daemon {
    let mut daemon = Daemon::start(
        &topo.victim,
        &setup.path("banxdp.toml"),
        setup.path(&format!("daemon{n}.log")),
    );
    daemon.wait_for_log("enforcing ");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !setup.client(&["ping"]).status.success() {
        assert!(Instant::now() < deadline, "no pong:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    daemon
}

/// Waits until the control's datagrams flow again: `STEADY` more of them.
fn steady(flood: &Flood, after: &str) {
    assert!(
        flood.wait_for_more(CONTROL.parse().unwrap(), STEADY, Duration::from_secs(10)),
        "the control's datagrams stopped arriving after {after}"
    );
}

/// Floods from `sources` while the daemon is killed and started, stopped and started, and
/// reloaded; the tally, and the daemon running at the end.
fn restarts_under_flood(
    topo: &Topology,
    setup: &Setup,
    daemon: Daemon,
    sources: &[Source],
) -> (Tally, Daemon) {
    let flood = Flood::start(topo, PORT, sources);
    steady(&flood, "the start");
    let mut daemon = flood.window("kill -9 + start", || {
        let mut daemon = daemon;
        daemon.kill_9();
        start(topo, setup, 2)
    });
    steady(&flood, "kill -9");
    let daemon = flood.window("SIGTERM + start", || {
        assert!(daemon.stop(), "{}", daemon.log());
        start(topo, setup, 3)
    });
    steady(&flood, "SIGTERM");
    // The reload reads a changed configuration: `web`'s ports widen, a jail is added (new
    // port bits, a new slot, a new allow list, a new log to follow).
    let jails = std::fs::read_to_string(setup.path("jail.conf")).unwrap();
    let jails = jails.replace("port = 7000:7010", "port = 7000:7020");
    std::fs::write(
        setup.path("jail.conf"),
        format!(
            "{jails}\n[web2]\nenabled = true\nfilter = web\nport = 7000,8000\nprotocol = tcp\n\
             logpath = {}\nignoreip = 192.0.2.0/24\n",
            setup.path("other.log").display()
        ),
    )
    .unwrap();
    flood.window("reload", || {
        let out = setup.client(&["reload"]);
        assert!(out.status.success(), "{}", text(&out));
    });
    steady(&flood, "reload");
    let status = text(&setup.client(&["status"]));
    assert!(
        status.contains("web2"),
        "the reload read the new jail: {status}"
    );
    (flood.finish(), daemon)
}

/// `banxdp list --json`: each ban's target and drop count.
fn ban_drops(setup: &Setup) -> Vec<(String, u64)> {
    let out = setup.client(&["list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let bans: serde_json::Value = serde_json::from_slice(&out.stdout).expect("list --json");
    bans.as_array()
        .expect("an array of bans")
        .iter()
        .map(|b| {
            (
                b["target"].as_str().unwrap().to_string(),
                b["drops"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// `banxdp stats --json`: the drops of `eth0`, whatever the reason.
fn interface_drops(setup: &Setup) -> u64 {
    let out = setup.client(&["stats", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats --json");
    stats
        .as_array()
        .expect("interfaces")
        .iter()
        .filter(|i| i["interface"] == "eth0")
        .flat_map(|i| i["packets"].as_object().expect("counters").iter())
        .filter(|(name, _)| name.starts_with("drop"))
        .map(|(_, count)| count.as_u64().unwrap())
        .sum()
}

/// Datagrams the veth pair itself dropped on the way (its ring full on a loaded machine):
/// the attacker end's `tx_dropped` and the victim end's `rx_dropped`.
fn veth_drops(topo: &Topology) -> u64 {
    let read = |ns: &banxdp_tests::Netns, counter: &str| -> u64 {
        ns.exec(&["cat", &format!("/sys/class/net/eth0/statistics/{counter}")])
            .trim()
            .parse()
            .unwrap()
    };
    read(&topo.attacker, "tx_dropped") + read(&topo.victim, "rx_dropped")
}

/// What the daemon and the kernel counted, beside the flood's own tally.
struct Counted {
    /// Each ban's target and its drop count (`banxdp list --json`).
    bans: Vec<(String, u64)>,
    /// Drops on the defender's interface (`banxdp stats --json`).
    xdp_drops: u64,
    /// Datagrams the veth pair dropped before XDP saw them.
    veth: u64,
}

impl Counted {
    fn read(topo: &Topology, setup: &Setup, veth_before: u64) -> Self {
        Self {
            bans: ban_drops(setup),
            xdp_drops: interface_drops(setup),
            veth: veth_drops(topo) - veth_before,
        }
    }

    fn drops_of(&self, ban: &str) -> u64 {
        self.bans
            .iter()
            .find(|(target, _)| target == ban)
            .map_or(0, |(_, d)| *d)
    }
}

/// What was measured, for people: every source, every window.
fn report(name: &str, tally: &Tally, attackers: &[(&str, &str)], counted: &Counted) -> String {
    let mut report = format!("{name}:\n");
    for (addr, ban) in attackers {
        let attacker = tally.of(addr);
        let _ = writeln!(
            report,
            "  attacker {addr} (ban {ban}): sent {} at {:.0}/s ({} refused by its socket), \
             received {}, dropped by its ban in XDP {}",
            attacker.sent(),
            attacker.achieved_rate(),
            attacker.send_errors,
            attacker.received(),
            counted.drops_of(ban),
        );
    }
    let control = tally.of(CONTROL);
    let whole = control.whole();
    let _ = writeln!(
        report,
        "  control {CONTROL}: sent {} at {:.0}/s, received {}, lost {}, longest gap {:.1} ms, \
         longest dark span {:.1} ms, worst latency {:.2} ms",
        control.sent(),
        control.achieved_rate(),
        control.received(),
        whole.lost,
        whole.longest_gap_ms,
        whole.longest_loss_ms,
        whole.worst_latency_ms
    );
    let _ = writeln!(
        report,
        "  XDP drops on eth0 (stats): {}; dropped by the veth pair itself: {}; strangers: {}",
        counted.xdp_drops, counted.veth, tally.strangers
    );
    for window in &tally.windows {
        let path = control.path(window.from_ns, window.to_ns);
        let attacks: Vec<String> = attackers
            .iter()
            .map(|(a, _)| {
                tally
                    .of(a)
                    .path(window.from_ns, window.to_ns)
                    .sent
                    .to_string()
            })
            .collect();
        let _ = writeln!(
            report,
            "  {}: {:.0} ms; attackers sent {} in it; control sent {}, arrived {}, lost {}, \
             longest gap {:.1} ms, longest dark span {:.1} ms, worst latency {:.2} ms",
            window.label,
            window.millis(),
            attacks.join(" + "),
            path.sent,
            path.arrived,
            path.lost,
            path.longest_gap_ms,
            path.longest_loss_ms,
            path.worst_latency_ms
        );
    }
    report
}

/// Checks what every flood must show: no attacker datagram arrived, the attackers sent and
/// the control arrived inside every window with its path never dark for long, and the XDP
/// program's drops account for every attacker datagram; with `bans_kept` (the ban maps lived
/// through every restart), each one on its ban.
fn judge(
    name: &str,
    tally: &Tally,
    attackers: &[(&str, &str)],
    counted: &Counted,
    bans_kept: bool,
) {
    let report = report(name, tally, attackers, counted);
    eprintln!("{report}");
    for (addr, _) in attackers {
        let attacker = tally.of(addr);
        assert_eq!(
            attacker.received(),
            0,
            "{addr}'s datagrams reached the listener (first: {:?})\n{report}",
            attacker.arrivals.first()
        );
    }
    let control = tally.of(CONTROL);
    for window in &tally.windows {
        for (addr, _) in attackers {
            assert!(
                tally.of(addr).path(window.from_ns, window.to_ns).sent > 0,
                "{addr} sent nothing during {}: the window proves nothing\n{report}",
                window.label
            );
        }
        let path = control.path(window.from_ns, window.to_ns);
        assert!(
            path.arrived > 0,
            "no control datagram arrived during {}\n{report}",
            window.label
        );
        assert!(
            path.longest_loss_ms < DARK_LIMIT_MS,
            "the control's path was dark for {:.1} ms during {}\n{report}",
            path.longest_loss_ms,
            window.label
        );
        assert!(
            path.worst_latency_ms < DARK_LIMIT_MS,
            "a control datagram took {:.1} ms to arrive during {}\n{report}",
            path.worst_latency_ms,
            window.label
        );
    }
    let sent: u64 = attackers.iter().map(|(a, _)| tally.of(a).sent()).sum();
    assert_eq!(
        counted.xdp_drops + counted.veth,
        sent,
        "every attacker datagram is dropped by XDP, or before by the veth pair\n{report}"
    );
    // The drops counted on the bans themselves: all of them where the ban maps lived through
    // every restart, short only of those the program counted while a restart's restore
    // rewrote a ban's value (a read, merge and write from user space, which can lose the
    // kernel's increments made in between; the drop itself still happened).
    let accounted: u64 = attackers.iter().map(|(_, ban)| counted.drops_of(ban)).sum();
    assert!(accounted <= counted.xdp_drops, "{report}");
    if bans_kept {
        assert!(
            accounted * 100 >= counted.xdp_drops * 99,
            "the bans' own drop counts miss more than 1% of the drops\n{report}"
        );
    }
}

#[test]
fn a_ban_from_the_log_holds_through_kill_9_sigterm_and_reload_under_flood() {
    const NAME: &str = "a_ban_from_the_log_holds_through_kill_9_sigterm_and_reload_under_flood";
    const ATTACKER: &str = "198.51.100.66";
    if !privileged(NAME) {
        return;
    }
    let _one = one_flood();
    let topo = Topology::new(&[ATTACKER, CONTROL], &[]);
    let setup = setup("");
    let daemon = start(&topo, &setup, 1);
    assert_eq!(
        topo.udp_delivered(ATTACKER, PORT, 20),
        20,
        "the attacker passes before its ban"
    );
    let failures: Vec<String> = (0..3)
        .map(|i| format!("{} login failed for user{i} from {ATTACKER}", now_iso()))
        .collect();
    setup.append("app.log", &failures);
    let mut daemon = daemon;
    daemon.wait_for_log(&format!("[web] Ban {ATTACKER}"));

    let veth_before = veth_drops(&topo);
    let sources = [
        Source::new(ATTACKER, ATTACK_RATE),
        Source::new(CONTROL, CONTROL_RATE),
    ];
    let (tally, mut daemon) = restarts_under_flood(&topo, &setup, daemon, &sources);
    let counted = Counted::read(&topo, &setup, veth_before);
    judge(NAME, &tally, &[(ATTACKER, ATTACKER)], &counted, true);
    assert!(daemon.stop(), "{}", daemon.log());
}

#[test]
fn bans_from_the_cli_hold_through_kill_9_sigterm_and_reload_under_flood() {
    const NAME: &str = "bans_from_the_cli_hold_through_kill_9_sigterm_and_reload_under_flood";
    const ATTACKER_NET: &str = "203.0.113.0/24";
    const ATTACKER_V4: &str = "203.0.113.9";
    const ATTACKER_V6: &str = "2001:db8:1::66";
    if !privileged(NAME) {
        return;
    }
    let _one = one_flood();
    let topo = Topology::new(&[ATTACKER_V4, CONTROL], &[ATTACKER_V6]);
    let setup = setup("");
    let daemon = start(&topo, &setup, 1);
    for (target, source) in [(ATTACKER_NET, ATTACKER_V4), (ATTACKER_V6, ATTACKER_V6)] {
        assert_eq!(
            topo.udp_delivered(source, PORT, 20),
            20,
            "{source} passes before its ban"
        );
        let out = setup.client(&["ban", target, "--jail", "web", "--for", "1h"]);
        assert!(out.status.success(), "{}", text(&out));
    }

    let veth_before = veth_drops(&topo);
    let sources = [
        Source::new(ATTACKER_V4, ATTACK_RATE),
        Source::new(ATTACKER_V6, ATTACK_RATE),
        Source::new(CONTROL, CONTROL_RATE),
    ];
    let (tally, mut daemon) = restarts_under_flood(&topo, &setup, daemon, &sources);
    let counted = Counted::read(&topo, &setup, veth_before);
    judge(
        NAME,
        &tally,
        &[(ATTACKER_V4, ATTACKER_NET), (ATTACKER_V6, ATTACKER_V6)],
        &counted,
        true,
    );
    assert!(daemon.stop(), "{}", daemon.log());
}

/// The flood can see a gap: where a stop detaches the program (`detach_on_exit = true`, not
/// the default), the attacker's datagrams sent between the stop and the next start arrive,
/// and the listener counts them; once the next daemon has restored the ban from its store,
/// none arrives.
#[test]
fn the_flood_counts_the_gap_of_a_daemon_that_detaches_on_exit() {
    const NAME: &str = "the_flood_counts_the_gap_of_a_daemon_that_detaches_on_exit";
    const ATTACKER: &str = "198.51.100.66";
    if !privileged(NAME) {
        return;
    }
    let _one = one_flood();
    let topo = Topology::new(&[ATTACKER, CONTROL], &[]);
    let setup = setup("detach_on_exit = true\n");
    let mut daemon = start(&topo, &setup, 1);
    let out = setup.client(&["ban", ATTACKER, "--jail", "web", "--for", "1h"]);
    assert!(out.status.success(), "{}", text(&out));

    let sources = [
        Source::new(ATTACKER, ATTACK_RATE),
        Source::new(CONTROL, CONTROL_RATE),
    ];
    let flood = Flood::start(&topo, PORT, &sources);
    steady(&flood, "the start");
    let mut daemon = flood.window("SIGTERM (detaching) + start", || {
        assert!(daemon.stop(), "{}", daemon.log());
        start(&topo, &setup, 2)
    });
    steady(&flood, "the restart");
    let tally = flood.finish();
    let counted = Counted::read(&topo, &setup, 0);
    eprintln!(
        "{}",
        report(NAME, &tally, &[(ATTACKER, ATTACKER)], &counted)
    );

    let attacker = tally.of(ATTACKER);
    let window = &tally.windows[0];
    assert!(
        attacker.received() > 0,
        "the detached interval let nothing through: the flood would miss a gap"
    );
    let outside: Vec<_> = attacker
        .arrivals
        .iter()
        .filter(|a| a.sent_ns < window.from_ns || a.sent_ns > window.to_ns)
        .collect();
    assert!(
        outside.is_empty(),
        "attacker datagrams sent outside the restart arrived: {outside:?}"
    );
    assert!(daemon.stop(), "{}", daemon.log());
}

/// One restart under flood, with `change` made between the old daemon's end and the new
/// one's start (`stop` ends the old one: kill -9 or SIGTERM); the new daemon's log must say
/// `expect`. The attacker is banned (exactly and in a network) through the CLI.
fn restart_with_a_change(
    name: &str,
    stop: fn(&mut Daemon),
    change: impl FnOnce(&Setup),
    expect: &str,
) {
    const ATTACKER: &str = "198.51.100.66";
    const ATTACKER_NET: &str = "203.0.113.0/24";
    const ATTACKER_IN_NET: &str = "203.0.113.9";
    let topo = Topology::new(&[ATTACKER, ATTACKER_IN_NET, CONTROL], &[]);
    let setup = setup("");
    let daemon = start(&topo, &setup, 1);
    for target in [ATTACKER, ATTACKER_NET] {
        let out = setup.client(&["ban", target, "--jail", "web", "--for", "1h"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let veth_before = veth_drops(&topo);
    let sources = [
        Source::new(ATTACKER, ATTACK_RATE),
        Source::new(ATTACKER_IN_NET, ATTACK_RATE),
        Source::new(CONTROL, CONTROL_RATE),
    ];
    let flood = Flood::start(&topo, PORT, &sources);
    steady(&flood, "the start");
    let mut daemon = flood.window(&format!("stop + {expect} + start"), || {
        let mut daemon = daemon;
        stop(&mut daemon);
        change(&setup);
        start(&topo, &setup, 2)
    });
    steady(&flood, "the restart");
    let tally = flood.finish();
    assert!(daemon.log().contains(expect), "{}", daemon.log());
    let counted = Counted::read(&topo, &setup, veth_before);
    let attackers = [(ATTACKER, ATTACKER), (ATTACKER_IN_NET, ATTACKER_NET)];
    judge(name, &tally, &attackers, &counted, false);
    assert!(daemon.stop(), "{}", daemon.log());
}

/// An upgrade that changes the ban map's layout: the new daemon cannot reuse the pinned map
/// and starts a new, empty one. The old program, still attached through the pinned link,
/// must keep dropping from its own map until the new one holds every ban of the store.
#[test]
fn an_upgrade_that_changes_the_ban_map_layout_lets_nothing_through() {
    const NAME: &str = "an_upgrade_that_changes_the_ban_map_layout_lets_nothing_through";
    if !privileged(NAME) {
        return;
    }
    let _one = one_flood();
    restart_with_a_change(
        NAME,
        Daemon::kill_9,
        |setup| pin_incompatible_map(&setup.pins.0.join(banxdp_common::MAP_BANS_V4)),
        "incompatible build",
    );
}

/// New map capacities at a restart (SIGTERM, then a start with other `[xdp.capacity]`): the
/// new maps are filled from the old ones and the store before the program switches.
#[test]
fn a_restart_with_new_map_capacities_lets_nothing_through() {
    const NAME: &str = "a_restart_with_new_map_capacities_lets_nothing_through";
    if !privileged(NAME) {
        return;
    }
    let _one = one_flood();
    restart_with_a_change(
        NAME,
        |daemon| assert!(daemon.stop(), "{}", daemon.log()),
        |setup| {
            let mut toml = std::fs::read_to_string(setup.path("banxdp.toml")).unwrap();
            toml.push_str("[xdp.capacity]\nbans_v4 = 4096\ncidr_v4 = 1024\n");
            std::fs::write(setup.path("banxdp.toml"), toml).unwrap();
        },
        "changes capacity",
    );
}
