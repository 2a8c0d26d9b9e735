//! The filters banxdp ships (`config/filter.d`), checked line by line against fixtures of
//! log lines that must count as failures from a given address, or must not count at all,
//! including lines crafted to frame another address.
//!
//! Until banxdp's own filter engine lands, the engine that runs them here is the installed
//! fail2ban's (`fail2ban-regex`), the reference banxdp's engine must agree with; the
//! fixtures stay as they are when it changes.

use std::{collections::BTreeMap, fmt::Write as _, path::Path, process::Command};

fn fail2ban_present(test: &str) -> bool {
    if Command::new("fail2ban-regex")
        .arg("--help")
        .output()
        .is_ok()
    {
        return true;
    }
    assert!(
        std::env::var("BANXDP_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
        "{test}: needs fail2ban-regex (apt-get install fail2ban)"
    );
    eprintln!("skipped {test}: needs fail2ban-regex (apt-get install fail2ban)");
    false
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

/// Line `i` is stamped `Nov 21 07:MM:SS` with `i = MM * 60 + SS`, so that a failure's time
/// says which line it came from.
fn stamp(i: usize) -> String {
    format!("Nov 21 07:{:02}:{:02}", i / 60, i % 60)
}

const ROWS: &str = r"
import ast, datetime, sys
for line in sys.stdin:
    line = line.strip().rstrip(',')
    if line.startswith('['):
        ip, t, fields = ast.literal_eval(line)
        when = datetime.datetime.fromtimestamp(t)
        print(when.minute * 60 + when.second, ip)
";

/// Runs `fail2ban-regex` with `filter` (file name under config/filter.d) in `mode`.
fn failures(filter: &str, mode: &str, lines: &[String]) -> BTreeMap<usize, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("filter.d")).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/filter.d");
    std::fs::copy(
        shipped.join(format!("{filter}.conf")),
        dir.path().join(format!("filter.d/{filter}.conf")),
    )
    .unwrap();
    let mut log = String::new();
    for (i, l) in lines.iter().enumerate() {
        let _ = writeln!(log, "{} {l}", stamp(i));
    }
    let log_path = dir.path().join("test.log");
    std::fs::write(&log_path, log).unwrap();
    let out = Command::new("fail2ban-regex")
        .args(["-o", "row", "--config"])
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
    let rows = Command::new("python3")
        .args(["-c", ROWS])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut rows = rows;
    let mut stdin = rows.stdin.take().unwrap();
    let feed = out.stdout.clone();
    let feeder = std::thread::spawn(move || {
        use std::io::Write as _;
        stdin.write_all(&feed).unwrap();
    });
    let parsed = rows.wait_with_output().unwrap();
    feeder.join().unwrap();
    let mut found: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&parsed.stdout).lines() {
        let (index, ip) = line.split_once(' ').unwrap();
        found
            .entry(index.parse().unwrap())
            .or_default()
            .push(ip.to_string());
    }
    found
}

fn check(filter: &str, fixture_text: &str) {
    let sections = fixture(fixture_text);
    assert!(!sections.is_empty());
    let mut problems = Vec::new();
    let mut checked = 0;
    for section in &sections {
        let logs: Vec<String> = section.lines.iter().map(|(_, l)| l.clone()).collect();
        let found = failures(filter, &section.mode, &logs);
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

#[test]
fn sshd_filter_reports_the_real_peer_or_nothing() {
    if !fail2ban_present("sshd_filter_reports_the_real_peer_or_nothing") {
        return;
    }
    check("sshd", include_str!("fixtures/filters/sshd.txt"));
}
