//! banxdp's shipped filters count attempts, not lines, on logs that real services wrote.
//!
//! Live (privileged): Debian's sshd runs in a network namespace with `UsePAM yes` and with
//! `UsePAM no`, logging through a real rsyslogd; the OpenSSH client types wrong passwords
//! from another namespace, for a real user and for an unknown one, each from an address of
//! its own. The log sshd produced is then counted, per address, by the real `banxdp regex
//! --json` with banxdp's `config/filter.d/sshd.conf` and with the stock
//! `/etc/fail2ban/filter.d/sshd.conf`, and by the installed `fail2ban-regex` with both, in
//! every mode: a real user's wrong password counts once per attempt; an unknown user's at
//! least once and no more often than the stock filter counts it (or once, where the stock
//! filter misses it).
//!
//! Recorded: logs of the other services (`fixtures/services/`, each with how it was
//! produced) are counted the same way, without running the services.

use std::{collections::BTreeMap, ffi::OsStr, fmt::Write as _, path::Path, process::Command};

use banxdp_tests::{
    Topology, privileged,
    services::{self, LocalUser, SshOptions, SshServer},
};

/// Failures per address.
type Counts = BTreeMap<String, usize>;

/// banxdp's configuration directory (`config/`, holding the shipped `filter.d`).
fn shipped() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

/// `banxdp regex --json --config-dir DIR LOG FILTER` (the real binary): failures per address.
fn banxdp_regex(config: &Path, log: &Path, filter: &str) -> Counts {
    let out = Command::new(env!("CARGO_BIN_EXE_banxdp-bin"))
        .args(["regex", "--json", "--config-dir"])
        .arg(config)
        .arg(log)
        .arg(filter)
        .output()
        .expect("run banxdp");
    assert!(
        out.status.success(),
        "banxdp regex {filter}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut counts = Counts::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let failure: serde_json::Value = serde_json::from_str(line).expect("a JSON failure");
        let host = failure["host"].as_str().expect("a host").to_string();
        *counts.entry(host).or_default() += 1;
    }
    counts
}

/// The installed `fail2ban-regex --config DIR LOG FILTER`: failures per address.
fn fail2ban_regex(config: &Path, log: &Path, filter: &str) -> Counts {
    let mut counts = Counts::new();
    let rows = banxdp_tests::fail2ban_regex_rows(&[
        OsStr::new("--config"),
        config.as_os_str(),
        log.as_os_str(),
        OsStr::new(filter),
    ]);
    for (_, host) in rows {
        *counts.entry(host).or_default() += 1;
    }
    counts
}

/// Whose attempts came from an address, and what the shipped filter must count for them.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    /// A real account: exactly `expected` failures (one per attempt, unless the service
    /// writes one line for several).
    Known { expected: usize },
    /// An unknown account: at least once per attempt, and no more often than the stock
    /// filter (or once per attempt, where the stock filter misses some).
    Unknown,
}

/// One address's attempts in a log.
struct Source {
    address: &'static str,
    who: Who,
    attempts: usize,
}

/// The four counts of one log in one mode.
struct Measured {
    banxdp: Counts,
    banxdp_by_fail2ban: Counts,
    stock: Counts,
    stock_by_fail2ban: Counts,
}

fn measure(log: &Path, filter: &str, stock_filter: &str) -> Measured {
    let stock = Path::new("/etc/fail2ban");
    Measured {
        banxdp: banxdp_regex(&shipped(), log, filter),
        banxdp_by_fail2ban: fail2ban_regex(&shipped(), log, filter),
        stock: banxdp_regex(stock, log, stock_filter),
        stock_by_fail2ban: fail2ban_regex(stock, log, stock_filter),
    }
}

