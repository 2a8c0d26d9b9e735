//! Bad configuration, one case at a time, through `banxdp dump`: each error names the file
//! and line and what was wrong; a bad jail is disabled and the others still load; when no
//! jail can run, or a file is not INI at all, the exit status is 2.

use std::{path::Path, process::Command};

/// A small configuration of this project's own: one good jail, its filter and action.
fn config_dir(local: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for sub in ["filter.d", "action.d"] {
        std::fs::create_dir(root.join(sub)).unwrap();
    }
    std::fs::write(
        root.join("jail.conf"),
        "[DEFAULT]\nbantime = 10m\nfindtime = 10m\nmaxretry = 5\n\n\
         [good]\nenabled = true\nfilter = f\naction = a\nlogpath = /nonexistent/good.log\n",
    )
    .unwrap();
    std::fs::write(
        root.join("filter.d/f.conf"),
        "[Definition]\nfailregex = ^bad <HOST>$\n",
    )
    .unwrap();
    std::fs::write(
        root.join("action.d/a.conf"),
        "[Definition]\nactionban = echo <ip>\nactionunban = echo <ip>\n",
    )
    .unwrap();
    std::fs::write(root.join("jail.local"), local).unwrap();
    dir
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn dump(dir: &Path) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_banxdp-bin"))
        .args(["dump", "--config-dir"])
        .arg(dir)
        .output()
        .unwrap();
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The bad jail is disabled with `message`; the good one loads; exit status 0.
fn assert_bad_jail(local: &str, message: &str) {
    let dir = config_dir(local);
    let out = dump(dir.path());
    let message = message.replace("{dir}", &dir.path().display().to_string());
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("[good]\n  backend = auto"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("[bad]\n  disabled: {message}")),
        "wanted `{message}` in:\n{}",
        out.stdout
    );
    assert!(out.stderr.contains(&message), "{}", out.stderr);
}

#[test]
fn a_missing_filter_disables_its_jail() {
    assert_bad_jail(
        "[bad]\nenabled = true\nfilter = nosuch\n",
        "jail `bad`: no filter `nosuch` (looked for filter.d/nosuch.conf and .local)",
    );
}

#[test]
fn an_unknown_action_disables_its_jail() {
    assert_bad_jail(
        "[bad]\nenabled = true\nfilter = f\naction = a\n         nosuch[name=x]\n",
        "jail `bad`: no action `nosuch` (looked for action.d/nosuch.conf and .local)",
    );
}

#[test]
fn a_bad_duration_names_file_and_line() {
    assert_bad_jail(
        "[bad]\nenabled = true\nfilter = f\nbantime = 10x\n",
        "{dir}/jail.local:4: jail `bad`: invalid bantime: `10x` is not a time: unknown unit `x`",
    );
    assert_bad_jail(
        "[DEFAULT]\nfindtime = soon\n[good]\nfindtime = 1h\n[bad]\nenabled = true\nfilter = f\n",
        "{dir}/jail.local:2: jail `bad`: invalid findtime: `soon` is not a time",
    );
}

#[test]
fn a_number_that_is_not_one_names_file_and_line() {
    assert_bad_jail(
        "[bad]\nenabled = true\nfilter = f\nmaxretry = five\n",
        "{dir}/jail.local:4: jail `bad`: invalid maxretry `five` (a whole number)",
    );
}

#[test]
fn an_undefined_interpolation_names_file_and_line() {
    assert_bad_jail(
        "[bad]\nenabled = true\nfilter = f\naction = %(nosuch)s\n",
        "jail `bad`: {dir}/jail.local:4: option `action` of [bad]: `%(nosuch)s` is not defined",
    );
}

#[test]
fn a_bad_action_list_disables_its_jail() {
    assert_bad_jail(
        "[bad]\nenabled = true\nfilter = f\naction = a[name=x, =y]\n",
        // As in fail2ban, the list splits at the space: `a[name=x,` is what is wrong.
        "jail `bad`: invalid action `a[name=x,`: unexpected syntax in `a[name=x,`",
    );
}

#[test]
fn an_include_loop_is_reported_and_cut() {
    let dir = config_dir("[looped]\nenabled = true\nfilter = loop\n");
    std::fs::write(
        dir.path().join("filter.d/loop.conf"),
        "[INCLUDES]\nbefore = loop2.conf\n[Definition]\nfailregex = ^x <HOST>$\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("filter.d/loop2.conf"),
        "[INCLUDES]\nbefore = loop.conf\n[Definition]\n_daemon = x\n",
    )
    .unwrap();
    let out = dump(dir.path());
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let wanted = format!(
        "include loop: `{0}/filter.d/loop2.conf` includes `{0}/filter.d/loop.conf`, which is already being read; skipped",
        dir.path().display()
    );
    assert!(out.stderr.contains(&wanted), "{}", out.stderr);
    assert!(
        out.stdout.contains("[looped]\n  backend = auto"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_section_without_a_name_stops_with_file_and_line() {
    let dir = config_dir("[good]\nmaxretry = 3\n\n[]\nenabled = true\n");
    let out = dump(dir.path());
    assert_eq!(out.code, Some(2));
    let wanted = format!(
        "{}/jail.local:4: `[]` is neither a [section] header nor `name = value`",
        dir.path().display()
    );
    assert!(out.stderr.contains(&wanted), "{}", out.stderr);
}

#[test]
fn no_jail_that_can_run_exits_2_and_lists_every_problem() {
    let dir = config_dir(
        "[good]\nenabled = false\n[bad1]\nenabled = true\nfilter = nosuch\n\
         [bad2]\nenabled = true\nfilter = f\nbantime = forever\n",
    );
    let out = dump(dir.path());
    assert_eq!(out.code, Some(2), "{}", out.stdout);
    assert!(
        out.stderr.contains("jail `bad1`: no filter `nosuch`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("jail `bad2`: invalid bantime"),
        "{}",
        out.stderr
    );
}
