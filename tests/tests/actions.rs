//! fail2ban action.d files run by banxdp's `action` module for real: Debian's own files and
//! banxdp's (`config/action.d`), firewall actions inside network namespaces this test made
//! (real rules, real packets), files in temp dirs, mail programs replaced by recorders on
//! `PATH` (no mail leaves), and a log line built to break out of the shell, which must reach
//! the action as inert text.

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
use banxdp_tests::{Netns, Topology, privileged, with_netns};

const DEBIAN: &str = "/etc/fail2ban/action.d";

fn ours() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/action.d")
}

/// Reads jail `t` of a configuration made of `action_d` and this jail section body.
fn read_jail(dir: &Path, action_d: &Path, body: &str) -> Jail {
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
fn context(bin: Option<&Path>) -> Context {
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

fn actions(jail: &Jail, ctx: Context) -> ActionSet {
    ActionSet::for_jail(jail, ctx, |_| true).unwrap().0
}

fn ban(ip: &str, bantime: i64) -> BanInfo {
    let mut info = BanInfo::new(parse_target(ip).unwrap(), SystemTime::now());
    info.bantime = bantime;
    info.failures = 3;
    info.matches = vec![format!("Failed password for root from {ip} port 22 ssh2")];
    info
}

fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `sendmail`, `mail` and `whois` that record their arguments and input under `rec/`.
fn recorders(dir: &Path) -> (PathBuf, PathBuf) {
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
fn recorded(rec: &Path) -> Vec<(String, Vec<String>, String)> {
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
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

// ---- files ------------------------------------------------------------------------------

const DENY: &str = "# /etc/hosts.deny: comments and foreign lines stay\n\
                    #  ALL: 192.0.2.7 (a comment, not a ban)\n\
                    sshd: 198.51.100.99\r\n\
                    \n\
                    ALL: .example.net EXCEPT trusted.example.net\n";

#[test]
fn banxdp_hostsdeny_keeps_the_rest_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts.deny");
    std::fs::write(&file, DENY).unwrap();
    let body = format!(
        "action = banxdp-hostsdeny[file={}, daemon_list=sshd, lockfile={}]",
        file.display(),
        dir.path().join("lock").display()
    );
    let jail = read_jail(dir.path(), &ours(), &body);
    let mut set = actions(&jail, context(None));
    set.start().unwrap();
    set.ban(&ban("192.0.2.7", 600)).unwrap();
    set.ban(&ban("192.0.2.7", 600)).unwrap();
    set.ban(&ban("2001:db8::7", 600)).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        text,
        format!("{DENY}sshd: 192.0.2.7\nsshd: [2001:db8::7]\n")
    );
    set.unban(&ban("192.0.2.7", 600)).unwrap();
    set.unban(&ban("192.0.2.7", 600)).unwrap();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{DENY}sshd: [2001:db8::7]\n")
    );
    set.unban(&ban("2001:db8::7", 600)).unwrap();
    set.stop().unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), DENY.as_bytes());
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn banxdp_hostsdeny_writers_take_turns() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts.deny");
    let body = format!(
        "action = banxdp-hostsdeny[file={}, lockfile={}]",
        file.display(),
        dir.path().join("lock").display()
    );
    let jail = read_jail(dir.path(), &ours(), &body);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let mut set = actions(&jail, context(None));
            std::thread::spawn(move || {
                for i in 0..10 {
                    set.ban(&ban(&format!("192.0.2.{}", t * 10 + i), 60))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines.dedup();
    assert_eq!(lines.len(), 40, "{text}");
}

#[test]
fn debian_hostsdeny_and_dummy_on_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts.deny");
    let dummy = dir.path().join("dummy");
    std::fs::write(&file, DENY).unwrap();
    let body = format!(
        "action = hostsdeny[file={}]\n         dummy[target={}]",
        file.display(),
        dummy.display()
    );
    let jail = read_jail(dir.path(), Path::new(DEBIAN), &body);
    let mut set = actions(&jail, context(None));
    assert_eq!(set.names(), ["hostsdeny", "dummy"]);
    set.start().unwrap();
    set.ban(&ban("192.0.2.7", 600)).unwrap();
    set.ban(&ban("2001:db8::7", 600)).unwrap();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{DENY}ALL: 192.0.2.7\nALL: [2001:db8::7]\n")
    );
    set.unban(&ban("192.0.2.7", 600)).unwrap();
    set.unban(&ban("2001:db8::7", 600)).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), DENY);
    assert_eq!(
        std::fs::read_to_string(&dummy).unwrap(),
        "123\n+192.0.2.7\n+2001:db8::7\n-192.0.2.7\n-2001:db8::7\n"
    );
    set.flush(&[]).unwrap();
    set.stop().unwrap();
    assert!(!dummy.exists(), "dummy's actionstop removes its file");
}