/// Checks one log in one mode, appending its table rows to `table` and what is wrong to
/// `problems`.
fn check(
    log: &Path,
    (filter, stock_filter): (&str, &str),
    sources: &[Source],
    table: &mut String,
    problems: &mut Vec<String>,
) {
    let m = measure(log, filter, stock_filter);
    for s in sources {
        let get = |c: &Counts| c.get(s.address).copied().unwrap_or(0);
        let (ours, stock) = (get(&m.banxdp), get(&m.stock_by_fail2ban));
        let _ = writeln!(
            table,
            "{filter:<28} {stock_filter:<24} {:<14} {:<9} {:>8} {:>7} {:>14} {:>6} {:>14}",
            s.address,
            if matches!(s.who, Who::Unknown) {
                "unknown"
            } else {
                "known"
            },
            s.attempts,
            ours,
            get(&m.banxdp_by_fail2ban),
            get(&m.stock),
            stock,
        );
        let place = format!("{} ({filter}) from {}", log.display(), s.address);
        if ours != get(&m.banxdp_by_fail2ban) {
            problems.push(format!(
                "{place}: banxdp and fail2ban-regex disagree on our filter"
            ));
        }
        if get(&m.stock) != stock {
            problems.push(format!(
                "{place}: banxdp and fail2ban-regex disagree on the stock filter"
            ));
        }
        let wrong = match s.who {
            Who::Known { expected } => (ours != expected).then(|| {
                format!(
                    "{place}: {ours} failures for {} attempts of a real user (expected {expected})",
                    s.attempts
                )
            }),
            Who::Unknown => (ours < s.attempts || ours > stock.max(s.attempts)).then(|| {
                format!(
                    "{place}: {ours} failures for {} attempts of an unknown user (stock: {stock})",
                    s.attempts
                )
            }),
        };
        problems.extend(wrong);
    }
}

/// The table's heading.
fn heading() -> String {
    format!(
        "{:<28} {:<24} {:<14} {:<9} {:>8} {:>7} {:>14} {:>6} {:>14}\n",
        "banxdp filter",
        "stock filter",
        "address",
        "user",
        "attempts",
        "banxdp",
        "(fail2ban)",
        "stock",
        "(fail2ban)"
    )
}

// ---------------------------------------------------------------------------------------
// Live sshd.

/// What a client does from one address: `connections`, each typing a wrong password at
/// `prompts` prompts (or, with `key`, offering one key that the user did not authorize), for
/// a real user or an unknown one.
struct Plan {
    source: &'static str,
    known: bool,
    connections: usize,
    prompts: u32,
    key: bool,
}

/// sshd's default `MaxAuthTries`, which the last plan reaches: after its sixth failure sshd
/// also writes `maximum authentication attempts exceeded` and disconnects.
const MAX_AUTH_TRIES: u32 = 6;

/// A plan (see [`Plan`]'s fields, in order).
const fn plan(
    source: &'static str,
    known: bool,
    connections: usize,
    prompts: u32,
    key: bool,
) -> Plan {
    Plan {
        source,
        known,
        connections,
        prompts,
        key,
    }
}

const PLANS: [Plan; 5] = [
    // source, real user?, connections, password prompts each, a refused key instead?
    plan("203.0.113.7", true, 3, 1, false),
    plan("203.0.113.8", false, 3, 1, false),
    plan("203.0.113.9", true, 1, MAX_AUTH_TRIES, false),
    plan("203.0.113.10", false, 1, MAX_AUTH_TRIES, false),
    plan("203.0.113.11", true, 2, 1, true),
];

impl Plan {
    fn attempts(&self) -> usize {
        self.connections * usize::try_from(self.prompts).unwrap()
    }

    /// Connections the client closes while authenticating (sshd closes the others).
    fn dropped(&self) -> usize {
        if self.prompts < MAX_AUTH_TRIES {
            self.connections
        } else {
            0
        }
    }

