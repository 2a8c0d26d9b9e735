//! banxdp's own log file across a rotation (needs root; CI installs logrotate): with
//! `daemon.logtarget` naming a file, Debian's logrotate, with the shipped
//! `config/banxdp.logrotate`, renames it and creates a new one (no `postrotate` command),
//! and the daemon's next lines, a ban's among them, go to the new file, where a `recidive`
//! jail reads them.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use banxdp_tests::{
    Topology,
    daemon::{Daemon, Setup},
    eventually, privileged,
};

const ATTACKER: &str = "198.51.100.66";

fn now_iso() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    banxdp::filter::report::iso8601(i64::try_from(secs).unwrap())
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A jail `web` (2 failures ban 7000/udp) and banxdp.toml's `daemon.logtarget` set to
/// `banxdp.log` in the test's directory: the setup and that log's path.
fn setup_logging_to_a_file() -> (Setup, PathBuf) {
    let setup = Setup::new("", "");
    std::fs::write(
        setup.path("jail.conf"),
        format!(
            "[web]\nenabled = true\nfilter = web\nport = 7000\nprotocol = udp\n\
             logpath = {}\nmaxretry = 2\nfindtime = 600\nbantime = 600\n",
            setup.path("app.log").display()
        ),
    )
    .unwrap();
    setup.filter(
        "web",
        "[Definition]\nfailregex = ^ login failed from <HOST>$\n",
    );
    let log = setup.path("banxdp.log");
    let toml = std::fs::read_to_string(setup.path("banxdp.toml")).unwrap();
    std::fs::write(
        setup.path("banxdp.toml"),
        toml.replacen(
            "[daemon]\n",
            &format!("[daemon]\nlogtarget = \"{}\"\n", log.display()),
            1,
        ),
    )
    .unwrap();
    setup.append("app.log", &[format!("{} service started", now_iso())]);
    (setup, log)
}

#[test]
fn the_daemon_writes_to_the_new_file_after_logrotate() {
    if !privileged("the_daemon_writes_to_the_new_file_after_logrotate") {
        return;
    }
    let topo = Topology::new(&[ATTACKER], &[]);
    let (setup, log) = setup_logging_to_a_file();

    let mut daemon = Daemon::start(
        &topo.victim,
        &setup.path("banxdp.toml"),
        setup.path("stderr.log"),
    );
    // The daemon's start, in its log file (its standard error has what came before).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !read(&log).contains("enforcing 0 ban(s)") {
        let exited = daemon.child.try_wait().unwrap();
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "banxdp run did not start ({exited:?}): {}{}",
            read(&setup.path("stderr.log")),
            read(&log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The shipped /etc/logrotate.d/banxdp, on this log: rename, then create the file again.
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/banxdp.logrotate"
    ))
    .unwrap();
    assert!(
        shipped.contains("/var/log/banxdp/banxdp.log {"),
        "{shipped}"
    );
    std::fs::write(
        setup.path("logrotate.conf"),
        shipped.replace("/var/log/banxdp/banxdp.log", &log.display().to_string()),
    )
    .unwrap();
    let rotated = std::process::Command::new("logrotate")
        .arg("--force")
        .arg("--state")
        .arg(setup.path("logrotate.state"))
        .arg(setup.path("logrotate.conf"))
        .output()
        .expect("logrotate is installed (apt install logrotate)");
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let old = setup.path("banxdp.log.1");
    assert!(read(&old).contains("enforcing 0 ban(s)"), "{}", read(&old));
    assert!(
        !read(&log).contains("enforcing"),
        "a new file: {}",
        read(&log)
    );

    let line = format!("{} login failed from {ATTACKER}", now_iso());
    setup.append("app.log", &[line.clone(), line]);
    eventually("the ban is written to the new file", || {
        read(&log).contains(&format!("NOTICE  [web] Ban {ATTACKER}"))
    });
    assert!(!read(&old).contains("Ban "), "{}", read(&old));
    assert_eq!(topo.udp_delivered(ATTACKER, 7000, 5), 0);
}
