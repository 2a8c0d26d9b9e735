//! `banxdp run` under systemd's `Type=notify` (needs root): with `NOTIFY_SOCKET` set, as
//! systemd sets it, the daemon says `READY=1` only once its bans are enforced and its socket
//! answers, `RELOADING=1` then `READY=1` around a reload, and `STOPPING=1` when it stops.
//! The test plays systemd's part: a datagram socket of its own.

use std::{os::unix::net::UnixDatagram, time::Duration};

use banxdp_tests::{
    Topology,
    daemon::{Daemon, Setup, bin},
    privileged,
};

/// The next notification, as text.
fn next(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification within 20 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn the_daemon_tells_systemd_when_it_is_ready_reloading_and_stopping() {
    if !privileged("the_daemon_tells_systemd_when_it_is_ready_reloading_and_stopping") {
        return;
    }
    let topo = Topology::new(&[], &[]);
    let setup = Setup::new("", "");
    std::fs::write(
        setup.path("jail.conf"),
        format!(
            "[web]\nenabled = true\nfilter = web\nport = 7000\nlogpath = {}\n",
            setup.path("app.log").display()
        ),
    )
    .unwrap();
    setup.filter("web", "[Definition]\nfailregex = ^ failed from <HOST>$\n");
    let notify = setup.path("notify");
    let systemd = UnixDatagram::bind(&notify).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let config = setup.path("banxdp.toml").display().to_string();
    let mut daemon = Daemon::start_program_env(
        &bin(),
        &topo.victim,
        &["run", "--config", &config],
        setup.path("daemon.log"),
        &[("NOTIFY_SOCKET", notify.as_os_str())],
    );

    // Ready: every ban in the kernel, and the socket answers at once.
    assert_eq!(next(&systemd), "READY=1\nSTATUS=enforcing 0 ban(s)");
    assert!(
        daemon.log().contains("enforcing 0 ban(s)"),
        "{}",
        daemon.log()
    );
    let pong = setup.client(&["ping"]);
    assert!(pong.status.success(), "{pong:?}");

    // A reload: reloading, then ready again with the bans it holds.
    assert!(setup.client(&["ban", "192.0.2.7"]).status.success());
    assert!(setup.client(&["reload"]).status.success());
    let reloading = next(&systemd);
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert_eq!(next(&systemd), "READY=1\nSTATUS=enforcing 1 ban(s)");

    // SIGTERM, as `systemctl stop` sends it.
    assert!(daemon.stop(), "{}", daemon.log());
    assert_eq!(next(&systemd), "STOPPING=1");
}
