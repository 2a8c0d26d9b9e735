//! The product's job on a real mail relay (needs root; CI installs postfix, dovecot-imapd
//! and rsyslog): Debian's Postfix, its smtpd checking SMTP AUTH through Dovecot's auth
//! service (as Debian's documentation sets it up; passwords checked by PAM), runs in the
//! victim's namespace and logs through a real rsyslogd to a mail log; `banxdp run` follows
//! it with the shipped `postfix-sasl` jail (banxdp's `postfix[mode=auth]` filter). A client
//! connects from the attacker's namespace and tries one wrong `AUTH PLAIN` per connection
//! until banxdp bans it: its next connection to port 25 times out, while another address
//! still authenticates with the right password. (This test found the filter counting
//! "Connection lost to authentication server", which every client meets when Dovecot is
//! down or slow: fail2ban's stock filter leaves it out, and now banxdp's does too.)

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::Child,
    time::{Duration, Instant},
};

use banxdp_tests::{
    Netns, Topology,
    clients::{Guessing, Reached, base64, exchange},
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
    "/usr/sbin/postfix",
    "/usr/sbin/dovecot",
    "/usr/sbin/rsyslogd",
    "/usr/bin/unshare",
    "/usr/bin/nsenter",
];

/// Postfix in `ns` (smtpd on 25) with Dovecot as its SASL server, both logging through
/// `syslog`, their files under `dir`; both stopped on drop.
struct Relay<'a> {
    syslog: &'a Syslog,
    ns: &'a Netns,
    conf: PathBuf,
    queue: PathBuf,
    postfix: Child,
    dovecot: Child,
}

