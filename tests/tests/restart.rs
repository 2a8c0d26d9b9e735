//! Enforcement across processes (needs root): bans pinned by one process keep dropping after
//! it exits, a second process (the real `banxdp run`) takes the pinned maps and links over
//! without a gap, a `kill -9` of it loses nothing, and a later start finds everything again.

use std::{
    path::Path,
    process::Command,
    time::{Duration, SystemTime},
};

use banxdp::enforce::{
    Enforcer as _, Expiry, parse_target,
    xdp::{XdpEnforcer, XdpPlan},
};
use banxdp_tests::{
    Topology, all_ports, ban_for, ban_until,
    daemon::{Daemon, Pins},
    netns::IFACE,
    privileged, udp_port, with_netns,
};

const N: usize = 30;

fn plan(pin_dir: &Path) -> XdpPlan {
    XdpPlan {
        interfaces: vec![IFACE.into()],
        pin_dir: Some(pin_dir.to_path_buf()),
        ..XdpPlan::default()
    }
}

#[test]
fn pinned_bans_survive_restarts_and_kill_9() {
    if !privileged("pinned_bans_survive_restarts_and_kill_9") {
        return;
    }
    let topo = Topology::new(&["198.51.100.66", "198.51.100.67"], &[]);
    let pins = Pins::unique();
    let work = tempfile::tempdir().unwrap();

    // First process: ban, then go away without detaching.
    let mut first = with_netns(&topo.victim, || XdpEnforcer::load(&plan(&pins.0))).unwrap();
    assert!(!first.adopted_maps());
    first.add_jail(&all_ports("sshd")).unwrap();
    first.ban(&ban_for("sshd", "198.51.100.66", 600)).unwrap();
    assert_eq!(topo.udp_delivered("198.51.100.66", 6000, N), 0);
    drop(first);
    assert_eq!(
        topo.udp_delivered("198.51.100.66", 6000, N),
        0,
        "pinned enforcement outlives its process"
    );

    // Second process: the real daemon takes the pinned state over.
    let config = work.path().join("banxdp.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nconfig_dir = \"{0}\"\nsocket = \"{0}/banxdp.sock\"\ndatabase = \"{0}/banxdp.sqlite3\"\n[xdp]\ninterfaces = [\"{IFACE}\"]\npin_dir = \"{1}\"\n",
            work.path().display(),
            pins.0.display()
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&topo.victim, &config, work.path().join("run.log"));
    daemon.wait_for_log("1 taken over from pinned maps");
    let log = daemon.log();
    assert!(
        log.contains(&format!("took over `{IFACE}` in native mode")),
        "{log}"
    );
    assert_eq!(topo.udp_delivered("198.51.100.66", 6000, N), 0);
    assert_eq!(topo.udp_delivered("198.51.100.67", 6000, N), N);

    // kill -9: nothing is lost.
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    assert_eq!(topo.udp_delivered("198.51.100.66", 6000, N), 0);

    // A third start finds the ban with its jail and every drop counted so far.
    let mut third = with_netns(&topo.victim, || XdpEnforcer::load(&plan(&pins.0))).unwrap();
    assert!(third.adopted_maps());
    assert!(third.attachments()[0].adopted);
    let active = third.active().unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].jails, ["sshd"]);
    assert_eq!(active[0].drops, Some(4 * N as u64));
    third
        .unban("sshd", parse_target("198.51.100.66").unwrap())
        .unwrap();
    assert_eq!(topo.udp_delivered("198.51.100.66", 6000, N), N);

    // Detaching removes the program and every pin.
    third
        .ban(&ban_until("sshd", "198.51.100.66", Expiry::Never))
        .unwrap();
    assert_eq!(topo.udp_delivered("198.51.100.66", 6000, N), 0);
    third.detach().unwrap();
    assert!(!pins.0.exists());
    assert_eq!(topo.udp_delivered("198.51.100.66", 6000, N), N);
}

#[test]
fn a_clean_stop_with_detach_on_exit_removes_enforcement() {
    if !privileged("a_clean_stop_with_detach_on_exit_removes_enforcement") {
        return;
    }
    let topo = Topology::new(&["198.51.100.66"], &[]);
    let pins = Pins::unique();
    let work = tempfile::tempdir().unwrap();
    let mut first = with_netns(&topo.victim, || XdpEnforcer::load(&plan(&pins.0))).unwrap();
    first.add_jail(&all_ports("sshd")).unwrap();
    first
        .ban(&ban_until("sshd", "198.51.100.66", Expiry::Never))
        .unwrap();
    drop(first);

    let config = work.path().join("banxdp.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nconfig_dir = \"{0}\"\nsocket = \"{0}/banxdp.sock\"\ndatabase = \"{0}/banxdp.sqlite3\"\n[xdp]\ninterfaces = [\"{IFACE}\"]\npin_dir = \"{1}\"\ndetach_on_exit = true\n",
            work.path().display(),
            pins.0.display()
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&topo.victim, &config, work.path().join("run.log"));
    daemon.wait_for_log("taken over from pinned maps");
    assert_eq!(topo.udp_delivered("198.51.100.66", 6001, N), 0);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(i32::try_from(daemon.child.id()).unwrap(), libc::SIGTERM) };
    let status = daemon.child.wait().unwrap();
    assert!(status.success(), "{status}: {}", daemon.log());
    assert!(daemon.log().contains("detaching and removing pins"));
    assert!(!pins.0.exists());
    assert_eq!(topo.udp_delivered("198.51.100.66", 6001, N), N);
}

