//! The product's job on a real mail server (needs root; CI installs dovecot-imapd and
//! rsyslog): Debian's Dovecot, with Debian's own configuration (passwords checked by PAM)
//! and plain-text logins allowed, runs in the victim's namespace and logs through a real
//! rsyslogd to a mail log; `banxdp run` follows it with banxdp's shipped `dovecot` filter
//! and jail. A client connects from the attacker's namespace and tries one wrong password
//! per connection, as a guessing script does, until banxdp bans it: its next connection to
//! IMAP times out, while another address still logs in with the right password.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::Child,
    time::{Duration, Instant},
};

use banxdp_tests::{
    Netns, Topology,
    clients::{Guessing, Reached, exchange},
    daemon::Setup,
    netns::VICTIM_V4,
    privileged,
    services::{LocalUser, Syslog, programs_present, stop},
    with_netns,
};

const ATTACKER: &str = "198.51.100.66";
const OTHER: &str = "198.51.100.67";
const PASSWORD: &str = "the-right-Passw0rd";
const PROGRAMS: &[&str] = &[
    "/usr/sbin/dovecot",
    "/usr/sbin/rsyslogd",
    "/usr/bin/unshare",
    "/usr/bin/nsenter",
];

/// Dovecot in `ns` (IMAP on 143), logging through `syslog`; stopped on drop (SIGTERM: its
/// master stops its login and auth processes).
struct Dovecot(Child);

impl Dovecot {
    fn start(ns: &Netns, syslog: &Syslog, dir: &Path) -> Self {
        let base = dir.join("dovecot");
        std::fs::create_dir_all(&base).unwrap();
        // Mail of its own, which the user's imap process may create after a right login.
        // (and which it reaches through `dir`, made traversable).
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
        let mail = dir.join("mail");
        std::fs::create_dir_all(&mail).unwrap();
        std::fs::set_permissions(&mail, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
            .unwrap();
        // State of its own, apart from a system Dovecot's /var/lib/dovecot.
        let state = dir.join("dovecot-state");
        std::fs::create_dir_all(&state).unwrap();
        let conf = dir.join("dovecot.conf");
        std::fs::write(
            &conf,
            format!(
                "!include /etc/dovecot/dovecot.conf\nbase_dir = {}\nlisten = {VICTIM_V4}\n\
                 ssl = no\ndisable_plaintext_auth = no\nprotocols = imap\n\
                 mail_location = maildir:{}/%u\nstate_dir = {}\n",
                base.display(),
                mail.display(),
                state.display()
            ),
        )
        .unwrap();
        let child = syslog.spawn(
            Some(ns),
            &["/usr/sbin/dovecot", "-F", "-c", &conf.display().to_string()],
        );
        let dovecot = Self(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while with_netns(ns, || TcpStream::connect((VICTIM_V4, 143)).is_err()) {
            assert!(Instant::now() < deadline, "dovecot did not listen on 143");
            std::thread::sleep(Duration::from_millis(100));
        }
        dovecot
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        stop(&mut self.0);
    }
}

/// One IMAP connection from `source`: greeting, `LOGIN user password`, `LOGOUT`; the
/// server's answer to the login (`OK`, `NO`).
fn login(topo: &Topology, source: &str, user: &str, password: &str) -> Reached<String> {
    let server: SocketAddr = format!("{VICTIM_V4}:143").parse().expect("address");
    exchange(
        &topo.attacker,
        source,
        server,
        Duration::from_secs(2),
        |stream| {
            // Dovecot answers a failed login after its auth_failure_delay (2 s), longer for an
            // address that failed before.
            stream.set_read_timeout(Some(Duration::from_secs(20)))?;
            let mut reader = BufReader::new(stream.try_clone()?);
            let mut writer = stream;
            let mut line = String::new();
            reader.read_line(&mut line)?;
            write!(writer, "a1 LOGIN {user} \"{password}\"\r\n")?;
            let answer = loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                if let Some(answer) = line.strip_prefix("a1 ") {
                    break answer.split(' ').next().unwrap_or_default().to_string();
                }
            };
            write!(writer, "a2 LOGOUT\r\n")?;
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {}
            Ok(answer)
        },
    )
}

#[test]
fn dovecot_password_guesser_is_banned() {
    const NAME: &str = "dovecot_password_guesser_is_banned";
    if !privileged(NAME) || !programs_present(NAME, PROGRAMS) {
        return;
    }
    let topo = Topology::new(&[ATTACKER, OTHER], &[]);
    let setup = Setup::new("", "");
    let mail_log = setup.path("mail.log");
    let syslog = Syslog::start(setup.dir.path(), &mail_log, "mail.*");
    let user = LocalUser::create(PASSWORD);
    let _dovecot = Dovecot::start(&topo.victim, &syslog, setup.dir.path());
    // banxdp's own filter and jail.conf, as shipped; the jail enabled on the mail log.
    setup.shipped_jail("dovecot", &mail_log, 3);
    let mut daemon = setup.start_daemon(&topo.victim);

    // Wrong passwords, one connection each, each counted once: the third bans.
    let guessing = Guessing {
        jail: "dovecot",
        maxretry: 3,
        attacker: ATTACKER,
        other: OTHER,
        right_password: PASSWORD,
        refused: "NO".to_string(),
        accepted: "OK".to_string(),
        log: &mail_log,
    };
    guessing.is_banned(&setup, &mut daemon, |source, password| {
        login(&topo, source, &user.name, password)
    });
}
