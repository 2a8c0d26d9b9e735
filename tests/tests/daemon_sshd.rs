//! The product's one job on a real service (needs root; CI installs openssh-server and
//! rsyslog): Debian's sshd runs in the victim's namespace and logs through rsyslogd to a
//! file; `banxdp run` follows that file with banxdp's own built-in sshd filter; the OpenSSH
//! client types wrong passwords from the attacker's namespace until banxdp bans it. Then the
//! attacker's next connection times out, while another address still logs in with the
//! right password. With `UsePAM yes` (Debian's default) and `UsePAM no`.

use std::{net::SocketAddr, time::Duration};

use banxdp_tests::{
    Topology,
    daemon::Setup,
    privileged,
    services::{LocalUser, SSH_PROGRAMS, SshOptions, SshServer, programs_present, ssh_password},
    with_netns,
};

const ATTACKER: &str = "198.51.100.66";
const OTHER: &str = "198.51.100.67";

/// Whether a TCP connection from `source` in the attacker's namespace reaches `server`
/// within two seconds.
fn connects(topo: &Topology, source: &str, server: SocketAddr) -> bool {
    with_netns(&topo.attacker, || {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .expect("socket");
        let from: SocketAddr = format!("{source}:0").parse().expect("address");
        socket.bind(&from.into()).expect("bind the source address");
        socket
            .connect_timeout(&server.into(), Duration::from_secs(2))
            .is_ok()
    })
}

fn ssh_bans_a_password_guesser(use_pam: bool) {
    let name = format!("ssh_bans_a_password_guesser (UsePAM {use_pam})");
    if !privileged(&name) || !programs_present(&name, SSH_PROGRAMS) {
        return;
    }
    let topo = Topology::new(&[ATTACKER, OTHER], &[]);
    let server = SshServer::start(
        &topo.victim,
        &SshOptions {
            use_pam,
            ..SshOptions::default()
        },
    );
    let user = LocalUser::create("the-right-password");
    let setup = Setup::new("", "");
    // banxdp's own sshd filter and jail.conf, as shipped; the jail on this sshd's log.
    setup.shipped_jail("sshd", server.log_path(), 3);
    let mut daemon = setup.start_daemon(&topo.victim);
    assert!(connects(&topo, ATTACKER, server.address()));

    // Wrong passwords, one connection each, until banned (maxretry 3: the third).
    for attempt in 1..=3 {
        let tried = ssh_password(
            &topo.attacker,
            ATTACKER,
            server.address(),
            &user.name,
            "wrong",
            1,
        );
        assert!(tried.denied, "attempt {attempt}: {}", tried.output);
        if attempt < 3 {
            assert!(
                !daemon.log().contains(&format!("Ban {ATTACKER}")),
                "banned after {attempt} attempt(s): one wrong password must count once\n{}\n{}",
                daemon.log(),
                server.log()
            );
        }
    }
    daemon.wait_for_log(&format!("[sshd] Ban {ATTACKER}"));
    assert!(
        !connects(&topo, ATTACKER, server.address()),
        "the banned client's next connection must time out"
    );
    // Another address still connects, and logs in with the right password.
    assert!(connects(&topo, OTHER, server.address()));
    let ok = ssh_password(
        &topo.attacker,
        OTHER,
        server.address(),
        &user.name,
        "the-right-password",
        1,
    );
    assert!(!ok.denied, "{}", ok.output);
    assert!(daemon.stop(), "{}", daemon.log());
}

#[test]
fn ssh_with_pam_bans_a_password_guesser() {
    ssh_bans_a_password_guesser(true);
}

#[test]
fn ssh_without_pam_bans_a_password_guesser() {
    ssh_bans_a_password_guesser(false);
}