#[test]
fn bad_settings_exit_2_naming_file_and_line() {
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("banxdp.toml");
    std::fs::write(&config, "[xdp]\nmode = \"turbo\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_banxdp-bin"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:2:", config.display())),
        "{stderr}"
    );
    assert!(stderr.contains("turbo"), "{stderr}");
}

#[test]
fn a_capacity_change_copies_pinned_bans_into_the_new_maps() {
    if !privileged("a_capacity_change_copies_pinned_bans_into_the_new_maps") {
        return;
    }
    let topo = Topology::new(&["198.51.100.66", "198.51.100.67", "203.0.113.9"], &[]);
    let pins = Pins::unique();
    let small = XdpPlan {
        capacities: banxdp::enforce::xdp::Capacities {
            bans_v4: 100,
            cidr_v4: 16,
            ..banxdp::enforce::xdp::Capacities::default()
        },
        ..plan(&pins.0)
    };
    let mut first = with_netns(&topo.victim, || XdpEnforcer::load(&small)).unwrap();
    first.add_jail(&all_ports("sshd")).unwrap();
    let until = Expiry::At(SystemTime::now() + Duration::from_secs(600));
    first
        .ban_many(&[
            ban_until("sshd", "198.51.100.66", until),
            ban_until("sshd", "203.0.113.0/24", until),
        ])
        .unwrap();
    drop(first);

    // The next start asks for larger maps: the entries move into them and keep dropping.
    let large = XdpPlan {
        capacities: banxdp::enforce::xdp::Capacities {
            bans_v4: 1000,
            cidr_v4: 64,
            ..banxdp::enforce::xdp::Capacities::default()
        },
        ..plan(&pins.0)
    };
    let second = with_netns(&topo.victim, || XdpEnforcer::load(&large)).unwrap();
    let info = aya::maps::MapInfo::from_pin(pins.0.join(banxdp_common::MAP_BANS_V4)).unwrap();
    assert_eq!(info.max_entries(), 1000);
    let mut targets: Vec<String> = second
        .active()
        .unwrap()
        .iter()
        .map(|b| b.target.to_string())
        .collect();
    targets.sort();
    assert_eq!(targets, ["198.51.100.66/32", "203.0.113.0/24"]);
    assert_eq!(topo.udp_delivered("198.51.100.66", 6002, N), 0);
    assert_eq!(topo.udp_delivered("203.0.113.9", 6002, N), 0);
    assert_eq!(topo.udp_delivered("198.51.100.67", 6002, N), N);
    second.detach().unwrap();
}

#[test]
fn run_reports_every_jail_problem_and_exits_2_when_none_can_run() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("jail.conf"),
        "[a]\nenabled = true\nfilter = nosuch\n[b]\nenabled = true\nfilter = alsomissing\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_banxdp-bin"))
        .args(["run", "--config-dir"])
        .arg(work.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("jail `a`: no filter `nosuch`"), "{stderr}");
    assert!(
        stderr.contains("jail `b`: no filter `alsomissing`"),
        "{stderr}"
    );
    assert!(stderr.contains("no jail can run"), "{stderr}");
}

/// While a new process restores its state (between `load_staged` and `take_over`), the
/// earlier process's program keeps serving the link, and it reads the settings its successor
/// writes (the pinned `SETTINGS_NOW` global): a jail whose scope changes from one port to
/// every port keeps its bans dropping on every port through the whole restore.
#[test]
fn the_program_being_replaced_reads_its_successors_settings() {
    if !privileged("the_program_being_replaced_reads_its_successors_settings") {
        return;
    }
    let topo = Topology::new(&["198.51.100.66"], &[]);
    let pins = Pins::unique();
    let mut first = with_netns(&topo.victim, || XdpEnforcer::load(&plan(&pins.0))).unwrap();
    first.add_jail(&udp_port("sshd", 6000)).unwrap();
    first.ban(&ban_for("sshd", "198.51.100.66", 600)).unwrap();
    assert_eq!(topo.udp_delivered("198.51.100.66", 6000, N), 0);
    assert_eq!(topo.udp_delivered("198.51.100.66", 7000, N), N);

    let mut second = with_netns(&topo.victim, || XdpEnforcer::load_staged(&plan(&pins.0))).unwrap();
    assert!(second.adopted_maps());
    second.add_jail(&all_ports("sshd")).unwrap();
    assert_eq!(
        topo.udp_delivered("198.51.100.66", 7000, N),
        0,
        "the program still attached reads the jail's new scope"
    );
    assert_eq!(topo.udp_delivered("198.51.100.66", 6000, N), 0);

    second.take_over().unwrap();
    drop(first);
    assert_eq!(topo.udp_delivered("198.51.100.66", 7000, N), 0);
    second.detach().unwrap();
    assert_eq!(topo.udp_delivered("198.51.100.66", 7000, N), N);
}