impl<'a> Relay<'a> {
    fn start(ns: &'a Netns, syslog: &'a Syslog, dir: &Path) -> Self {
        // Postfix's and Dovecot's unprivileged processes reach their files through `dir`.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
        let conf = dir.join("postfix-conf");
        let queue = dir.join("postfix-queue");
        for d in [
            &conf,
            &queue,
            &dir.join("postfix-data"),
            &dir.join("dovecot"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        // The package's own master.cf (/etc/postfix has one only once configured).
        std::fs::copy("/usr/share/postfix/master.cf.dist", conf.join("master.cf")).unwrap();
        std::fs::write(
            conf.join("main.cf"),
            format!(
                "compatibility_level = 3.6\nqueue_directory = {q}\ndata_directory = {d}\n\
                 inet_interfaces = {VICTIM_V4}\ninet_protocols = ipv4\n\
                 myhostname = mail.example.test\nmydestination =\n\
                 smtpd_tls_security_level = none\nalias_maps =\nalias_database =\n\
                 smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\n\
                 smtpd_sasl_path = private/auth\n\
                 smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination\n",
                q = queue.display(),
                d = dir.join("postfix-data").display()
            ),
        )
        .unwrap();
        let conf_arg = conf.display().to_string();
        // In the namespace: postfix checks that `inet_interfaces` exists before anything.
        let mut permissions = syslog.spawn(
            Some(ns),
            &[
                "postfix",
                "-c",
                &conf_arg,
                "set-permissions",
                "create-missing",
            ],
        );
        let _ = permissions.wait();
        // Dovecot only as Postfix's SASL server: no IMAP, no POP3.
        let dovecot_conf = dir.join("dovecot.conf");
        std::fs::write(
            &dovecot_conf,
            format!(
                "!include /etc/dovecot/dovecot.conf\nbase_dir = {}\nstate_dir = {0}\n\
                 protocols =\nservice auth {{\n  unix_listener {}/private/auth {{\n\
                 mode = 0660\n    user = postfix\n    group = postfix\n  }}\n}}\n",
                dir.join("dovecot").display(),
                queue.display()
            ),
        )
        .unwrap();
        let dovecot = syslog.spawn(
            Some(ns),
            &[
                "/usr/sbin/dovecot",
                "-F",
                "-c",
                &dovecot_conf.display().to_string(),
            ],
        );
        let postfix = syslog.spawn(Some(ns), &["postfix", "-c", &conf_arg, "start-fg"]);
        let relay = Self {
            syslog,
            ns,
            conf,
            queue,
            postfix,
            dovecot,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while with_netns(ns, || TcpStream::connect((VICTIM_V4, 25)).is_err()) {
            assert!(
                Instant::now() < deadline,
                "postfix did not listen on 25: {}",
                std::fs::read_to_string(syslog.log_path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        relay
    }
}

impl Drop for Relay<'_> {
    fn drop(&mut self) {
        // `postfix stop` checks its configuration first, `inet_interfaces` included: in the
        // namespace. Its master outlives the `start-fg` script: stopped by its pid too.
        let conf = self.conf.display().to_string();
        let mut stopping = self
            .syslog
            .spawn(Some(self.ns), &["postfix", "-c", &conf, "stop"]);
        let _ = stopping.wait();
        let master = std::fs::read_to_string(self.queue.join("pid/master.pid")).unwrap_or_default();
        if let Ok(pid) = master.trim().parse::<libc::pid_t>() {
            // SAFETY: kill has no memory preconditions; a stale pid finds no process.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        stop(&mut self.postfix);
        stop(&mut self.dovecot);
    }
}

/// One SMTP session from `source`: banner, `EHLO`, `AUTH PLAIN` as `user`, `QUIT`; the
/// reply code to the AUTH (`235` accepted, `535` refused).
fn auth(topo: &Topology, source: &str, user: &str, password: &str) -> Reached<u16> {
    let server: SocketAddr = format!("{VICTIM_V4}:25").parse().expect("address");
    exchange(
        &topo.attacker,
        source,
        server,
        Duration::from_secs(2),
        |stream| {
            // Refusals wait for Dovecot's penalty, longer for an address that failed before.
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
            let mut reader = BufReader::new(stream.try_clone()?);
            let mut writer = stream;
            let mut reply = || -> std::io::Result<u16> {
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    // The last line of a reply has a space after its code.
                    if line.as_bytes().get(3) != Some(&b'-') {
                        return line
                            .get(..3)
                            .and_then(|code| code.parse().ok())
                            .ok_or_else(|| std::io::Error::other(format!("not SMTP: {line:?}")));
                    }
                }
            };
            reply()?;
            write!(writer, "EHLO client.example.test\r\n")?;
            reply()?;
            let credentials = base64(format!("\0{user}\0{password}").as_bytes());
            write!(writer, "AUTH PLAIN {credentials}\r\n")?;
            let code = reply()?;
            write!(writer, "QUIT\r\n")?;
            let _ = reply();
            Ok(code)
        },
    )
}

#[test]
fn postfix_sasl_password_guesser_is_banned() {
    const NAME: &str = "postfix_sasl_password_guesser_is_banned";
    if !privileged(NAME) || !programs_present(NAME, PROGRAMS) {
        return;
    }
    let topo = Topology::new(&[ATTACKER, OTHER], &[]);
    let setup = Setup::new("", "");
    let mail_log = setup.path("mail.log");
    let syslog = Syslog::start(setup.dir.path(), &mail_log, "mail.*");
    let user = LocalUser::create(PASSWORD);
    let _relay = Relay::start(&topo.victim, &syslog, setup.dir.path());
    // maxretry 2: Dovecot's penalty for an address that keeps failing soon outgrows the
    // time Postfix waits for its answer, and "Connection lost to authentication server" is
    // rightly nobody's failure (the filter's fixture has it).
    setup.shipped_jail("postfix-sasl", &mail_log, 2);
    let mut daemon = setup.start_daemon(&topo.victim);

    // Wrong passwords, one session each, each counted once: the second bans.
    let guessing = Guessing {
        jail: "postfix-sasl",
        maxretry: 2,
        attacker: ATTACKER,
        other: OTHER,
        right_password: PASSWORD,
        refused: 535,
        accepted: 235,
        log: &mail_log,
    };
    guessing.is_banned(&setup, &mut daemon, |source, password| {
        auth(&topo, source, &user.name, password)
    });
}