    /// What banxdp's filter must count in `mode`. In aggressive mode a connection dropped
    /// while authenticating counts as well, as in the stock filter: that is how a refused
    /// key counts, the only trace it leaves at sshd's default log level (`Failed publickey`
    /// is written at VERBOSE), so in the other modes it counts nothing, in either filter.
    fn source(&self, mode: &str) -> Source {
        let dropped = if mode == "aggressive" {
            self.dropped()
        } else {
            0
        };
        let failed = if self.key { 0 } else { self.attempts() };
        Source {
            address: self.source,
            who: if self.known {
                Who::Known {
                    expected: failed + dropped,
                }
            } else {
                Who::Unknown
            },
            attempts: self.attempts(),
        }
    }
}

/// Runs sshd (`use_pam`), plays [`PLANS`] against it at once, and returns the log, copied to
/// `BANXDP_SAVE_LOGS/NAME` when that is set.
fn record_sshd(use_pam: bool, name: &str) -> tempfile::TempPath {
    let sources: Vec<&str> = PLANS.iter().map(|p| p.source).collect();
    let net = Topology::new(&sources, &[]);
    let opts = SshOptions {
        use_pam,
        max_auth_tries: MAX_AUTH_TRIES,
        ..SshOptions::default()
    };
    let server = SshServer::start(&net.victim, &opts);
    let user = LocalUser::create("the-right-Passw0rd");
    let unknown = banxdp_tests::unique("nobody");
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id_ed25519");
    banxdp_tests::sh(&[
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-f",
        key.to_str().unwrap(),
    ]);
    std::thread::scope(|scope| {
        let mut clients = Vec::new();
        for plan in &PLANS {
            let login = if plan.known { &user.name } else { &unknown };
            for i in 0..plan.connections {
                let (net, server, key) = (&net, &server, &key);
                clients.push(scope.spawn(move || {
                    let (from, to) = (&net.attacker, server.address());
                    if plan.key {
                        return services::ssh_key(from, plan.source, to, login, key);
                    }
                    let password = format!("wrong-{i}");
                    services::ssh_password(from, plan.source, to, login, &password, plan.prompts)
                }));
            }
        }
        for client in clients {
            let attempt = client.join().expect("client thread");
            assert!(
                attempt.denied,
                "a wrong password or key was not refused: {}",
                attempt.output
            );
        }
    });
    // A connection's last line comes after the client has gone.
    let dropped: usize = PLANS.iter().map(Plan::dropped).sum();
    let log = server.wait_for_log("every connection's end", |log| {
        log.matches("Connection closed by").count() >= dropped
            && log.matches("Too many authentication failures").count() >= 2
    });
    drop(server);
    if let Ok(dir) = std::env::var("BANXDP_SAVE_LOGS") {
        std::fs::write(Path::new(&dir).join(name), &log).expect("save the log");
    }
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, log.as_bytes()).unwrap();
    file.into_temp_path()
}