// ---- mail and the injection ---------------------------------------------------------------

/// A user name built to run `touch` in every way a shell could be tricked into it.
const EVIL_USER: &str =
    "`$(touch /tmp/pwned)`\"'; touch /tmp/pwned; echo \"\n$(touch /tmp/pwned) <ip> %s \\n";

fn evil_ban() -> BanInfo {
    let mut info = ban("192.0.2.66", 600);
    info.matches = vec![
        format!("sshd[1]: Invalid user {EVIL_USER} from 192.0.2.66 port 4711"),
        "sshd[1]: Failed password for invalid user x from 192.0.2.66".into(),
    ];
    info.fields.insert("user".into(), EVIL_USER.into());
    info
}

#[test]
fn mail_actions_send_what_they_should_and_run_nothing_from_the_log() {
    if !privileged("mail_actions_send_what_they_should_and_run_nothing_from_the_log") {
        return;
    }
    let _ = std::fs::remove_file("/tmp/pwned");
    let _ = std::fs::remove_file("/tmp/pwned-by-whois");
    let dir = tempfile::tempdir().unwrap();
    let (bin, rec) = recorders(dir.path());
    let body = "action = sendmail-whois-lines[dest=admin@example.org]\n         mail-whois[dest=admin@example.org]";
    let jail = read_jail(dir.path(), &ours(), body);
    let ns = Netns::new("bxm");
    let info = evil_ban();
    with_netns(&ns, || {
        let mut set = actions(&jail, context(Some(&bin)));
        set.start().unwrap();
        set.ban(&info).unwrap();
        let mut restored = ban("192.0.2.67", 600);
        restored.restored = true;
        set.ban(&restored).unwrap();
        set.stop().unwrap();
    });
    assert!(
        !Path::new("/tmp/pwned").exists(),
        "a log line ran a command"
    );
    assert!(
        !Path::new("/tmp/pwned-by-whois").exists(),
        "whois's answer ran a command"
    );
    let sent = recorded(&rec);
    let programs: Vec<&str> = sent.iter().map(|(p, _, _)| p.as_str()).collect();
    // Started, banned (not the restored ban: norestored), stopped; in the jail's order.
    assert_eq!(
        programs,
        ["sendmail", "mail", "sendmail", "mail", "sendmail", "mail"]
    );
    let (_, argv, message) = &sent[2];
    assert_eq!(argv, &["-i", "-f", "banxdp", "admin@example.org"]);
    assert!(
        message.starts_with("Subject: [banxdp] t: banned 192.0.2.66 from gw.example.org\nDate: "),
        "{message}"
    );
    assert!(
        message.contains("\nwhois answer for 192.0.2.66\n"),
        "{message}"
    );
    let lines = info.matches.join("\n");
    assert!(
        message.contains(&format!("\n\n{lines}\n")),
        "the lines arrive as written:\n{message}"
    );
    let (_, argv, body) = &sent[3];
    assert_eq!(
        argv,
        &[
            "-s",
            "[banxdp] t: banned 192.0.2.66 from gw.example.org",
            "admin@example.org"
        ]
    );
    assert!(
        body.contains("\n ~! touch /tmp/pwned-by-whois\n"),
        "tilde lines indented:\n{body}"
    );
    assert!(sent[0].2.contains("The jail t has started."));
}

