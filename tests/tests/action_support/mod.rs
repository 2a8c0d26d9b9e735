//! What the action tests share: configurations read from a temp dir, contexts, bans, mail
//! recorders on `PATH`, waiting for a condition.

#![allow(
    dead_code,
    reason = "each test target uses its own part of these helpers"
)]

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use banxdp::{
    action::{ActionSet, BanInfo, Context, HostNames, Shell},
    config::fail2ban::{Disk, Jail, jail},
    enforce::parse_target,
};

pub const DEBIAN: &str = "/etc/fail2ban/action.d";

pub fn ours() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/action.d")
}

/// Reads jail `t` of a configuration made of `action_d` and this jail section body.
pub fn read_jail(dir: &Path, action_d: &Path, body: &str) -> Jail {
    let base = dir.join("conf");
    std::fs::create_dir_all(&base).unwrap();
    let link = base.join("action.d");
    if !link.exists() {
        std::os::unix::fs::symlink(action_d, &link).unwrap();
    }
    std::fs::write(
        base.join("jail.conf"),
        format!("[t]\nenabled = true\n{body}\n"),
    )
    .unwrap();
    let mut reader = jail::Reader {
        files: &Disk,
        basedir: base,
        cache: banxdp::config::fail2ban::store::FileCache::default(),
        loops: Vec::new(),
    };
    let mut jails = jail::read_jails(&mut reader).unwrap();
    let jail = jails.pop().expect("jail t");
    assert!(jail.error.is_none(), "{:?}", jail.error);
    jail
}

/// A context whose `PATH` starts with `bin` (when given).
pub fn context(bin: Option<&Path>) -> Context {
    let mut shell = Shell::default();
    if let Some(bin) = bin {
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        shell.env.push(("PATH".into(), path));
    }
    Context {
        shell,
        host: HostNames {
            fq: "gw.example.org".into(),
            short: "gw".into(),
        },
        clock: SystemTime::now,
        reverse: |_| None,
    }
}

pub fn actions(jail: &Jail, ctx: Context) -> ActionSet {
    ActionSet::for_jail(jail, ctx, |_| true).unwrap().0
}

pub fn ban(ip: &str, bantime: i64) -> BanInfo {
    let mut info = BanInfo::new(parse_target(ip).unwrap(), SystemTime::now());
    info.bantime = bantime;
    info.failures = 3;
    info.matches = vec![format!("Failed password for root from {ip} port 22 ssh2")];
    info
}

pub fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `sendmail`, `mail` and `whois` that record their arguments and input under `rec/`.
pub fn recorders(dir: &Path) -> (PathBuf, PathBuf) {
    let bin = dir.join("bin");
    let rec = dir.join("rec");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&rec).unwrap();
    for name in ["sendmail", "mail"] {
        write_script(
            &bin.join(name),
            &format!(
                "#!/bin/sh\nn=$(ls {rec} | wc -l)\nprintf '%s\\n' \"$@\" > {rec}/$n.{name}.argv\ncat > {rec}/$n.{name}.stdin\n",
                rec = rec.display()
            ),
        );
    }
    write_script(
        &bin.join("whois"),
        "#!/bin/sh\necho \"whois answer for $1\"\necho '~! touch /tmp/pwned-by-whois'\n",
    );
    (bin, rec)
}

/// The recorded messages, in order: (program, argv lines, input).
pub fn recorded(rec: &Path) -> Vec<(String, Vec<String>, String)> {
    let mut out = Vec::new();
    for n in (0..).step_by(2) {
        let Some(program) = ["sendmail", "mail"]
            .into_iter()
            .find(|p| rec.join(format!("{n}.{p}.argv")).exists())
        else {
            break;
        };
        let read = |ext: &str| std::fs::read_to_string(rec.join(format!("{n}.{program}.{ext}")));
        let argv = read("argv").unwrap();
        let stdin = read("stdin").unwrap();
        out.push((
            program.to_string(),
            argv.lines().map(str::to_string).collect(),
            stdin,
        ));
    }
    out
}

/// Waits until `cond` holds, at most `limit`.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}
