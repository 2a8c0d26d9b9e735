//! fail2ban action.d files run by banxdp's `action` module for real: Debian's own files and
//! banxdp's (`config/action.d`) on files in temp dirs, mail programs replaced by recorders on
//! `PATH` (no mail leaves), and log lines built to break out of the shell, which must reach
//! the action as inert text. Firewall actions are in `action_firewalls.rs`; equality with
//! fail2ban's reading and commands in `action_conformance.rs`.

mod action_support;

use std::path::Path;

use action_support::{DEBIAN, actions, ban, context, ours, read_jail, recorded, recorders};
use banxdp::action::{ActionSet, BanInfo};
use banxdp_tests::{Netns, privileged, with_netns};

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
        dir.path().join("not-yet/lock").display()
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