#[test]
fn debian_mail_actions_with_the_same_log_line() {
    if !privileged("debian_mail_actions_with_the_same_log_line") {
        return;
    }
    let _ = std::fs::remove_file("/tmp/pwned");
    let dir = tempfile::tempdir().unwrap();
    let (bin, rec) = recorders(dir.path());
    let log = dir.path().join("auth.log");
    let info = evil_ban();
    std::fs::write(&log, info.matches.join("\n") + "\n").unwrap();
    let body = format!(
        "action = sendmail-whois-matches[dest=root, mailcmd='sendmail -f \"<sender>\" \"<dest>\"']\n         sendmail-whois-lines[dest=root, logpath={}, mailcmd='sendmail -f \"<sender>\" \"<dest>\"']",
        log.display()
    );
    let jail = read_jail(dir.path(), Path::new(DEBIAN), &body);
    let ns = Netns::new("bxm");
    with_netns(&ns, || {
        let mut set = actions(&jail, context(Some(&bin)));
        set.ban(&info).unwrap();
    });
    assert!(
        !Path::new("/tmp/pwned").exists(),
        "a log line ran a command"
    );
    let sent = recorded(&rec);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].1, ["-f", "fail2ban", "root"]);
    for (_, _, message) in &sent {
        assert!(
            message.contains("\nwhois answer for 192.0.2.66\n"),
            "{message}"
        );
    }
    // sendmail-whois-matches prints `<matches>` with `printf %b`, which turns the name's `\n`
    // into a new line: text changed, nothing run.
    let shown = EVIL_USER.replace("\\n", "\n");
    assert!(
        sent[0].2.contains(&format!("Invalid user {shown}")),
        "{}",
        sent[0].2
    );
    // sendmail-whois-lines greps the log for the address: the second half of the line.
    let (_, tail) = EVIL_USER.split_once('\n').unwrap();
    assert!(
        sent[1]
            .2
            .contains(&format!("\n{tail} from 192.0.2.66 port 4711\n")),
        "{}",
        sent[1].2
    );
}

#[test]
fn field_tags_are_inert_in_every_quoting() {
    let _ = std::fs::remove_file("/tmp/pwned");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(dir.path().join("action.d")).unwrap();
    std::fs::write(
        dir.path().join("action.d/echo.conf"),
        format!(
            "[Definition]\nactionban = printf '%%s|' <F-USER> > {o}.bare\n            printf '%%s' \"<F-USER>\" > {o}.double\n            v=`printf '%%s' \"<F-USER>\"`; printf '%%s' \"$v\" > {o}.backticks\n            printf '%%s' \"$(printf '%%s' \"<matches>\")\" > {o}.subst\n            printf '%%s' '<F-USER>' > {o}.single\n",
            o = out.display()
        ),
    )
    .unwrap();
    let jail = read_jail(dir.path(), &dir.path().join("action.d"), "action = echo");
    let mut set = actions(&jail, context(None));
    let info = evil_ban();
    set.ban(&info).unwrap();
    assert!(
        !Path::new("/tmp/pwned").exists(),
        "a log line ran a command"
    );
    let read = |ext: &str| std::fs::read_to_string(format!("{}.{ext}", out.display())).unwrap();
    assert_eq!(read("double"), EVIL_USER);
    assert_eq!(read("subst"), info.matches.join("\n"));
    // Unquoted, the shell splits the value into words (and would glob them), but runs none.
    let words: Vec<&str> = EVIL_USER.split_whitespace().collect();
    assert_eq!(read("bare"), words.join("|") + "|");
    assert_eq!(read("backticks"), EVIL_USER);
    // Single quotes keep the variable's name: useless, never dangerous.
    assert_eq!(read("single"), "${banxdp_F_USER}");
}

// ---- firewalls, with real packets ----------------------------------------------------------

const BANNED: &str = "203.0.113.7";
const OTHER: &str = "203.0.113.8";
const BANNED6: &str = "2001:db8:2::7";

