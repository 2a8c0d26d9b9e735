//! Tests of [`super::Action`]: each operation's order and conditions, run by a real `sh`.

use std::{path::Path, time::UNIX_EPOCH};

use super::*;
use crate::action::{HostNames, Shell};

fn ctx() -> Context {
    Context {
        shell: Shell::default(),
        host: HostNames {
            fq: "gw.example.org".into(),
            short: "gw".into(),
        },
        clock: || UNIX_EPOCH,
        reverse: |addr| Some(format!("host-of-{addr}`x`")),
    }
}

fn action(log: &Path, pairs: &[(&str, &str)]) -> Action {
    let mut props: IndexMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    props.insert("log".into(), log.display().to_string());
    props.insert("name".into(), "sshd".into());
    Action::new("sshd", "test", props).unwrap()
}

fn ban(ip: &str) -> BanInfo {
    BanInfo::new(crate::enforce::parse_target(ip).unwrap(), UNIX_EPOCH)
}

fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn start_ban_unban_stop_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut a = action(
        &log,
        &[
            ("actionstart", "echo start <name> >> <log>"),
            ("actionban", "echo ban <ip> <family> <bantime> >> <log>"),
            ("actionunban", "echo unban <ip> \"<ip-host>\" >> <log>"),
            ("actionstop", "echo stop '<ip-host>' >> <log>"),
        ],
    );
    let ctx = ctx();
    a.start(&ctx).unwrap();
    a.start(&ctx).unwrap();
    // An unban before any ban runs nothing.
    a.unban(&ban("192.0.2.9"), &ctx).unwrap();
    assert!(a.ban(&ban("192.0.2.7"), &ctx).unwrap());
    a.ban(&ban("2001:db8::7"), &ctx).unwrap();
    a.unban(&ban("192.0.2.7"), &ctx).unwrap();
    a.stop(&ctx).unwrap();
    a.stop(&ctx).unwrap();
    assert_eq!(
        lines(&log),
        [
            "start sshd",
            "ban 192.0.2.7 inet4 -1",
            "ban 2001:db8::7 inet6 -1",
            // The resolver's answer is not the administrator's: it is quoted like a log line.
            "unban 192.0.2.7 host-of-192.0.2.7`x`",
            // No ban, no address to name.
            "stop <ip-host>"
        ]
    );
}

#[test]
fn family_variants_start_on_demand_per_family() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut a = action(
        &log,
        &[
            ("tool", "iptables"),
            ("tool?family=inet6", "ip6tables"),
            ("actionstart", "echo start <tool> >> <log>"),
            ("actionban", "echo ban <tool> <ip> >> <log>"),
            ("actionstop", "echo stop <tool> >> <log>"),
            ("actionflush", "echo flush <tool> >> <log>"),
        ],
    );
    let ctx = ctx();
    a.start(&ctx).unwrap();
    assert!(lines(&log).is_empty(), "started before its first ban");
    a.ban(&ban("192.0.2.7"), &ctx).unwrap();
    a.ban(&ban("192.0.2.8"), &ctx).unwrap();
    a.ban(&ban("2001:db8::7"), &ctx).unwrap();
    assert!(a.flush(&ctx).unwrap());
    a.stop(&ctx).unwrap();
    assert_eq!(
        lines(&log),
        [
            "start iptables",
            "ban iptables 192.0.2.7",
            "ban iptables 192.0.2.8",
            "start ip6tables",
            "ban ip6tables 2001:db8::7",
            "flush iptables",
            "flush ip6tables",
            "stop iptables",
            "stop ip6tables",
        ]
    );
}

#[test]
fn the_same_start_for_both_families_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut a = action(
        &log,
        &[
            ("x?family=inet6", "same"),
            ("x", "same"),
            ("actionstart", "echo start <x> >> <log>"),
            ("actionban", "echo ban <ip> >> <log>"),
        ],
    );
    let ctx = ctx();
    a.ban(&ban("192.0.2.7"), &ctx).unwrap();
    a.ban(&ban("2001:db8::7"), &ctx).unwrap();
    assert_eq!(
        lines(&log),
        ["start same", "ban 192.0.2.7", "ban 2001:db8::7"]
    );
}

