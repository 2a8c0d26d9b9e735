//! banxdp answering as `fail2ban-client` (needs root; CI installs fail2ban): the installed
//! fail2ban-server and `banxdp run` read one configuration directory (two jails, no actions),
//! and the same commands go to each, through the installed fail2ban-client and through a
//! symlink named `fail2ban-client` to the banxdp binary. Each answer, standard output and
//! exit status, must be the same, a failure's included. The jails are not in name order in
//! the configuration: `status` lists them sorted, `banned` in the configuration's order.
//! Then failures written to the log both follow: the same counts and bans in `status`.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use banxdp_tests::{
    Topology,
    daemon::{Daemon, Setup, bin},
    privileged,
};

/// A fail2ban-server of the test's own, on the test's configuration; stopped on drop.
struct Fail2ban {
    conf: PathBuf,
}

impl Fail2ban {
    fn start(conf: &Path) -> Self {
        let dir = conf.display();
        std::fs::write(
            conf.join("fail2ban.conf"),
            format!(
                "[Definition]\nloglevel = INFO\nlogtarget = {dir}/fail2ban.log\n\
                 syslogsocket = auto\nsocket = {dir}/fail2ban.sock\n\
                 pidfile = {dir}/fail2ban.pid\nallowipv6 = auto\ndbfile = :memory:\n\
                 dbpurgeage = 1d\n"
            ),
        )
        .unwrap();
        let server = Self {
            conf: conf.to_path_buf(),
        };
        let (started, out) = server.client(&["start"]);
        assert_eq!(started, 0, "fail2ban-server did not start: {out}");
        server
    }

    /// `fail2ban-client -c CONF ARGS`: exit status and standard output.
    fn client(&self, args: &[&str]) -> (i32, String) {
        answer(
            Command::new("fail2ban-client")
                .arg("-c")
                .arg(&self.conf)
                .args(args),
        )
    }
}

impl Drop for Fail2ban {
    fn drop(&mut self) {
        let _ = self.client(&["stop"]);
    }
}

