//! banxdp reads a fail2ban configuration as fail2ban does: `banxdp dump --fail2ban-stream`
//! must print, command for command, what `fail2ban-client -d` of the installed fail2ban
//! (Debian's 1.0.2) prints for the same directory, its Python literals turned into JSON.
//! Three directories: /etc/fail2ban as shipped; a copy with every jail of jail.conf enabled;
//! a copy whose jail.local, jail.d and filter.d/*.local override things.
//!
//! One allowed difference: the order of log files matched by one `logpath` glob, which
//! fail2ban takes from the directory listing (arbitrary) and banxdp sorts.

use std::{path::Path, process::Command};

use std::fmt::Write as _;

use serde_json::Value as Json;

fn fail2ban_present(test: &str) -> bool {
    banxdp_tests::fail2ban_present(test, "fail2ban-client")
}

const TO_JSON: &str = r"
import ast, json, sys
for line in sys.stdin:
    if line.startswith('['):
        print(json.dumps(ast.literal_eval(line)))
";

fn fail2ban_stream(dir: &Path) -> Vec<Json> {
    let out = Command::new("fail2ban-client")
        .arg("-c")
        .arg(dir)
        .arg("-d")
        .output()
        .expect("run fail2ban-client");
    parse_lines(&banxdp_tests::python(TO_JSON, out.stdout))
}

fn banxdp_stream(dir: &Path) -> Vec<Json> {
    let out = Command::new(env!("CARGO_BIN_EXE_banxdp-bin"))
        .args(["dump", "--fail2ban-stream", "--config-dir"])
        .arg(dir)
        .output()
        .expect("run banxdp dump");
    assert!(
        out.status.success(),
        "banxdp dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_lines(&out.stdout)
}

fn parse_lines(bytes: &[u8]) -> Vec<Json> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Sorts each run of consecutive `addlogpath` commands (one glob's matches).
fn normalize(mut stream: Vec<Json>) -> Vec<Json> {
    let is_logpath = |c: &Json| c.get(2).and_then(Json::as_str) == Some("addlogpath");
    let mut i = 0;
    while i < stream.len() {
        let start = i;
        while i < stream.len() && is_logpath(&stream[i]) {
            i += 1;
        }
        stream[start..i].sort_by_key(ToString::to_string);
        i = i.max(start + 1);
    }
    stream
}

fn assert_same_stream(dir: &Path) {
    let theirs = normalize(fail2ban_stream(dir));
    let ours = normalize(banxdp_stream(dir));
    assert!(
        theirs.len() > 8,
        "fail2ban printed too little for {}: {theirs:?}",
        dir.display()
    );
    for (i, (a, b)) in theirs.iter().zip(&ours).enumerate() {
        assert_eq!(a, b, "command {i} differs for {}", dir.display());
    }
    assert_eq!(
        theirs.len(),
        ours.len(),
        "stream lengths differ for {}",
        dir.display()
    );
}

/// A jail.local enabling every jail section of `dir`'s jail.conf.
fn enable_every_jail(dir: &Path) -> String {
    let jail_conf = std::fs::read_to_string(dir.join("jail.conf")).unwrap();
    let mut local = String::new();
    for line in jail_conf.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if name != "INCLUDES" && name != "DEFAULT" {
                let _ = write!(local, "[{name}]\nenabled = true\n\n");
            }
        }
    }
    local
}

fn copy_of_etc_fail2ban() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    banxdp_tests::sh(&[
        "cp",
        "-r",
        "/etc/fail2ban/.",
        &dir.path().display().to_string(),
    ]);
    dir
}

#[test]
fn stock_configuration_reads_as_fail2ban_reads_it() {
    if !fail2ban_present("stock_configuration_reads_as_fail2ban_reads_it") {
        return;
    }
    assert_same_stream(Path::new("/etc/fail2ban"));
}

#[test]
fn every_stock_jail_enabled_reads_as_fail2ban_reads_it() {
    if !fail2ban_present("every_stock_jail_enabled_reads_as_fail2ban_reads_it") {
        return;
    }
    let dir = copy_of_etc_fail2ban();
    let local = enable_every_jail(dir.path());
    assert!(
        local.matches("enabled").count() > 80,
        "jail.conf has its ~90 jails"
    );
    std::fs::write(dir.path().join("jail.local"), local).unwrap();
    assert_same_stream(dir.path());
}

#[test]
fn local_overrides_read_as_fail2ban_reads_them() {
    if !fail2ban_present("local_overrides_read_as_fail2ban_reads_them") {
        return;
    }
    let dir = copy_of_etc_fail2ban();
    let root = dir.path();
    std::fs::create_dir_all(root.join("logs")).unwrap();
    for log in ["a.log", "b.log", "c.log"] {
        std::fs::write(root.join("logs").join(log), "").unwrap();
    }
    std::fs::write(
        root.join("jail.local"),
        include_str!("fixtures/overrides/jail.local"),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("jail.d")).unwrap();
    std::fs::write(
        root.join("jail.d/custom.conf"),
        include_str!("fixtures/overrides/jail.d/custom.conf"),
    )
    .unwrap();
    std::fs::write(
        root.join("jail.d/z.local"),
        include_str!("fixtures/overrides/jail.d/z.local"),
    )
    .unwrap();
    std::fs::write(
        root.join("filter.d/sshd.local"),
        include_str!("fixtures/overrides/filter.d/sshd.local"),
    )
    .unwrap();
    std::fs::write(
        root.join("filter.d/mycustom.conf"),
        include_str!("fixtures/overrides/filter.d/mycustom.conf"),
    )
    .unwrap();
    std::fs::write(
        root.join("action.d/myaction.conf"),
        include_str!("fixtures/overrides/action.d/myaction.conf"),
    )
    .unwrap();
    assert_same_stream(root);
}

/// Every pattern of every stock filter (as fail2ban reads them for the stock jails, all
/// enabled) compiles with banxdp's engine, each on the engine it needs.
#[test]
fn every_stock_filter_pattern_compiles() {
    use banxdp::{
        config::{dump_stream, fail2ban::Disk},
        filter::pattern::{Compiled, Engine},
    };
    if !fail2ban_present("every_stock_filter_pattern_compiles") {
        return;
    }
    let dir = copy_of_etc_fail2ban();
    let local = enable_every_jail(dir.path());
    std::fs::write(dir.path().join("jail.local"), local).unwrap();
    let dump = dump_stream(&Disk, dir.path()).unwrap();
    let (mut patterns, mut backtracking) = (0, 0);
    let mut failures = Vec::new();
    for jail in &dump.jails {
        let Some(filter) = &jail.filter else { continue };
        let usedns = filter
            .get("usedns")
            .or_else(|| jail.options.get("usedns"))
            .map_or_else(|| "warn".to_string(), banxdp::config::fail2ban::Value::text);
        for option in ["prefregex", "failregex", "ignoreregex"] {
            let Some(value) = filter.get(option).or_else(|| jail.options.get(option)) else {
                continue;
            };
            for pattern in value.text().split('\n').filter(|p| !p.is_empty()) {
                patterns += 1;
                match Compiled::new(pattern, &usedns).map(|c| c.engine()) {
                    Ok(Engine::Backtracking) => backtracking += 1,
                    Ok(_) => {}
                    Err(e) => failures.push(format!("[{}] {option}: {e}", jail.name)),
                }
            }
        }
    }
    eprintln!("{patterns} patterns, {backtracking} need the backtracking engine");
    assert!(
        patterns > 200,
        "the stock jails' filters have over 200 patterns ({patterns})"
    );
    assert!(
        failures.is_empty(),
        "{} do not compile:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