fn live_sshd(test: &str, use_pam: bool) {
    if !privileged(test)
        || !services::programs_present(test, services::SSH_PROGRAMS)
        || !banxdp_tests::fail2ban_present(test, "fail2ban-regex")
    {
        return;
    }
    let name = if use_pam {
        "sshd-pam.log"
    } else {
        "sshd-nopam.log"
    };
    let log = record_sshd(use_pam, name);
    let mut table = heading();
    let mut problems = Vec::new();
    for mode in ["normal", "ddos", "aggressive"] {
        let sources: Vec<Source> = PLANS.iter().map(|p| p.source(mode)).collect();
        let filter = format!("sshd[mode={mode}]");
        check(
            &log,
            (&filter, &filter),
            &sources,
            &mut table,
            &mut problems,
        );
    }
    println!("UsePAM {}:\n{table}", if use_pam { "yes" } else { "no" });
    assert!(
        problems.is_empty(),
        "{}\n\n{table}\nthe log:\n{}",
        problems.join("\n"),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[test]
fn sshd_with_pam_counts_each_wrong_password_once() {
    live_sshd("sshd_with_pam_counts_each_wrong_password_once", true);
}

#[test]
fn sshd_without_pam_counts_each_wrong_password_once() {
    live_sshd("sshd_without_pam_counts_each_wrong_password_once", false);
}

#[test]
fn recorded_sshd_logs_count_each_attempt_once() {
    // The logs the two tests above wrote once (BANXDP_SAVE_LOGS), checked without root.
    let mut cases = Vec::new();
    for log in ["sshd/auth-pam.log", "sshd/auth-nopam.log"] {
        for mode in ["normal", "ddos", "aggressive"] {
            let filter = format!("sshd[mode={mode}]");
            let sources: Vec<Source> = PLANS.iter().map(|p| p.source(mode)).collect();
            cases.push((vec![log], filter, sources));
        }
    }
    let cases: Vec<(&[&str], &str, &str, Vec<Source>)> = cases
        .iter_mut()
        .map(|(files, filter, sources)| {
            (
                files.as_slice(),
                filter.as_str(),
                filter.as_str(),
                std::mem::take(sources),
            )
        })
        .collect();
    check_recorded(&cases);
}

// ---------------------------------------------------------------------------------------
// Recorded services (fixtures/services/*, each recorded by tests/services/record-*.sh).

/// The recorded fixture files `files`, joined into one log as the journal would hold them.
fn recorded(files: &[&str]) -> tempfile::TempPath {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/services");
    let mut text = String::new();
    for f in files {
        let path = dir.join(f);
        text += &std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    }
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    file.into_temp_path()
}

/// A real user's address and the failures expected from it.
fn known(address: &'static str, attempts: usize, expected: usize) -> Source {
    Source {
        address,
        who: Who::Known { expected },
        attempts,
    }
}

/// An unknown user's address.
fn unknown(address: &'static str, attempts: usize) -> Source {
    Source {
        address,
        who: Who::Unknown,
        attempts,
    }
}

/// Counts each of `cases` (fixture files, banxdp's filter, the stock one, the sources) and
/// fails listing every problem, with the table.
fn check_recorded(cases: &[(&[&str], &str, &str, Vec<Source>)]) {
    if !banxdp_tests::fail2ban_present("recorded services", "fail2ban-regex") {
        return;
    }
    let mut table = heading();
    let mut problems = Vec::new();
    for (files, filter, stock, sources) in cases {
        let log = recorded(files);
        let _ = writeln!(table, "{}:", files.join(" + "));
        check(&log, (filter, stock), sources, &mut table, &mut problems);
    }
    println!("{table}");
    assert!(problems.is_empty(), "{}\n\n{table}", problems.join("\n"));
}

#[test]
fn dovecot_counts_each_failed_connection_once() {
    // Three connections with one wrong login each from .7 (IMAP), .8 (unknown user, IMAP) and
    // .9 (POP3); one connection with three from .10, for which Dovecot writes one line.
    let sources = || {
        vec![
            known("203.0.113.7", 3, 3),
            unknown("203.0.113.8", 3),
            known("203.0.113.9", 3, 3),
            known("203.0.113.10", 3, 1),
        ]
    };
    check_recorded(&[
        (&["dovecot/mail.log"], "dovecot", "dovecot", sources()),
        (
            &["dovecot/mail.log", "dovecot/auth.log"],
            "dovecot",
            "dovecot",
            sources(),
        ),
    ]);
}

#[test]
fn postfix_counts_each_failed_sasl_login_once() {
    // Three connections with one wrong AUTH each from .7 (a real user) and .8 (unknown); one
    // connection with three from .9. Postfix writes one line per attempt.
    let sources = || {
        vec![
            known("203.0.113.7", 3, 3),
            unknown("203.0.113.8", 3),
            known("203.0.113.9", 3, 3),
        ]
    };
    let everything: &[&str] = &["postfix/mail.log", "postfix/auth.log"];
    check_recorded(&[
        (
            &["postfix/mail.log"],
            "postfix[mode=auth]",
            "postfix[mode=auth]",
            sources(),
        ),
        (
            &["postfix/mail.log"],
            "postfix[mode=aggressive]",
            "postfix[mode=aggressive]",
            sources(),
        ),
        (
            everything,
            "postfix[mode=auth]",
            "postfix[mode=auth]",
            sources(),
        ),
    ]);
}

#[test]
fn nginx_counts_each_failed_basic_auth_once() {
    // Three requests with a wrong password from .7, for an unknown user from .8; from .9
    // three times a request without credentials then one with a wrong password, as a
    // browser does (nginx 1.22 writes nothing for the first at its default level).
    let sources = || {
        vec![
            known("203.0.113.7", 3, 3),
            unknown("203.0.113.8", 3),
            known("203.0.113.9", 3, 3),
        ]
    };
    check_recorded(&[
        (
            &["nginx/error.log"],
            "nginx-http-auth",
            "nginx-http-auth",
            sources(),
        ),
        (
            &["nginx/error.log"],
            "nginx-http-auth[mode=aggressive]",
            "nginx-http-auth[mode=aggressive]",
            sources(),
        ),
    ]);
}

#[test]
fn vsftpd_counts_each_failed_login_once() {
    // Three connections with one wrong password each, from .7 (a real user) and .8.
    let sources = || vec![known("203.0.113.7", 3, 3), unknown("203.0.113.8", 3)];
    check_recorded(&[
        (&["vsftpd/vsftpd.log"], "vsftpd", "vsftpd", sources()),
        (
            &["vsftpd/vsftpd.log", "vsftpd/auth.log"],
            "vsftpd",
            "vsftpd",
            sources(),
        ),
    ]);
}

#[test]
fn proftpd_counts_each_failed_login_once() {
    // Three connections with one wrong password each from .7 (a real user) and .8 (unknown);
    // one connection with three from .9, after which ProFTPD also writes "Maximum login
    // attempts (3) exceeded".
    let sources = || {
        vec![
            known("203.0.113.7", 3, 3),
            unknown("203.0.113.8", 3),
            known("203.0.113.9", 3, 3),
        ]
    };
    check_recorded(&[
        (&["proftpd/proftpd.log"], "proftpd", "proftpd", sources()),
        (
            &["proftpd/proftpd.log", "proftpd/auth.log"],
            "proftpd",
            "proftpd",
            sources(),
        ),
    ]);
}

#[test]
fn apache_counts_each_failed_basic_auth_once() {
    // As nginx: wrong passwords from .7, an unknown user from .8, a browser's pairs from .9.
    let sources = vec![
        known("203.0.113.7", 3, 3),
        unknown("203.0.113.8", 3),
        known("203.0.113.9", 3, 3),
    ];
    check_recorded(&[(
        &["apache2/error.log"],
        "apache-auth",
        "apache-auth",
        sources,
    )]);
}

#[test]
fn pure_ftpd_counts_each_failed_login_once() {
    // Three connections with one wrong password each from .7 (a real user) and .8 (unknown);
    // one connection with three from .9.
    let sources = || {
        vec![
            known("203.0.113.7", 3, 3),
            unknown("203.0.113.8", 3),
            known("203.0.113.9", 3, 3),
        ]
    };
    check_recorded(&[
        (&["pure-ftpd/syslog"], "pure-ftpd", "pure-ftpd", sources()),
        (
            &["pure-ftpd/syslog", "pure-ftpd/auth.log"],
            "pure-ftpd",
            "pure-ftpd",
            sources(),
        ),
    ]);
}

#[test]
fn mariadb_counts_each_refused_login_once() {
    // Three connections with a wrong password for a real account from .7, three for an
    // unknown account from .8 (which MariaDB 10.11 writes without "(using password: ...)",
    // and the stock filter misses).
    let sources = vec![known("203.0.113.7", 3, 3), unknown("203.0.113.8", 3)];
    check_recorded(&[(
        &["mariadb/error.log"],
        "mysqld-auth",
        "mysqld-auth",
        sources,
    )]);
}