#[test]
fn restored_bans_skip_norestored_actions() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let ctx = ctx();
    let mut restored = ban("192.0.2.7");
    restored.restored = true;
    for (norestored, want) in [
        ("true", vec![]),
        ("false", vec!["ban 192.0.2.7 1", "unban 192.0.2.7"]),
    ] {
        let _ = std::fs::remove_file(&log);
        let mut a = action(
            &log,
            &[
                ("norestored", norestored),
                ("actionban", "echo ban <ip> <restored> >> <log>"),
                ("actionunban", "echo unban <ip> >> <log>"),
            ],
        );
        assert_eq!(a.ban(&restored, &ctx).unwrap(), norestored == "false");
        a.unban(&restored, &ctx).unwrap();
        assert_eq!(lines(&log), want);
    }
}

#[test]
fn a_failed_ban_checks_restarts_and_retries_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let ready = dir.path().join("ready");
    let ready = ready.display();
    let start = format!("echo start >> <log>; touch {ready}");
    let ban_cmd = format!("echo try <ip> >> <log>; [ -e {ready} ]");
    let check = format!("echo check >> <log>; [ -e {ready} ]");
    let mut a = action(
        &log,
        &[
            ("actionstart", &start),
            ("actionstop", &format!("echo stop >> <log>; rm -f {ready}")),
            ("actioncheck", &check),
            ("actionban", &ban_cmd),
        ],
    );
    let ctx = ctx();
    a.start(&ctx).unwrap();
    std::fs::remove_file(dir.path().join("ready")).unwrap();
    a.ban(&ban("192.0.2.7"), &ctx).unwrap();
    assert_eq!(
        lines(&log),
        [
            "start",
            "try 192.0.2.7",
            "check",
            "stop",
            "start",
            "check",
            "try 192.0.2.7"
        ]
    );
    // A command that keeps failing is an error naming the jail, the action and the step.
    let mut chatty = action(
        &log,
        &[("actionban", "printf 'é%.0s' $(seq 600) >&2; exit 1")],
    );
    let err = chatty.ban(&ban("192.0.2.7"), &ctx).unwrap_err().to_string();
    assert!(err.ends_with("é..."), "{err}");
    assert!(err.len() < 1100, "{}", err.len());
    let mut silent = action(&log, &[("actionban", "exit 1")]);
    let err = silent.ban(&ban("192.0.2.7"), &ctx).unwrap_err().to_string();
    assert!(err.ends_with("status 1: (nothing on stderr)"), "{err}");
    let mut broken = action(&log, &[("actionban", "echo nope >&2; exit 4")]);
    let err = broken.ban(&ban("192.0.2.7"), &ctx).unwrap_err().to_string();
    assert_eq!(
        err,
        "jail `sshd`: action `test`: `actionban` exited with status 4: nope"
    );
}

#[test]
fn an_unban_does_not_repair_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut a = action(
        &log,
        &[
            ("actionstart", "echo start >> <log>"),
            ("actioncheck", "echo check >> <log>; false"),
            ("actionban", "echo ban >> <log>"),
            ("actionunban", "echo unban >> <log>; false"),
        ],
    );
    let ctx = ctx();
    a.start(&ctx).unwrap();
    a.ban(&ban("192.0.2.7"), &ctx).unwrap();
    assert!(a.unban(&ban("192.0.2.7"), &ctx).is_err());
    assert_eq!(lines(&log), ["start", "ban", "unban", "check"]);
}

#[test]
fn flush_needs_a_command_and_bans() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let ctx = ctx();
    let mut none = action(&log, &[("actionban", "true")]);
    assert!(!none.flush(&ctx).unwrap());
    let mut a = action(
        &log,
        &[
            ("actionflush", "echo flush >> <log>"),
            ("actionban", "true"),
        ],
    );
    assert!(a.flush(&ctx).unwrap());
    assert!(lines(&log).is_empty(), "flushed with nothing banned");
    a.ban(&ban("192.0.2.7"), &ctx).unwrap();
    a.flush(&ctx).unwrap();
    a.flush(&ctx).unwrap();
    assert_eq!(lines(&log), ["flush"]);
}

#[test]
fn timeouts_and_bad_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let ctx = ctx();
    let mut slow = action(&log, &[("timeout", "0.2"), ("actionban", "sleep 5")]);
    let err = slow.ban(&ban("192.0.2.7"), &ctx).unwrap_err().to_string();
    assert!(
        err.contains("`actionban`: still running after 200ms"),
        "{err}"
    );
    let props = |pairs: &[(&str, &str)]| -> IndexMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    };
    let err = Action::new("sshd", "t", props(&[("timeout", "1m")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "jail `sshd`: action `t`: invalid timeout `1m` (seconds, above 0)"
    );
    let err = Action::new("sshd", "t", props(&[("a", "<b>"), ("b", "<a>")])).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("jail `sshd`: action `t`: tags refer"),
        "{err}"
    );
}
