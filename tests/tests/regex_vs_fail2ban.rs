//! `banxdp regex --json` against the installed `fail2ban-regex -o row`, on the same log with
//! the same stock filter from /etc/fail2ban, in the same run: the failures, as (time,
//! address) pairs, must be the same multiset, and the summaries must count the lines alike
//! (matched, ignored, missed). The logs are fail2ban's own samples for the
//! filters whose failures span several lines (`maxlines`, `<SKIPLINES>`, lines without a
//! date of their own), and for sshd with its failure ids; and the benchmark's generated
//! auth.log and access log.

use std::{collections::BTreeMap, path::Path, process::Command};

const LOGS: &str = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs";

/// Seconds since the epoch, now.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap())
}

/// A time within minutes of now stands for "now": a line without a date of its own happens
/// when it is read, which is not the same second in two programs.
fn normalised(time: i64, started: i64) -> String {
    if (started - 300..=now() + 300).contains(&time) {
        "now".into()
    } else {
        time.to_string()
    }
}

fn fail2ban(filter: &str, log: &Path, started: i64) -> BTreeMap<(String, String), usize> {
    let conf = format!("/etc/fail2ban/filter.d/{filter}.conf");
    let mut found = BTreeMap::new();
    for (time, host) in banxdp_tests::fail2ban_regex_rows(&[log.as_os_str(), conf.as_ref()]) {
        #[expect(clippy::cast_possible_truncation, reason = "epoch seconds fit an i64")]
        let time = time.floor() as i64;
        *found.entry((normalised(time, started), host)).or_insert(0) += 1;
    }
    found
}

fn banxdp(filter: &str, log: &Path, started: i64) -> BTreeMap<(String, String), usize> {
    let out = Command::new(env!("CARGO_BIN_EXE_banxdp-bin"))
        .env("TZ", "UTC")
        .args(["regex", "--json", "--config-dir", "/etc/fail2ban"])
        .arg(log)
        .arg(filter)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut found = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let failure: serde_json::Value = serde_json::from_str(line).unwrap();
        let time = failure["time"].as_str().expect("every failure has a time");
        let seconds = banxdp::filter::report::parse_iso8601(time).expect("an ISO 8601 time");
        let host = failure["host"].as_str().unwrap().to_string();
        *found
            .entry((normalised(seconds, started), host))
            .or_insert(0) += 1;
    }
    found
}

fn compare(filter: &str) {
    compare_on(filter, &Path::new(LOGS).join(filter));
}

fn compare_on(filter: &str, log: &Path) {
    let log = log.to_path_buf();
    let started = now();
    let reference = fail2ban(filter, &log, started);
    let ours = banxdp(filter, &log, started);
    assert!(!reference.is_empty(), "{filter}: fail2ban found nothing");
    assert_eq!(
        ours, reference,
        "{filter}: banxdp (left) and fail2ban (right)"
    );
    // The summaries count lines alike: matched, ignored (no-fail), missed.
    let counts = |program: &str, args: &[&str]| -> String {
        let out = Command::new(program)
            .env("TZ", "UTC")
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("Lines: "))
            .unwrap_or_else(|| panic!("{program}: no `Lines:` in its summary"))
            .to_string()
    };
    let log = log.to_str().unwrap();
    assert_eq!(
        counts(
            env!("CARGO_BIN_EXE_banxdp-bin"),
            &["regex", "--config-dir", "/etc/fail2ban", log, filter]
        ),
        counts(
            "fail2ban-regex",
            &[log, &format!("/etc/fail2ban/filter.d/{filter}.conf")]
        ),
        "{filter}: banxdp's summary (left) and fail2ban's (right)"
    );
}

fn ready(test: &str) -> bool {
    banxdp_tests::fail2ban_present(test, "fail2ban-regex")
}

#[test]
fn multi_line_filters_find_what_fail2ban_finds() {
    if !ready("multi_line_filters_find_what_fail2ban_finds") {
        return;
    }
    for filter in ["mongodb-auth", "slapd", "ejabberd-auth", "guacamole"] {
        compare(filter);
    }
}

#[test]
fn stock_sshd_finds_what_fail2ban_finds() {
    if !ready("stock_sshd_finds_what_fail2ban_finds") {
        return;
    }
    compare("sshd");
}

/// The benchmark's equality check (`cargo xtask bench-regex` runs it on 1,000,000 lines):
/// on a generated auth.log and access log, the stock sshd and apache-badbots filters find
/// the same failures in banxdp and in fail2ban.
#[test]
fn generated_logs_give_the_same_failures_as_fail2ban() {
    if !ready("generated_logs_give_the_same_failures_as_fail2ban") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.log");
    std::fs::write(&auth, banxdp_tests::authlog::auth_log(20_000, 2_000, 1)).unwrap();
    compare_on("sshd", &auth);
    let access = dir.path().join("access.log");
    std::fs::write(&access, banxdp_tests::authlog::access_log(2_000, 500, 2)).unwrap();
    compare_on("apache-badbots", &access);
}