/// What the victim's firewall holds, without what changes by itself (counters, expiries).
fn firewall_state(ns: &Netns) -> String {
    let mut out = String::new();
    for args in [
        &["nft", "list", "ruleset"][..],
        &["ipset", "list", "-t"][..],
    ] {
        for line in ns.exec(args).lines() {
            if !line.contains("expires")
                && !line.contains("elements")
                && !line.contains("Size in memory")
            {
                // Counters move with the test's own packets.
                let line = match line.find("counter packets") {
                    Some(at) => {
                        let rest = &line[at..];
                        let end = rest.find(" bytes ").map_or(rest.len(), |b| {
                            let tail = &rest[b + 7..];
                            b + 7 + tail.find(' ').unwrap_or(tail.len())
                        });
                        format!("{}counter{}", &line[..at], &rest[end..])
                    }
                    None => line.to_string(),
                };
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    // Sorted: a chain made again lists in another place; a duplicate still shows.
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    lines.join("\n")
}

/// How the daemon restarts between two sets of the same jail.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// As fail2ban does: the old set stops first (fail2ban's files need it).
    Stopped,
    /// As after a crash: the new set starts over what the old one left (banxdp's files).
    Crashed,
}

/// Runs a firewall action through a ban's life inside a fresh victim namespace: bans drop
/// (v4 and v6, to the jail's ports only unless `all_ports`), other sources pass, a restart
/// duplicates nothing, unban lifts, stop leaves no rule and nothing whose name holds `marker`.
fn firewall_round(action_d: &Path, action: &str, all_ports: bool, marker: &str, restart: Restart) {
    let dir = tempfile::tempdir().unwrap();
    let jail = read_jail(dir.path(), action_d, &format!("action = {action}"));
    let topo = Topology::new(&[BANNED, OTHER], &[BANNED6]);
    let victim = &topo.victim;
    assert_clean(victim, "a fresh namespace", marker);
    let run = |f: &mut dyn FnMut()| with_netns(victim, f);
    let mut set = actions(&jail, context(None));
    run(&mut || {
        set.start().unwrap();
        set.ban(&ban(BANNED, 600)).unwrap();
        set.ban(&ban(BANNED6, 600)).unwrap();
    });
    assert!(
        !topo.tcp_connects(BANNED, 8080),
        "{action}: banned source passed"
    );
    assert!(
        !topo.tcp_connects(BANNED6, 8081),
        "{action}: banned v6 source passed"
    );
    assert!(
        topo.tcp_connects(OTHER, 8080),
        "{action}: another source was dropped"
    );
    assert_eq!(
        topo.tcp_connects(BANNED, 9090),
        !all_ports,
        "{action}: port scope"
    );
    // The daemon restarts: a new set starts again and restores the same bans.
    let banned = firewall_state(victim);
    assert!(
        banned.contains(marker),
        "{action}: nothing named `{marker}`:\n{banned}"
    );
    let mut again = restarted(&jail, victim, &mut set, restart);
    assert_eq!(
        firewall_state(victim),
        banned,
        "{action}: the restart changed the rules"
    );
    run(&mut || {
        again.unban(&ban(BANNED, 600)).unwrap();
        // banxdp's files take an unban of what is not banned (fail2ban's need not).
        if restart == Restart::Crashed {
            again.unban(&ban(BANNED, 600)).unwrap();
        }
    });
    assert!(
        topo.tcp_connects(BANNED, 8080),
        "{action}: unbanned source dropped"
    );
    assert!(
        !topo.tcp_connects(BANNED6, 8081),
        "{action}: the other ban went too"
    );
    run(&mut || {
        again.flush(&[ban(BANNED6, 600)]).unwrap();
        again.stop().unwrap();
    });
    assert!(
        topo.tcp_connects(BANNED6, 8081),
        "{action}: stopped, still dropping"
    );
    assert_clean(victim, action, marker);
}

/// A new set for `jail` that starts as the daemon would after `restart` of `old`, and
/// restores the bans of [`firewall_round`].
fn restarted(jail: &Jail, victim: &Netns, old: &mut ActionSet, restart: Restart) -> ActionSet {
    let mut again = actions(jail, context(None));
    with_netns(victim, || {
        if restart == Restart::Stopped {
            old.stop().unwrap();
        }
        again.start().unwrap();
        for ip in [BANNED, BANNED6] {
            let mut info = ban(ip, 600);
            info.restored = true;
            again.ban(&info).unwrap();
        }
    });
    again
}

/// No rule and nothing named `marker` is left in `victim`'s firewall (iptables-nft leaves its
/// empty built-in tables and chains).
fn assert_clean(victim: &Netns, action: &str, marker: &str) {
    let after = firewall_state(victim);
    for word in [marker, "saddr", "jump", "drop", "reject", "match-set"] {
        assert!(
            !after.contains(word),
            "{action}: `{word}` left behind:\n{after}"
        );
    }
}

#[test]
fn debian_iptables_multiport_in_a_namespace() {
    if privileged("debian_iptables_multiport_in_a_namespace") {
        firewall_round(
            Path::new(DEBIAN),
            "iptables-multiport[name=t, port=\"8080,8081\", protocol=tcp]",
            false,
            "f2b-t",
            Restart::Stopped,
        );
    }
}

#[test]
fn debian_nftables_multiport_in_a_namespace() {
    if privileged("debian_nftables_multiport_in_a_namespace") {
        firewall_round(
            Path::new(DEBIAN),
            "nftables-multiport[name=t, port=\"8080,8081\", protocol=tcp]",
            false,
            "f2b-table",
            Restart::Stopped,
        );
    }
}

#[test]
fn banxdp_nftables_in_a_namespace() {
    if privileged("banxdp_nftables_in_a_namespace") {
        firewall_round(
            &ours(),
            "banxdp-nftables[name=t, port=\"8080,8081\", protocol=tcp]",
            false,
            "banxdp-actions",
            Restart::Crashed,
        );
        firewall_round(
            &ours(),
            "banxdp-nftables-allports[name=t]",
            true,
            "banxdp-actions",
            Restart::Crashed,
        );
    }
}

#[test]
fn banxdp_ipset_in_a_namespace() {
    if privileged("banxdp_ipset_in_a_namespace") {
        firewall_round(
            &ours(),
            "banxdp-ipset[name=t, port=\"8080,8081\", protocol=tcp]",
            false,
            "banxdp-t",
            Restart::Crashed,
        );
        firewall_round(
            &ours(),
            "banxdp-ipset-allports[name=t]",
            true,
            "banxdp-t",
            Restart::Crashed,
        );
    }
}

#[test]
fn banxdp_iptables_in_a_namespace() {
    if privileged("banxdp_iptables_in_a_namespace") {
        firewall_round(
            &ours(),
            "banxdp-iptables[name=t, port=\"8080,8081\", protocol=tcp]",
            false,
            "banxdp-t",
            Restart::Crashed,
        );
        firewall_round(
            &ours(),
            "banxdp-iptables-allports[name=t]",
            true,
            "banxdp-t",
            Restart::Crashed,
        );
    }
}

/// The kernel lifts a ban of banxdp's set actions when its time is up, with no command run.
#[test]
fn banxdp_set_actions_expire_in_the_kernel() {
    if !privileged("banxdp_set_actions_expire_in_the_kernel") {
        return;
    }
    for action in [
        "banxdp-nftables[name=t, port=8080]",
        "banxdp-ipset[name=t, port=8080]",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let jail = read_jail(dir.path(), &ours(), &format!("action = {action}"));
        let topo = Topology::new(&[BANNED], &[]);
        let mut set = actions(&jail, context(None));
        with_netns(&topo.victim, || {
            set.start().unwrap();
            set.ban(&ban(BANNED, 2)).unwrap();
        });
        assert!(!topo.tcp_connects(BANNED, 8080), "{action}: not banned");
        assert!(
            eventually(Duration::from_secs(10), || topo.tcp_connects(BANNED, 8080)),
            "{action}: the ban did not expire"
        );
        // An unban after the kernel's expiry is not an error.
        with_netns(&topo.victim, || {
            set.unban(&ban(BANNED, 2)).unwrap();
            set.stop().unwrap();
        });
    }
}

// ---- the command backend, through the `Enforcer` trait --------------------------------------

#[test]
fn command_enforcer_bans_through_banxdp_nftables() {
    use banxdp::{
        action::CommandEnforcer,
        enforce::{Enforcer as _, Expiry},
    };
    use banxdp_tests::{all_ports, ban_for, ban_until};
    if !privileged("command_enforcer_bans_through_banxdp_nftables") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let jail = read_jail(
        dir.path(),
        &ours(),
        "action = banxdp-nftables[name=t, port=8080]\n         mail-whois[dest=nobody]",
    );
    let (set, skipped) =
        ActionSet::for_jail(&jail, context(None), |name| name != "mail-whois").unwrap();
    assert!(skipped.is_empty());
    assert_eq!(set.names(), ["banxdp-nftables"]);
    let topo = Topology::new(&[BANNED, OTHER], &[BANNED6]);
    let victim = &topo.victim;
    let mut backend = CommandEnforcer::new(vec![set], context(None));
    with_netns(victim, || {
        backend.add_jail(&all_ports("t")).unwrap();
        backend
            .ban_many(&[ban_for("t", BANNED, 600), ban_for("t", BANNED6, 600)])
            .unwrap();
        backend.ban(&ban_for("t", BANNED, 900)).unwrap();
        backend
            .ban(&ban_until(
                "t",
                OTHER,
                Expiry::At(SystemTime::now() + Duration::from_secs(1)),
            ))
            .unwrap();
    });
    assert_eq!(backend.active().unwrap().len(), 3);
    assert!(!topo.tcp_connects(BANNED, 8080));
    assert!(!topo.tcp_connects(BANNED6, 8080));
    assert!(
        topo.tcp_connects(BANNED, 8081),
        "port scope from the action's `port`"
    );
    // The allow list wins over bans, and lets go again.
    with_netns(victim, || {
        backend
            .set_allowed(&[parse_target(BANNED).unwrap()])
            .unwrap();
    });
    assert!(
        topo.tcp_connects(BANNED, 8080),
        "an allowed source was dropped"
    );
    with_netns(victim, || backend.set_allowed(&[]).unwrap());
    assert!(!topo.tcp_connects(BANNED, 8080));
    // Expiry: the kernel's, and the backend's own index.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(with_netns(victim, || backend.remove_expired().unwrap()), 1);
    assert!(topo.tcp_connects(OTHER, 8080));
    with_netns(victim, || {
        backend.unban("t", parse_target(BANNED).unwrap()).unwrap();
    });
    assert!(topo.tcp_connects(BANNED, 8080));
    assert_eq!(backend.active().unwrap().len(), 1);
    assert!(
        backend.describe().contains("t: banxdp-nftables"),
        "{}",
        backend.describe()
    );
    with_netns(victim, || Box::new(backend).detach().unwrap());
    assert!(topo.tcp_connects(BANNED6, 8080), "detached, still dropping");
    let after = firewall_state(victim);
    assert!(!after.contains("banxdp"), "left behind:\n{after}");
}

#[test]
fn python_actions_are_named_and_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let jail = read_jail(
        dir.path(),
        Path::new(DEBIAN),
        "action = smtp.py[dest=root]\n         dummy[target=/dev/null]",
    );
    let (set, skipped) = ActionSet::for_jail(&jail, context(None), |_| true).unwrap();
    assert_eq!(set.names(), ["dummy"]);
    assert_eq!(skipped, ["smtp"]);
}

/// How long loading bans through each action takes (one `sh -c` per ban, as fail2ban runs
/// them). Not a pass/fail test: `cargo test -p banxdp-tests --release --test actions --
/// --ignored --nocapture load_time`, with `BANXDP_LOAD_BANS` bans (2000 by default).
#[test]
#[ignore = "a measurement"]
fn load_time() {
    if !privileged("load_time") {
        return;
    }
    let count: u32 = std::env::var("BANXDP_LOAD_BANS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().unwrap();
    let deny = dir.path().join("hosts.deny");
    let lock = dir.path().join("lock");
    let hostsdeny = format!(
        "banxdp-hostsdeny[file={}, lockfile={}]",
        deny.display(),
        lock.display()
    );
    for action in [
        "banxdp-nftables[name=t, port=8080]",
        "banxdp-ipset[name=t, port=8080]",
        "banxdp-iptables[name=t, port=8080]",
        &hostsdeny,
    ] {
        let ns = Netns::new("bxl");
        let jail = read_jail(dir.path(), &ours(), &format!("action = {action}"));
        let mut set = actions(&jail, context(None));
        let elapsed = with_netns(&ns, || {
            set.start().unwrap();
            let started = Instant::now();
            for i in 0..count {
                let [_, _, hi, lo] = i.to_be_bytes();
                set.ban(&ban(&format!("10.7.{hi}.{lo}"), 600)).unwrap();
            }
            let elapsed = started.elapsed();
            set.flush(&[]).unwrap();
            set.stop().unwrap();
            elapsed
        });
        let per_ban = elapsed / count;
        println!(
            "{action}: {count} bans in {elapsed:.2?} ({per_ban:.2?} per ban, 100,000 in about {:.0?})",
            per_ban * 100_000
        );
    }
}

/// banxdp's action files read the same in fail2ban and in banxdp: every operation and
/// parameter of `fail2ban-client -d` equals banxdp's stream for a jail using each file.
#[test]
fn banxdp_action_files_read_as_fail2ban_reads_them() {
    use serde_json::Value as Json;
    use std::fmt::Write as _;
    if !banxdp_tests::fail2ban_present(
        "banxdp_action_files_read_as_fail2ban_reads_them",
        "fail2ban-client",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::create_dir_all(base.join("filter.d")).unwrap();
    std::fs::write(
        base.join("filter.d/x.conf"),
        "[Definition]\nfailregex = ^x <HOST>$\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(ours(), base.join("action.d")).unwrap();
    let mut jails = String::new();
    let mut files: Vec<String> = std::fs::read_dir(ours())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| f.strip_suffix(".conf").map(str::to_string))
        .collect();
    files.sort();
    for (i, file) in files.iter().enumerate() {
        let _ = write!(
            jails,
            "[j{i}]\nenabled = true\nfilter = x\nlogpath = /dev/null\nport = ssh,2222\naction = {file}[protocol=\"tcp,udp\"]\n\n"
        );
    }
    std::fs::write(base.join("jail.conf"), jails).unwrap();
    let out = std::process::Command::new("fail2ban-client")
        .arg("-c")
        .arg(base)
        .arg("-d")
        .output()
        .unwrap();
    let to_json = "import ast, json, sys\nfor line in sys.stdin:\n    if line.startswith('['):\n        print(json.dumps(ast.literal_eval(line)))\n";
    let theirs: Vec<Json> = String::from_utf8(banxdp_tests::python(to_json, out.stdout))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ours = banxdp::config::fail2ban::dump_stream(&Disk, base)
        .unwrap()
        .stream;
    let jail_part = |stream: &[Json]| -> Vec<Json> {
        let first = stream.iter().position(|c| c[0] == "add").expect("jails");
        stream[first..].to_vec()
    };
    let (theirs, ours) = (jail_part(&theirs), jail_part(&ours));
    assert_eq!(theirs.len(), files.len() * 6, "{theirs:#?}");
    for (a, b) in theirs.iter().zip(&ours) {
        assert_eq!(a, b);
    }
    assert_eq!(theirs.len(), ours.len());
}

/// The whole way from a log line: banxdp's sshd filter reads the user name a client chose,
/// and the action receives it, and the line, as the text they are.
#[test]
fn a_user_name_from_a_real_filter_reaches_the_action_as_text() {
    use banxdp::{
        config::fail2ban::Value,
        filter::{Filter, FilterSpec, Outcome},
    };
    let _ = std::fs::remove_file("/tmp/pwned");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    let repo_filters = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/filter.d");
    std::os::unix::fs::symlink(repo_filters, conf.join("filter.d")).unwrap();
    let action_d = dir.path().join("action.d");
    std::fs::create_dir_all(&action_d).unwrap();
    let out = dir.path().join("out");
    std::fs::write(
        action_d.join("record.conf"),
        format!(
            "[Definition]\nactionban = printf '%%s' \"<F-USER>\" > {o}.user\n            printf '%%s' \"<matches>\" > {o}.matches\n",
            o = out.display()
        ),
    )
    .unwrap();
    let jail = read_jail(dir.path(), &action_d, "filter = sshd\naction = record");
    let options = jail.filter.as_ref().unwrap();
    let filter = Filter::new(&FilterSpec::from_options(|n| {
        options.get(n).map(Value::text)
    }))
    .unwrap();
    let user = "`$(touch /tmp/pwned)`\"'; touch /tmp/pwned; echo $HOME|&>x";
    let line = format!("gw sshd[4711]: Invalid user {user} from 192.0.2.66 port 4711");
    let Outcome::Failure(failure) = filter.check(&line) else {
        panic!("the sshd filter missed `{line}`");
    };
    let mut info = ban("192.0.2.66", 600);
    info.matches = vec![line.clone()];
    for (name, value) in &failure.fields {
        info.fields.insert((*name).to_string(), value.to_string());
    }
    assert_eq!(info.fields.get("user").map(String::as_str), Some(user));
    let mut set = actions(&jail, context(None));
    set.ban(&info).unwrap();
    assert!(
        !Path::new("/tmp/pwned").exists(),
        "a log line ran a command"
    );
    let read = |ext: &str| std::fs::read_to_string(format!("{}.{ext}", out.display())).unwrap();
    assert_eq!(read("user"), user);
    assert_eq!(read("matches"), line);
}

/// fail2ban's `CommandAction`, given the same properties: the commands of `ops` for an IPv4
/// and an IPv6 ban, and for the start-like operations per family. Host names are fixed.
const FAIL2BAN_COMMANDS: &str = r"
import json, sys
from fail2ban.server.ipdns import DNSUtils, IPAddr
DNSUtils.getHostname = staticmethod(lambda fqdn=True: 'gw.example.org' if fqdn else 'gw')
from fail2ban.server.action import CommandAction
out = []
for case in json.load(sys.stdin):
    a = CommandAction(None, case['name'])
    for k, v in case['props'].items():
        setattr(a, k, v)
    res = {}
    for fam, ip in (('inet4', '192.0.2.7'), ('inet6', '2001:db8::7')):
        rev = IPAddr(ip).getPTR('')
        # banxdp leaves `<ip-host>` empty where fail2ban would write `None`.
        info = {'ip': ip, 'family': fam, 'ip-rev': rev, 'ip-host': '', 'fid': ip, 'failures': '3',
                'ipfailures': '3', 'ipjailfailures': '3', 'time': '1000.0', 'bantime': '600',
                'bancount': '1', 'restored': '0', 'matches': 'm1', 'ipmatches': 'm1',
                'ipjailmatches': 'm1', 'F-*': {'user': 'root'}}
        for op in ('actionban', 'actionunban'):
            cmd = a.replaceTag('<%s>' % op, a._properties, conditional='family=' + fam)
            res['%s/%s' % (op, fam)] = a.replaceDynamicTags(cmd, info)
        for op in ('actionstart', 'actionstop', 'actionflush', 'actioncheck'):
            res['%s/%s' % (op, fam)] = a._getOperation('<%s>' % op, fam)
    out.append(res)
print(json.dumps(out))
";

/// Runs `script` with the Python that runs fail2ban (`fail2ban-client`'s `#!` line), which
/// may not be the first `python3` on `PATH`.
fn fail2ban_python(script: &str, input: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let client = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join("fail2ban-client"))
        .find(|p| p.exists())
        .expect("fail2ban-client on PATH");
    let text = std::fs::read_to_string(client).unwrap();
    let python = text
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("#!")
        .trim()
        .to_string();
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The script reads everything before it writes: no deadlock writing first.
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "fail2ban's python failed");
    out.stdout
}

/// Every Debian action file, read by banxdp and turned into commands by banxdp, gives the
/// commands fail2ban's own `CommandAction` gives for the same ban (log-line values inert
/// here: escaping is tested above).
#[test]
fn debian_actions_give_the_commands_fail2ban_gives() {
    use banxdp::{
        action::{Action, Family},
        config::fail2ban::JailAction,
    };
    use serde_json::{Value as Json, json};
    if !banxdp_tests::fail2ban_present(
        "debian_actions_give_the_commands_fail2ban_gives",
        "fail2ban-client",
    ) {
        return;
    }
    let mut names: Vec<String> = std::fs::read_dir(DEBIAN)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| f.strip_suffix(".conf").map(str::to_string))
        .filter(|n| !n.ends_with("-common") && n != "helpers-common")
        .collect();
    names.sort();
    assert!(
        names.len() > 40,
        "Debian ships more action files: {names:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    let ctx = Context {
        clock: || std::time::UNIX_EPOCH + Duration::from_secs(1000),
        ..context(None)
    };
    for name in &names {
        let sub = dir.path().join(name);
        let jail = read_jail(
            &sub,
            Path::new(DEBIAN),
            &format!("port = ssh,2222\naction = {name}"),
        );
        let JailAction::Command { options, .. } = &jail.actions[0] else {
            panic!("{name} is not a command action");
        };
        let props: serde_json::Map<String, Json> = options
            .iter()
            .map(|(k, v)| (k.clone(), json!(v.text())))
            .collect();
        cases.push(json!({"name": name, "props": props}));
        let mut action = Action::from_jail_action("t", &jail.actions[0])
            .unwrap()
            .unwrap();
        let mut mine = serde_json::Map::new();
        for (family, ip) in [(Family::Inet4, "192.0.2.7"), (Family::Inet6, "2001:db8::7")] {
            let mut info = BanInfo::new(
                parse_target(ip).unwrap(),
                std::time::UNIX_EPOCH + Duration::from_secs(1000),
            );
            info.failures = 3;
            info.bantime = 600;
            info.matches = vec!["m1".into()];
            info.fields.insert("user".into(), "root".into());
            for op in ["actionban", "actionunban"] {
                let script = action.script_for(op, family, Some(&info), &ctx).unwrap();
                mine.insert(format!("{op}/{}", family.as_str()), json!(script.text));
            }
            for op in ["actionstart", "actionstop", "actionflush", "actioncheck"] {
                let script = action.script_for(op, family, None, &ctx).unwrap();
                mine.insert(format!("{op}/{}", family.as_str()), json!(script.text));
            }
        }
        ours.push(Json::Object(mine));
    }
    let input = serde_json::to_vec(&cases).unwrap();
    let theirs: Vec<Json> =
        serde_json::from_slice(&fail2ban_python(FAIL2BAN_COMMANDS, &input)).unwrap();
    assert_eq!(theirs.len(), names.len());
    let mut differ = Vec::new();
    for ((name, a), b) in names.iter().zip(&theirs).zip(&ours) {
        for (key, value) in a.as_object().unwrap() {
            if b.get(key) != Some(value) {
                differ.push(format!(
                    "{name} {key}:\n  fail2ban: {value}\n  banxdp:   {}",
                    b.get(key).unwrap_or(&Json::Null)
                ));
            }
        }
    }
    assert!(
        differ.is_empty(),
        "{} differences:\n{}",
        differ.len(),
        differ.join("\n")
    );
}
