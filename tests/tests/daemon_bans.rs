//! `banxdp run` end to end (needs root): failure lines appended to a log become an XDP ban
//! at `maxretry`, the attacker's packets are dropped while another source passes, the ban
//! ends after `bantime`; the CLI drives the running daemon; bans survive `kill -9` and a
//! restart. Each test has its own namespaces, temp configuration and pins.

use std::{
    fmt::Write as _,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use banxdp_tests::{
    Topology,
    daemon::{Daemon, Setup},
    eventually, privileged,
};

const N: usize = 20;
const ATTACKER: &str = "198.51.100.66";
const BYSTANDER: &str = "198.51.100.67";

/// A jail of our own: one failregex, the log in the test's temp dir.
fn setup(bantime: &str) -> Setup {
    let setup = Setup::new("", "");
    std::fs::write(
        setup.path("jail.conf"),
        format!(
            "[web]\nenabled = true\nfilter = web\nport = 7000:7010\nprotocol = udp\n\
             logpath = {}\nmaxretry = 3\nfindtime = 600\nbantime = {bantime}\n\
             action = record\n",
            setup.path("app.log").display()
        ),
    )
    .unwrap();
    // A notification action (not a firewall action): it runs as a command beside XDP.
    std::fs::write(
        setup.path("action.d/record.conf"),
        format!(
            "[Definition]\nactionstart =\nactionstop =\nactioncheck =\n\
             actionban = printf '%%s\\n' \"ban <ip> <failures> <matches>\" >> {0}\n\
             actionunban = printf '%%s\\n' \"unban <ip>\" >> {0}\n",
            setup.path("actions.txt").display()
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

fn failures(source: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("{} login failed for user{i} from {source}", now_iso()))
        .collect()
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn failures_in_a_log_ban_at_maxretry_and_the_ban_ends_after_bantime() {
    if !privileged("failures_in_a_log_ban_at_maxretry_and_the_ban_ends_after_bantime") {
        return;
    }
    let topo = Topology::new(&[ATTACKER, BYSTANDER], &[]);
    let setup = setup("8");
    let config = setup.path("banxdp.toml");
    let mut daemon = Daemon::start(&topo.victim, &config, setup.path("daemon.log"));
    daemon.wait_for_log("enforcing 0 ban(s)");
    // Its one action only records: the daemon says it enforces the bans all the same.
    assert!(
        daemon
            .log()
            .contains("jail `web`: none of its actions (record) blocks traffic"),
        "{}",
        daemon.log()
    );
    assert_eq!(topo.udp_delivered(ATTACKER, 7000, N), N);

    // Two failures: under maxretry, nothing happens.
    setup.append("app.log", &failures(ATTACKER, 2));
    eventually("two failures counted", || {
        text(&setup.client(&["status", "web"])).contains("Total failed:\t2")
    });
    assert_eq!(topo.udp_delivered(ATTACKER, 7000, N), N);

    // The third: banned, and only the attacker. Its user name is shell code, which must
    // reach the action as text.
    let pwned = std::env::temp_dir().join(format!("bxpwned{}", std::process::id()));
    setup.append(
        "app.log",
        &[format!(
            "{} login failed for `touch${{IFS}}{}` from {ATTACKER}",
            now_iso(),
            pwned.display()
        )],
    );
    daemon.wait_for_log(&format!("[web] Ban {ATTACKER}"));
    // What holds while the ban does, first: it counts from the line's second, not the read.
    let status = text(&setup.client(&["status", "web"]));
    assert!(status.contains("Currently banned:\t1"), "{status}");
    assert!(status.contains(ATTACKER), "{status}");
    assert!(
        status.contains(&setup.path("app.log").display().to_string()),
        "{status}"
    );
    assert_eq!(topo.udp_delivered(ATTACKER, 7000, N), 0);
    assert_eq!(topo.udp_delivered(BYSTANDER, 7000, N), N);
    assert_eq!(
        topo.udp_delivered(ATTACKER, 7100, N),
        N,
        "the jail's ports only (7000:7010)"
    );

    // banxdp's own log says so in the form a recidive jail reads: banxdp's shipped filter
    // and fail2ban's stock one both find the attacker there.
    let recidive = std::process::Command::new(banxdp_tests::daemon::bin())
        .args(["regex", "--json"])
        .arg(&daemon.log)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/filter.d/recidive.conf"
        ))
        .output()
        .unwrap();
    assert!(
        text(&recidive).contains(&format!("\"host\":\"{ATTACKER}\"")),
        "{}",
        text(&recidive)
    );
    if std::path::Path::new("/etc/fail2ban/filter.d/recidive.conf").exists() {
        let stock = std::process::Command::new("fail2ban-regex")
            .arg(&daemon.log)
            .arg("/etc/fail2ban/filter.d/recidive.conf")
            .output()
            .unwrap();
        assert!(
            text(&stock).contains("Failregex: 1 total"),
            "{}",
            text(&stock)
        );
    }

    // bantime = 8 s: the ban ends, and packets pass again.
    daemon.wait_for_log(&format!("[web] Unban {ATTACKER}"));
    assert_eq!(topo.udp_delivered(ATTACKER, 7000, N), N);
    eventually("the action ran for the ban and the unban", || {
        std::fs::read_to_string(setup.path("actions.txt"))
            .is_ok_and(|t| t.contains(&format!("unban {ATTACKER}")))
    });
    let actions = std::fs::read_to_string(setup.path("actions.txt")).unwrap();
    assert!(actions.contains(&format!("ban {ATTACKER} 3 ")), "{actions}");
    assert!(
        actions.contains(&format!("`touch${{IFS}}{}`", pwned.display())),
        "the log's text reaches the action as it was written: {actions}"
    );
    assert!(!pwned.exists(), "a log line ran a command");
    assert!(daemon.stop(), "{}", daemon.log());
}

/// `shadow = true`: the jail bans as ever (its log line, its actions, `list`), but the XDP
/// program only counts what the ban would drop, and lets it through.
#[test]
fn a_shadow_jail_bans_and_counts_but_lets_the_packets_through() {
    if !privileged("a_shadow_jail_bans_and_counts_but_lets_the_packets_through") {
        return;
    }
    let topo = Topology::new(&[ATTACKER, BYSTANDER], &[]);
    let setup = setup("600");
    let jail = setup.path("jail.conf");
    let conf = std::fs::read_to_string(&jail).unwrap();
    std::fs::write(&jail, format!("{conf}shadow = true\n")).unwrap();
    let config = setup.path("banxdp.toml");
    let mut daemon = Daemon::start(&topo.victim, &config, setup.path("daemon.log"));
    daemon.wait_for_log("enforcing 0 ban(s)");
    setup.append("app.log", &failures(ATTACKER, 3));
    daemon.wait_for_log(&format!("[web] Ban {ATTACKER}"));
    assert!(
        !daemon.log().contains("none of its actions"),
        "{}",
        daemon.log()
    );
    let actions = setup.path("actions.txt");
    eventually("the jail's action ran", || {
        std::fs::read_to_string(&actions).is_ok_and(|t| t.contains(&format!("ban {ATTACKER}")))
    });
    assert_eq!(
        topo.udp_delivered(ATTACKER, 7000, N),
        N,
        "shadow: nothing dropped"
    );
    let list = text(&setup.client(&["list"]));
    assert!(list.contains(&format!("0 (+{N} shadow)")), "{list}");
    let dump = std::process::Command::new(banxdp_tests::daemon::bin())
        .args(["dump", "--config-dir"])
        .arg(setup.path(""))
        .output()
        .unwrap();
    assert!(
        text(&dump).contains("in shadow mode (counted, not dropped)"),
        "{}",
        text(&dump)
    );
    assert!(daemon.stop());
}

#[test]
fn bans_survive_kill_9_and_a_restart_and_the_cli_lifts_them() {
    if !privileged("bans_survive_kill_9_and_a_restart_and_the_cli_lifts_them") {
        return;
    }
    let topo = Topology::new(&[ATTACKER, BYSTANDER], &[]);
    let setup = setup("1h");
    let config = setup.path("banxdp.toml");
    let mut daemon = Daemon::start(&topo.victim, &config, setup.path("daemon.log"));
    daemon.wait_for_log("enforcing 0 ban(s)");
    setup.append("app.log", &failures(ATTACKER, 3));
    daemon.wait_for_log(&format!("[web] Ban {ATTACKER}"));

    // A manual ban, acknowledged by the CLI: from then on it must survive anything.
    let out = setup.client(&["ban", BYSTANDER, "--jail", "web", "--for", "1h"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(topo.udp_delivered(BYSTANDER, 7001, N), 0);

    daemon.kill_9();
    assert_eq!(
        topo.udp_delivered(ATTACKER, 7001, N),
        0,
        "pinned maps keep dropping"
    );

    // The next start restores both from the store, reads no old line again, and the
    // CLI lists them and lifts them.
    let mut daemon = Daemon::start(&topo.victim, &config, setup.path("daemon2.log"));
    daemon.wait_for_log("enforcing 2 ban(s)");
    let list = text(&setup.client(&["list", "--json"]));
    assert!(
        list.contains(ATTACKER) && list.contains(BYSTANDER),
        "{list}"
    );
    let status = text(&setup.client(&["status", "web"]));
    assert!(
        status.contains("Total failed:\t0"),
        "old lines are not read again: {status}"
    );
    let out = setup.client(&["unban", "--all"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(topo.udp_delivered(ATTACKER, 7001, N), N);
    assert_eq!(topo.udp_delivered(BYSTANDER, 7001, N), N);
    assert!(daemon.stop(), "{}", daemon.log());
}

/// fail2ban's operation mode: a line dated far from the present that was written while the
/// log was followed happened now (its log's time zone or clock is wrong), where the same
/// line found on the way to the log's end at start is old, and does not count.
#[test]
fn a_new_line_with_an_odd_date_counts_now_and_an_old_one_at_start_does_not() {
    if !privileged("a_new_line_with_an_odd_date_counts_now_and_an_old_one_at_start_does_not") {
        return;
    }
    let topo = Topology::new(&[ATTACKER, BYSTANDER], &[]);
    let setup = setup("600");
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let two_hours_ago = banxdp::filter::report::iso8601(i64::try_from(secs).unwrap() - 7200);
    let odd = |source: &str| -> Vec<String> {
        (0..3)
            .map(|i| format!("{two_hours_ago} login failed for user{i} from {source}"))
            .collect()
    };
    setup.append("app.log", &odd(BYSTANDER));
    let config = setup.path("banxdp.toml");
    let mut daemon = Daemon::start(&topo.victim, &config, setup.path("daemon.log"));
    // Lines appended before the follower reaches the end are still the backlog.
    daemon.wait_for_log("caught up: lines written from here on are new");
    setup.append("app.log", &odd(ATTACKER));
    daemon.wait_for_log(&format!("[web] Ban {ATTACKER}"));
    let log = daemon.log();
    assert!(
        log.contains("taken as happening now"),
        "the odd date is reported: {log}"
    );
    assert!(
        !log.contains('\x1b'),
        "a log that is not a terminal gets no colour codes: {log}"
    );
    let listed = text(&setup.client(&["list"]));
    assert!(listed.contains(ATTACKER), "{listed}");
    assert!(
        !listed.contains(BYSTANDER),
        "old lines read at start do not count: {listed}"
    );
    assert_eq!(topo.udp_delivered(ATTACKER, 7000, N), 0);
    assert_eq!(topo.udp_delivered(BYSTANDER, 7000, N), N);
}

/// `ignorecommand` runs off the event loop: while it takes its time over one decided ban,
/// the daemon answers its socket; its exit status 0 spares the address, 1 lets the ban be.
#[test]
fn ignorecommand_decides_without_stalling_the_daemon() {
    if !privileged("ignorecommand_decides_without_stalling_the_daemon") {
        return;
    }
    let topo = Topology::new(&[ATTACKER, BYSTANDER], &[]);
    let setup = setup("600");
    let check = setup.path("check.sh");
    std::fs::write(
        &check,
        format!(
            "#!/bin/sh\necho \"$1\" >> {}\nsleep 6\n[ \"$1\" = {BYSTANDER} ]\n",
            setup.path("asked.txt").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &check,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .unwrap();
    let jail = std::fs::read_to_string(setup.path("jail.conf")).unwrap();
    std::fs::write(
        setup.path("jail.conf"),
        format!("{jail}ignorecommand = {} <ip>\n", check.display()),
    )
    .unwrap();
    let config = setup.path("banxdp.toml");
    let mut daemon = Daemon::start(&topo.victim, &config, setup.path("daemon.log"));
    daemon.wait_for_log("enforcing 0 ban(s)");
    setup.append("app.log", &failures(BYSTANDER, 3));
    setup.append("app.log", &failures(ATTACKER, 3));
    eventually("the command asked for both", || {
        std::fs::read_to_string(setup.path("asked.txt"))
            .is_ok_and(|asked| asked.contains(ATTACKER) && asked.contains(BYSTANDER))
    });
    // Both commands are sleeping now (6 s): the daemon still answers well before they end
    // (3 s includes starting the client on a loaded machine).
    let asked = Instant::now();
    let pong = setup.client(&["ping"]);
    assert!(pong.status.success(), "{}", text(&pong));
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "ping took {:?} while ignorecommand ran",
        asked.elapsed()
    );
    daemon.wait_for_log(&format!("[web] Ban {ATTACKER}"));
    daemon.wait_for_log(&format!("[web] Ignore {BYSTANDER} by command"));
    assert_eq!(topo.udp_delivered(ATTACKER, 7000, N), 0);
    assert_eq!(topo.udp_delivered(BYSTANDER, 7000, N), N);
    let listed = text(&setup.client(&["list"]));
    assert!(!listed.contains(BYSTANDER), "{listed}");
}

/// A reload replaces a jail's notification actions whose definition changed (the old set's
/// `actionstop` runs, then the new set's `actionstart`, and new bans go to it), and leaves
/// running a set configured as before.
#[test]
fn a_reload_replaces_changed_actions_and_keeps_the_others() {
    if !privileged("a_reload_replaces_changed_actions_and_keeps_the_others") {
        return;
    }
    let topo = Topology::new(&[ATTACKER, BYSTANDER], &[]);
    let setup = setup("600");
    let record = |file: &str| {
        format!(
            "[Definition]\nactionstart = echo start >> {0}\nactionstop = echo stop >> {0}\n\
             actioncheck =\nactionban = echo \"ban <ip>\" >> {0}\nactionunban =\n",
            setup.path(file).display()
        )
    };
    std::fs::write(setup.path("action.d/record.conf"), record("first.txt")).unwrap();
    let read = |file: &str| std::fs::read_to_string(setup.path(file)).unwrap_or_default();
    let config = setup.path("banxdp.toml");
    let mut daemon = Daemon::start(&topo.victim, &config, setup.path("daemon.log"));
    daemon.wait_for_log("enforcing 0 ban(s)");
    eventually("the first set started", || read("first.txt") == "start\n");

    std::fs::write(setup.path("action.d/record.conf"), record("second.txt")).unwrap();
    let reloaded = setup.client(&["reload"]);
    assert!(reloaded.status.success(), "{}", text(&reloaded));
    eventually("the old set stopped and the new one started", || {
        read("first.txt") == "start\nstop\n" && read("second.txt") == "start\n"
    });
    setup.append("app.log", &failures(ATTACKER, 3));
    eventually("the new set bans", || {
        read("second.txt") == format!("start\nban {ATTACKER}\n")
    });

    let again = setup.client(&["reload"]);
    assert!(again.status.success(), "{}", text(&again));
    setup.append("app.log", &failures(BYSTANDER, 3));
    eventually("the kept set bans", || {
        read("second.txt") == format!("start\nban {ATTACKER}\nban {BYSTANDER}\n")
    });
    assert_eq!(read("first.txt"), "start\nstop\n");
    assert!(daemon.stop(), "{}", daemon.log());
    assert_eq!(
        read("second.txt"),
        format!("start\nban {ATTACKER}\nban {BYSTANDER}\nstop\n")
    );
}

#[test]
fn without_a_daemon_a_client_command_says_so_and_exits_1() {
    let setup = Setup::new("", "");
    let out = setup.client(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains("no daemon"), "{said}");
}

/// A journal file written by Debian's `systemd-journal-remote` from export text: sshd's
/// `Failed password` entries for `source`, stamped now.
fn journal_with_failures(dir: &std::path::Path, source: &str, count: usize) -> std::path::PathBuf {
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let mut text = String::new();
    for i in 0..count {
        let _ = write!(
            text,
            "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n\
             _HOSTNAME=web1\nSYSLOG_IDENTIFIER=sshd\n_PID=4242\n_SYSTEMD_UNIT=ssh.service\n\
             MESSAGE=Failed password for root from {source} port {} ssh2\n\n",
            now_us + i as u128,
            5_000_000 + i,
            40_000 + i
        );
    }
    let input = dir.join("in.export");
    std::fs::write(&input, text).unwrap();
    let output = dir.join("remote.journal");
    let status = std::process::Command::new("/lib/systemd/systemd-journal-remote")
        .arg(format!("--output={}", output.display()))
        .arg(&input)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "systemd-journal-remote: {status}");
    output
}

/// Whether Debian's `systemd-journal-remote` is there to write journal files (CI installs it);
/// says so when it is not.
fn journal_remote_present() -> bool {
    if std::path::Path::new("/lib/systemd/systemd-journal-remote").exists() {
        return true;
    }
    assert!(
        std::env::var_os("BANXDP_REQUIRE_PRIVILEGED").is_none(),
        "CI installs systemd-journal-remote"
    );
    eprintln!("skipped: no systemd-journal-remote (apt-get install systemd-journal-remote)");
    false
}

#[test]
fn a_journal_jail_bans_from_the_systemd_journal() {
    if !privileged("a_journal_jail_bans_from_the_systemd_journal") {
        return;
    }
    if !journal_remote_present() {
        return;
    }
    let topo = Topology::new(&[ATTACKER, BYSTANDER], &[]);
    let setup = Setup::new("", "");
    let journal = journal_with_failures(setup.dir.path(), ATTACKER, 3);
    std::fs::write(
        setup.path("jail.conf"),
        format!(
            "[sshd]\nenabled = true\nfilter = sshd[mode=normal]\n\
             backend = systemd[journalfiles={}]\njournalmatch = _SYSTEMD_UNIT=ssh.service\n\
             maxretry = 3\nfindtime = 600\nbantime = 600\nport = 7000\nprotocol = udp\n",
            journal.display()
        ),
    )
    .unwrap();
    setup.filter("sshd", include_str!("../../config/filter.d/sshd.conf"));
    let mut daemon = Daemon::start(
        &topo.victim,
        &setup.path("banxdp.toml"),
        setup.path("daemon.log"),
    );
    daemon.wait_for_log("jail `sshd`: reading the journal");
    daemon.wait_for_log(&format!("[sshd] Ban {ATTACKER}"));
    assert_eq!(topo.udp_delivered(ATTACKER, 7000, N), 0);
    assert_eq!(topo.udp_delivered(BYSTANDER, 7000, N), N);
    assert!(daemon.stop(), "{}", daemon.log());
}

/// A reload starts the journal reader of a jail it adds, and keeps the reader of a journal
/// jail it leaves as it was: no entry is read twice (two failures stay two, under maxretry 3).
#[test]
fn a_reload_starts_a_new_journal_jail_and_reads_no_entry_twice() {
    if !privileged("a_reload_starts_a_new_journal_jail_and_reads_no_entry_twice") {
        return;
    }
    if !journal_remote_present() {
        return;
    }
    let topo = Topology::new(&[ATTACKER, BYSTANDER], &[]);
    let setup = Setup::new("", "");
    let early = journal_with_failures(setup.dir.path(), BYSTANDER, 2);
    let later_dir = setup.path("later");
    std::fs::create_dir(&later_dir).unwrap();
    let later = journal_with_failures(&later_dir, ATTACKER, 3);
    let jail = |name: &str, journal: &std::path::Path| {
        format!(
            "[{name}]\nenabled = true\nfilter = sshd[mode=normal]\n\
             backend = systemd[journalfiles={}]\njournalmatch = _SYSTEMD_UNIT=ssh.service\n\
             maxretry = 3\nfindtime = 600\nbantime = 600\nport = 7000\nprotocol = udp\n",
            journal.display()
        )
    };
    std::fs::write(setup.path("jail.conf"), jail("early", &early)).unwrap();
    setup.filter("sshd", include_str!("../../config/filter.d/sshd.conf"));
    let mut daemon = Daemon::start(
        &topo.victim,
        &setup.path("banxdp.toml"),
        setup.path("daemon.log"),
    );
    daemon.wait_for_log("jail `early`: reading the journal");
    eventually("two failures counted", || {
        text(&setup.client(&["status", "early"])).contains("Total failed:\t2")
    });
    std::fs::write(
        setup.path("jail.conf"),
        format!("{}{}", jail("early", &early), jail("late", &later)),
    )
    .unwrap();
    let reloaded = setup.client(&["reload"]);
    assert!(reloaded.status.success(), "{}", text(&reloaded));
    daemon.wait_for_log("jail `late`: reading the journal");
    daemon.wait_for_log(&format!("[late] Ban {ATTACKER}"));
    let status = text(&setup.client(&["status", "early"]));
    assert!(status.contains("Total failed:\t2"), "read twice: {status}");
    assert_eq!(
        daemon
            .log()
            .matches("jail `early`: reading the journal")
            .count(),
        1,
        "the unchanged reader was kept: {}",
        daemon.log()
    );
    assert_eq!(topo.udp_delivered(ATTACKER, 7000, N), 0);
    assert_eq!(topo.udp_delivered(BYSTANDER, 7000, N), N);
}

#[test]
fn where_bpf_fails_the_daemon_bans_through_nftables_and_says_why() {
    if !privileged("where_bpf_fails_the_daemon_bans_through_nftables_and_says_why") {
        return;
    }
    let topo = Topology::new(&[ATTACKER, BYSTANDER], &[]);
    let setup = setup("600");
    // The daemon starts from a thread on which bpf() answers ENOSYS, as on a kernel
    // without BPF; it inherits the filter.
    let mut daemon = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                banxdp_tests::seccomp::deny_bpf_on_this_thread();
                Daemon::start(
                    &topo.victim,
                    &setup.path("banxdp.toml"),
                    setup.path("daemon.log"),
                )
            })
            .join()
            .unwrap()
    });
    daemon.wait_for_log("enforcing through nftables instead");
    daemon.wait_for_log("enforcing 0 ban(s)");
    setup.append("app.log", &failures(ATTACKER, 3));
    daemon.wait_for_log(&format!("[web] Ban {ATTACKER}"));
    assert_eq!(topo.udp_delivered(ATTACKER, 7000, N), 0);
    assert_eq!(topo.udp_delivered(BYSTANDER, 7000, N), N);
    let status = text(&setup.client(&["status"]));
    assert!(status.contains("nftables"), "{status}");
    assert!(status.contains("not XDP"), "{status}");
    assert!(daemon.stop(), "{}", daemon.log());
}

#[test]
fn the_operator_drives_the_daemon_and_a_broken_jail_stays_apart() {
    if !privileged("the_operator_drives_the_daemon_and_a_broken_jail_stays_apart") {
        return;
    }
    let topo = Topology::new(&[ATTACKER, BYSTANDER], &[]);
    let setup = setup("1h");
    // A second jail whose filter does not compile: reported, disabled; `web` runs. Each
    // has an action whose `actionstart` leaves a mark: the broken jail's never runs.
    let mut jails = std::fs::read_to_string(setup.path("jail.conf"))
        .unwrap()
        .replace(
            "action = record\n",
            "action = record\n         mark[as=web]\n",
        );
    let _ = write!(
        jails,
        "\n[broken]\nenabled = true\nfilter = broken\nlogpath = {}\naction = mark[as=broken]\n",
        setup.path("app.log").display()
    );
    std::fs::write(setup.path("jail.conf"), &jails).unwrap();
    setup.filter("broken", "[Definition]\nfailregex = ^(unclosed <HOST>$\n");
    std::fs::write(
        setup.path("action.d/mark.conf"),
        format!(
            "[Definition]\nactionstart = touch {}/started-<as>\nactionban =\nactionunban =\n",
            setup.path("").display()
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(
        &topo.victim,
        &setup.path("banxdp.toml"),
        setup.path("daemon.log"),
    );
    daemon.wait_for_log("enforcing 0 ban(s)");
    assert!(daemon.log().contains("jail `broken`"), "{}", daemon.log());
    eventually("the running jail's actionstart ran", || {
        setup.path("started-web").exists()
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !setup.path("started-broken").exists(),
        "a disabled jail started its actions"
    );
    let ping = setup.client(&["ping"]);
    assert!(ping.status.success(), "{}", text(&ping));

    // Two failures, then the log is rotated (renamed, a new one created), then one more:
    // the count goes on across the rotation.
    setup.append("app.log", &failures(ATTACKER, 2));
    eventually("two failures counted", || {
        text(&setup.client(&["status", "web"])).contains("Total failed:\t2")
    });
    std::fs::rename(setup.path("app.log"), setup.path("app.log.1")).unwrap();
    setup.append("app.log", &failures(ATTACKER, 1));
    daemon.wait_for_log(&format!("[web] Ban {ATTACKER}"));
    assert_eq!(topo.udp_delivered(ATTACKER, 7000, N), 0);

    // stats: the XDP program's counters, with the drops just made.
    let counters = text(&setup.client(&["stats", "--json"]));
    assert!(counters.contains("eth0"), "{counters}");

    // reload keeps the active ban, and picks up a new jail.
    let _ = write!(
        jails,
        "\n[web2]\nenabled = true\nfilter = web\nlogpath = {}\n",
        setup.path("other.log").display()
    );
    std::fs::write(setup.path("jail.conf"), &jails).unwrap();
    let reload = setup.client(&["reload"]);
    assert!(reload.status.success(), "{}", text(&reload));
    let status = text(&setup.client(&["status"]));
    assert!(status.contains("web2"), "{status}");
    assert_eq!(
        topo.udp_delivered(ATTACKER, 7000, N),
        0,
        "reload keeps bans"
    );

    // stop --detach: the daemon exits, the program and every pin are gone.
    let stop = setup.client(&["stop", "--detach"]);
    assert!(stop.status.success(), "{}", text(&stop));
    assert!(daemon.child.wait().unwrap().success(), "{}", daemon.log());
    assert!(!setup.pins.0.exists(), "pins removed");
    assert_eq!(topo.udp_delivered(ATTACKER, 7000, N), N);
}
