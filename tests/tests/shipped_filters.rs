//! The filters banxdp ships (`config/filter.d`), checked line by line against fixtures of
//! log lines that must count as failures from a given address, or must not count at all,
//! including lines crafted to frame another address.
//!
//! Two engines run every fixture and both must meet it: the installed fail2ban's
//! (`fail2ban-regex`, the reference) and banxdp's own (`banxdp::filter`, reading the filter
//! through banxdp's configuration reader: its date detector finds and cuts each line's time
//! stamp, which must be the line's own, and the filter reads the rest).

use std::{collections::BTreeMap, fmt::Write as _, path::Path, process::Command};

fn fail2ban_present(test: &str) -> bool {
    banxdp_tests::fail2ban_present(test, "fail2ban-regex")
}

/// A configuration directory holding the shipped `filter` (and nothing else yet).
fn filter_dir(filter: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("filter.d")).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/filter.d");
    std::fs::copy(
        shipped.join(format!("{filter}.conf")),
        dir.path().join(format!("filter.d/{filter}.conf")),
    )
    .unwrap();
    dir
}

/// One mode's expectations: log text and the address it must report (`None`: nothing).
struct Section {
    mode: String,
    lines: Vec<(Option<String>, String)>,
}

fn fixture(text: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    for line in text.lines() {
        if let Some(mode) = line.strip_prefix("## mode=") {
            sections.push(Section {
                mode: mode.trim().to_string(),
                lines: Vec::new(),
            });
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (expected, log) = line.split_once(" | ").expect("`EXPECTED | LOG TEXT`");
        let expected = (expected.trim() != "-").then(|| expected.trim().to_string());
        sections
            .last_mut()
            .expect("a `## mode=` line first")
            .lines
            .push((expected, log.to_string()));
    }
    sections
}

/// Line `i` is stamped 2026-11-21 07:MM:SS with `i = MM * 60 + SS`, so that a failure's
/// time says which line it came from.
fn stamp(i: usize) -> String {
    format!("Nov 21 07:{:02}:{:02}", i / 60, i % 60)
}

/// A fixture's log text with its time stamp: in the place of a `{FORMAT}` placeholder, else
/// syslog's in front.
fn render(i: usize, text: &str) -> String {
    let (m, s) = (i / 60, i % 60);
    let formats = [
        ("{NGINX}", format!("2026/11/21 07:{m:02}:{s:02}")),
        ("{CLF}", format!("21/Nov/2026:07:{m:02}:{s:02} +0000")),
        (
            "{APACHE}",
            format!("Sat Nov 21 07:{m:02}:{s:02}.123456 2026"),
        ),
        ("{CTIME}", format!("Sat Nov 21 07:{m:02}:{s:02} 2026")),
        ("{ISO}", format!("2026-11-21 07:{m:02}:{s:02}")),
        ("{ISOZ}", format!("2026-11-21T07:{m:02}:{s:02}.123456Z")),
    ];
    for (placeholder, value) in &formats {
        if text.contains(placeholder) {
            return text.replace(placeholder, value);
        }
    }
    format!("{} {text}", stamp(i))
}

/// Writes `lines` as `test.log` in `dir`, each behind its stamp.
fn write_log(dir: &Path, lines: &[String]) -> std::path::PathBuf {
    let mut log = String::new();
    for (i, l) in lines.iter().enumerate() {
        let _ = writeln!(log, "{}", render(i, l));
    }
    let path = dir.join("test.log");
    std::fs::write(&path, log).unwrap();
    path
}

/// Runs `fail2ban-regex` with `filter` (file name under config/filter.d) in `mode`.
fn failures(filter: &str, mode: &str, lines: &[String]) -> BTreeMap<usize, Vec<String>> {
    let dir = filter_dir(filter);
    let log_path = write_log(dir.path(), lines);
    let filter_arg = format!("{filter}[mode={mode}]");
    let rows = banxdp_tests::fail2ban_regex_rows(&[
        "--config".as_ref(),
        dir.path().as_os_str(),
        log_path.as_os_str(),
        filter_arg.as_ref(),
    ]);
    let mut found: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (time, ip) in rows {
        // The stamps are 07:MM:SS in UTC: the second within the hour is the line's index.
        #[expect(clippy::cast_possible_truncation, reason = "epoch seconds fit an i64")]
        let within = (time.floor() as i64).rem_euclid(3600);
        found
            .entry(usize::try_from(within).unwrap())
            .or_default()
            .push(ip);
    }
    found
}

type Engine = fn(&str, &str, &[String]) -> BTreeMap<usize, Vec<String>>;

fn check_with(filter: &str, fixture_text: &str, engine: Engine) {
    let sections = fixture(fixture_text);
    assert!(!sections.is_empty());
    let mut problems = Vec::new();
    let mut checked = 0;
    for section in &sections {
        let logs: Vec<String> = section.lines.iter().map(|(_, l)| l.clone()).collect();
        let found = engine(filter, &section.mode, &logs);
        for (i, (expected, log)) in section.lines.iter().enumerate() {
            let got = found.get(&i).cloned().unwrap_or_default();
            let want: Vec<String> = expected.iter().cloned().collect();
            if got != want {
                problems.push(format!(
                    "[mode={}] `{log}`: expected {want:?}, got {got:?}",
                    section.mode
                ));
            }
            checked += 1;
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {checked} lines wrong:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The filter as banxdp's configuration reader resolves it for a jail using it in `mode`,
/// ready to read lines.
fn banxdp_scanner(filter: &str, mode: &str) -> banxdp::filter::Scanner {
    use banxdp::{
        config::{
            dump_stream,
            fail2ban::{Disk, Value},
        },
        filter::{FilterSpec, Scanner},
    };
    let dir = filter_dir(filter);
    std::fs::write(
        dir.path().join("jail.conf"),
        format!("[t]\nenabled = true\nfilter = {filter}[mode={mode}]\n"),
    )
    .unwrap();
    let dump = dump_stream(&Disk, dir.path()).unwrap();
    let jail = &dump.jails[0];
    assert!(jail.error.is_none(), "{:?}", jail.error);
    let options = jail.filter.as_ref().unwrap();
    Scanner::new(
        &FilterSpec::from_options(|n| options.get(n).map(Value::text)),
        2026,
    )
    .unwrap()
}

/// What banxdp's engine reports for each line: the date found and cut out (it must be the
/// line's own stamp), then the filter applied to the rest; no failure for `<F-NOFAIL>`.
fn banxdp_failures(filter: &str, mode: &str, lines: &[String]) -> BTreeMap<usize, Vec<String>> {
    use banxdp::filter::{
        Host,
        date::{Clock, Zone},
    };
    // 2026-11-21 12:00 UTC; the stamps are read as UTC.
    let clock = Clock {
        now: 1_795_262_400,
        zone: Zone::Offset(0),
    };
    let stamps_start = 1_795_262_400 - 5 * 3600;
    let mut scanner = banxdp_scanner(filter, mode);
    let mut found = BTreeMap::new();
    for (i, text) in lines.iter().enumerate() {
        let line = render(i, text);
        let read = scanner.line(&line, &clock);
        assert_eq!(
            read.template.map(|_| read.time.unwrap() - stamps_start),
            Some(i64::try_from(i).unwrap()),
            "time of `{line}`"
        );
        if let Some(f) = read.failures.into_iter().next() {
            if f.nofail {
                continue;
            }
            let hosts = match f.host {
                Host::Ip(a, _) => vec![a.to_string()],
                // A name counts as what it resolves to (usedns = warn), as in fail2ban; a name
                // that resolves to nothing bans nothing.
                Host::Name(n) => {
                    use std::net::ToSocketAddrs as _;
                    (n.as_str(), 0)
                        .to_socket_addrs()
                        .map(|addrs| addrs.map(|a| a.ip().to_string()).collect())
                        .unwrap_or_default()
                }
                Host::Id(n) => vec![n],
            };
            if !hosts.is_empty() {
                found.insert(i, hosts);
            }
        }
    }
    found
}

/// `banxdp regex --json` (the real binary) on the fixture's log, file by file as a user
/// runs it: the same failures, each with the line number and the time of its stamp.
fn banxdp_regex_cli(filter: &str, mode: &str, lines: &[String]) -> BTreeMap<usize, Vec<String>> {
    let dir = filter_dir(filter);
    let log_path = write_log(dir.path(), lines);
    let out = Command::new(env!("CARGO_BIN_EXE_banxdp-bin"))
        .env("TZ", "UTC")
        .args(["regex", "--json", "--config-dir"])
        .arg(dir.path())
        .arg(&log_path)
        .arg(format!("{filter}[mode={mode}]"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut found: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let failure: serde_json::Value = serde_json::from_str(line).unwrap();
        let number = usize::try_from(failure["line"].as_u64().unwrap()).unwrap();
        let index = number - 1;
        // The stamp `Nov 21 07:MM:SS` of line `index`, this year, in UTC.
        let time = failure["time"].as_str().unwrap();
        assert!(
            time.ends_with(&format!("-11-21T07:{:02}:{:02}Z", index / 60, index % 60)),
            "line {number}: time {time}"
        );
        found
            .entry(index)
            .or_default()
            .push(failure["host"].as_str().unwrap().to_string());
    }
    found
}

/// The shipped filters, each with its fixture.
fn shipped() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut filters: Vec<(String, String)> = std::fs::read_dir(root.join("config/filter.d"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let fixture = root.join(format!("tests/tests/fixtures/filters/{name}.txt"));
            let text = std::fs::read_to_string(&fixture)
                .unwrap_or_else(|_| panic!("{name}: no fixture {}", fixture.display()));
            (name, text)
        })
        .collect();
    filters.sort();
    filters
}

/// Runs `engine` on every shipped filter's fixture; fails listing every wrong line.
fn check_all(engine: Engine) {
    let mut failed = Vec::new();
    for (filter, text) in shipped() {
        let result = std::panic::catch_unwind(|| check_with(&filter, &text, engine));
        if let Err(panic) = result {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(ToString::to_string))
                .unwrap_or_default();
            failed.push(format!("{filter}: {why}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

#[test]
fn every_shipped_filter_reports_the_real_peer_or_nothing() {
    if !fail2ban_present("every_shipped_filter_reports_the_real_peer_or_nothing") {
        return;
    }
    check_all(failures);
}

#[test]
fn every_shipped_filter_reports_the_real_peer_or_nothing_with_banxdps_engine() {
    check_all(banxdp_failures);
}

#[test]
fn every_shipped_filter_through_banxdp_regex_matches_its_fixture() {
    check_all(banxdp_regex_cli);
}

#[test]
fn banxdp_regex_reads_debians_sshd_filter_with_its_failure_ids() {
    if !fail2ban_present("banxdp_regex_reads_debians_sshd_filter_with_its_failure_ids") {
        return;
    }
    // The stock filter finds the address on the connection's first line, counts the failure
    // on the next, and an accepted login (another connection) is no failure.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(
        &log,
        "Nov 21 07:00:00 h sshd[1]: Connection from 192.0.2.9 port 40000 on 192.0.2.1 port 22\n\
         Nov 21 07:00:01 h sshd[1]: Failed password for root from 192.0.2.9 port 40000 ssh2\n\
         Nov 21 07:00:02 h sshd[2]: Accepted password for alice from 192.0.2.10 port 40001 ssh2\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_banxdp-bin"))
        .env("TZ", "UTC")
        .args(["regex", "--json", "--config-dir", "/etc/fail2ban"])
        .arg(&log)
        .arg("sshd")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failures: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        (failures[0]["line"].as_u64(), failures[0]["host"].as_str()),
        (Some(2), Some("192.0.2.9"))
    );
}
