//! banxdp answering as `fail2ban-client` (needs root; CI installs fail2ban): the installed
//! fail2ban-server and `banxdp run` read one configuration directory (two jails, no actions),
//! and the same commands go to each, through the installed fail2ban-client and through a
//! symlink named `fail2ban-client` to the banxdp binary. Each answer, standard output and
//! exit status, must be the same, a failure's included. The jails are not in name order in
//! the configuration: `status` lists them sorted, `banned` in the configuration's order.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
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

#[test]
fn banxdp_answers_fail2ban_clients_commands_as_fail2ban_does() {
    if !privileged("banxdp_answers_fail2ban_clients_commands_as_fail2ban_does") {
        return;
    }
    let topo = Topology::new(&[], &[]);
    let setup = Setup::new("", "");
    let conf = setup.dir.path();
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

    let fail2ban = Fail2ban::start(conf);
    let mut daemon = Daemon::start(
        &topo.victim,
        &setup.path("banxdp.toml"),
        setup.path("daemon.log"),
    );
    daemon.wait_for_log("enforcing 0 ban(s)");
    let symlink = setup.path("fail2ban-client");
    std::os::unix::fs::symlink(bin(), &symlink).unwrap();
    let socket = setup.path("banxdp.sock");
    let banxdp = |args: &[&str]| answer(Command::new(&symlink).arg("-s").arg(&socket).args(args));

    let script: &[&[&str]] = &[
        &["ping"],
        &["status"],
        &["status", "web"],
        &["set", "web", "banip", "192.0.2.1"],
        &["set", "web", "banip", "192.0.2.1"],
        &["set", "web", "banip", "192.0.2.2", "192.0.2.3"],
        &["set", "mail", "banip", "192.0.2.2"],
        &["get", "web", "banip"],
        &["get", "web", "banip", ","],
        &["get", "web", "banned"],
        &["get", "web", "banned", "192.0.2.1"],
        &["get", "web", "banned", "192.0.2.1", "192.0.2.9"],
        &["banned"],
        &["banned", "192.0.2.2", "192.0.2.9"],
        &["status", "web"],
        &["status", "mail"],
        &["set", "web", "unbanip", "192.0.2.9"],
        &["set", "web", "unbanip", "--report-absent", "192.0.2.9"],
        &["set", "web", "unbanip", "192.0.2.3"],
        &["unban", "192.0.2.2", "192.0.2.9"],
        &["status", "nojail"],
        &["set", "nojail", "banip", "192.0.2.5"],
        &["get", "nojail", "banip"],
        &["reload", "web"],
        &["reload"],
        &["get", "web", "banip"],
        &["set", "web", "banip", "2001:db8::7"],
        &["unban", "--all"],
        &["banned"],
        &["status", "web"],
    ];
    let mut differences = String::new();
    for args in script {
        let expected = fail2ban.client(args);
        let got = banxdp(args);
        if got != expected {
            let _ = writeln!(
                differences,
                "fail2ban-client {}:\n  fail2ban: {expected:?}\n  banxdp:   {got:?}",
                args.join(" ")
            );
        }
    }
    assert!(differences.is_empty(), "{differences}");

    // Both stop; the banxdp daemon exits.
    assert_eq!(fail2ban.client(&["stop"]), banxdp(&["stop"]));
    assert!(daemon.child.wait().unwrap().success(), "{}", daemon.log());
}