fn answer(command: &mut Command) -> (i32, String) {
    let output = command.output().expect("run a client");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// The two servers on one configuration, and banxdp's fail2ban-client.
struct Pair {
    setup: Setup,
    fail2ban: Fail2ban,
    daemon: Daemon,
    _topo: Topology,
}

impl Pair {
    /// Jails `web` (maxretry 3) then `mail` (maxretry 5), one filter, no actions.
    fn start() -> Self {
        let topo = Topology::new(&[], &[]);
        let setup = Setup::new("", "");
        let log = setup.path("app.log");
        let jail = |name: &str, maxretry: u32| {
            format!(
                "[{name}]\nenabled = true\nfilter = web\nlogpath = {}\nmaxretry = {maxretry}\n\
                 findtime = 600\nbantime = 600\naction =\n",
                log.display()
            )
        };
        std::fs::write(
            setup.path("jail.conf"),
            format!(
                "[DEFAULT]\nbackend = polling\n\n{}\n{}",
                jail("web", 3),
                jail("mail", 5)
            ),
        )
        .unwrap();
        setup.filter(
            "web",
            "[Definition]\nfailregex = ^ login failed from <HOST>$\n",
        );
        std::fs::write(&log, "").unwrap();
        std::os::unix::fs::symlink(bin(), setup.path("fail2ban-client")).unwrap();
        let fail2ban = Fail2ban::start(setup.dir.path());
        let mut daemon = Daemon::start(
            &topo.victim,
            &setup.path("banxdp.toml"),
            setup.path("daemon.log"),
        );
        daemon.wait_for_log("enforcing 0 ban(s)");
        Self {
            setup,
            fail2ban,
            daemon,
            _topo: topo,
        }
    }

    /// banxdp's `fail2ban-client -s SOCKET ARGS`: exit status and standard output.
    fn banxdp(&self, args: &[&str]) -> (i32, String) {
        answer(
            Command::new(self.setup.path("fail2ban-client"))
                .arg("-s")
                .arg(self.setup.path("banxdp.sock"))
                .args(args),
        )
    }

    /// Each command to both, in turn: what differs.
    fn differences(&self, script: &[&[&str]]) -> String {
        let mut differences = String::new();
        for args in script {
            let expected = self.fail2ban.client(args);
            let got = self.banxdp(args);
            if got != expected {
                let _ = writeln!(
                    differences,
                    "fail2ban-client {}:\n  fail2ban: {expected:?}\n  banxdp:   {got:?}",
                    args.join(" ")
                );
            }
        }
        differences
    }
}

/// Bans and unbans by hand, counted address by address (twice the same, networks, words
/// that are no address), the refusals, versions and reloads.
const SCRIPT: &[&[&str]] = &[
    &["ping"],
    &["-V"],
    &["version"],
    &["--str2sec", "1h30m"],
    &["status"],
    &["status", "web"],
    &["set", "web", "banip", "192.0.2.1"],
    &["set", "web", "banip", "192.0.2.1"],
    &["set", "web", "banip", "192.0.2.2", "192.0.2.3", "192.0.2.3"],
    &["set", "mail", "banip", "192.0.2.2"],
    &["set", "web", "banip", "198.51.100.5/24"],
    &["get", "web", "banip"],
    &["get", "web", "banip", ","],
    &["get", "web", "banned"],
    &["get", "web", "banned", "192.0.2.1"],
    &["get", "web", "banned", "192.0.2.1", "192.0.2.9", "nothing"],
    &["banned"],
    &["banned", "192.0.2.2", "192.0.2.9", "nothing"],
    &["status", "web"],
    &["status", "web", "short"],
    &["status", "mail"],
    &["set", "web", "unbanip", "192.0.2.9"],
    &["set", "web", "unbanip", "--report-absent", "192.0.2.9"],
    &[
        "set",
        "web",
        "unbanip",
        "--report-absent",
        "192.0.2.3",
        "192.0.2.9",
    ],
    &["get", "web", "banned", "192.0.2.3"],
    &["set", "web", "unbanip", "192.0.2.1", "192.0.2.1"],
    &["unban", "192.0.2.2", "192.0.2.2", "192.0.2.9", "nothing"],
    &[
        "set",
        "web",
        "banip",
        "192.0.2.4",
        "192.0.2.5",
        "2001:db8::7",
    ],
    &["set", "mail", "banip", "192.0.2.5"],
    &["get", "web", "banned", "::ffff:192.0.2.4"],
    &["banned", "::ffff:192.0.2.5"],
    // mail holds the network itself (and .5), web addresses inside it: each jail decides.
    &["set", "mail", "banip", "192.0.2.0/24"],
    &["unban", "192.0.2.0/24"],
    &["banned"],
    &["status", "nojail"],
    &["set", "nojail", "banip", "192.0.2.5"],
    &["set", "nojail", "unbanip", "192.0.2.5"],
    &["get", "nojail", "banip"],
    &["reload", "web"],
    &["reload"],
    &["get", "web", "banip"],
    &["unban", "--all"],
    &["banned"],
    &["status", "web"],
];

#[test]
fn banxdp_answers_fail2ban_clients_commands_as_fail2ban_does() {
    if !privileged("banxdp_answers_fail2ban_clients_commands_as_fail2ban_does") {
        return;
    }
    let mut pair = Pair::start();
    let differences = pair.differences(SCRIPT);
    assert!(differences.is_empty(), "{differences}");
    // Their help texts differ; both print one and fail without a command.
    assert_eq!(pair.banxdp(&[]).0, pair.fail2ban.client(&[]).0);
    assert_eq!(pair.banxdp(&["-h"]).0, 0);

    failures_in_the_log_count_the_same(&pair);

    // Both stop; banxdp's answer comes once its daemon no longer answers, as fail2ban's
    // once its server has stopped.
    assert_eq!(pair.fail2ban.client(&["stop"]), pair.banxdp(&["stop"]));
    assert!(
        std::os::unix::net::UnixStream::connect(pair.setup.path("banxdp.sock")).is_err(),
        "the daemon still answers after `stop`"
    );
    assert!(
        pair.daemon.child.wait().unwrap().success(),
        "{}",
        pair.daemon.log()
    );
}

/// 192.0.2.10 fails twice (under every maxretry), 192.0.2.11 three times (web's maxretry;
/// mail counts them): once each server has read and banned, the same counts and bans.
fn failures_in_the_log_count_the_same(pair: &Pair) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = banxdp::filter::report::iso8601(i64::try_from(secs).unwrap());
    let mut lines = String::new();
    for source in ["10", "11", "10", "11", "11"] {
        let _ = writeln!(lines, "{now} login failed from 192.0.2.{source}");
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(pair.setup.path("app.log"))
        .and_then(|mut file| std::io::Write::write_all(&mut file, lines.as_bytes()))
        .unwrap();
    // Each fail2ban jail polls on a thread of its own and bans on another: ask until both
    // servers agree, or the time is up.
    let script: &[&[&str]] = &[
        &["status", "web"],
        &["status", "mail"],
        &["banned"],
        &["get", "web", "banip"],
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let differences = pair.differences(script);
        let banned = pair.banxdp(&["banned"]).1;
        if differences.is_empty() && banned.contains("'192.0.2.11'") {
            break;
        }
        assert!(Instant::now() < deadline, "{differences}{banned}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        pair.banxdp(&["status", "mail"])
            .1
            .contains("Total failed:\t5")
    );
}
