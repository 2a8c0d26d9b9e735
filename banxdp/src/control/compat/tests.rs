//! fail2ban-client's command line as banxdp reads it, and what it answers without a daemon.
//! What the commands print against a daemon is compared with fail2ban-client's own output in
//! `tests/tests/fail2ban_client.rs`.

use std::path::PathBuf;

use super::*;

fn args(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

fn read(text: &str) -> Command {
    parse(&args(text)).unwrap().command
}

fn refused(text: &str) -> UsageError {
    parse(&args(text)).unwrap_err()
}

fn net(text: &str) -> IpNet {
    crate::enforce::parse_target(text).unwrap()
}

fn words(text: &str) -> Vec<String> {
    args(text)
}

#[test]
fn the_commands_read_as_fail2ban_client_reads_them() {
    assert_eq!(read("ping"), Command::Ping);
    assert_eq!(read("ping 0.5"), Command::Ping);
    assert_eq!(read(""), Command::Usage);
    assert_eq!(
        read("status"),
        Command::Status {
            jail: None,
            short: false
        }
    );
    assert_eq!(
        read("status sshd short"),
        Command::Status {
            jail: Some("sshd".into()),
            short: true
        }
    );
    assert_eq!(
        read("set sshd banip 192.0.2.7 2001:db8::/64 192.0.2.9/24"),
        Command::BanIp {
            jail: "sshd".into(),
            targets: vec![net("192.0.2.7"), net("2001:db8::/64"), net("192.0.2.0/24")]
        }
    );
    assert_eq!(
        read("set sshd unbanip --report-absent 192.0.2.7 x"),
        Command::UnbanIp {
            jail: "sshd".into(),
            words: words("192.0.2.7 x"),
            report_absent: true
        }
    );
    assert_eq!(read("unban --all"), Command::UnbanAll);
    assert_eq!(
        read("unban 192.0.2.7 192.0.2.0/24"),
        Command::Unban {
            words: words("192.0.2.7 192.0.2.0/24")
        }
    );
    assert_eq!(read("banned"), Command::Banned { words: vec![] });
    assert_eq!(
        read("get sshd banip ,"),
        Command::GetBanIp {
            jail: "sshd".into(),
            separator: ",".into()
        }
    );
    assert_eq!(
        read("reload --restart --unban sshd"),
        Command::Reload {
            jail: Some("sshd".into()),
            unban: true
        }
    );
}

#[test]
fn options_are_read_as_getopt_reads_them_and_only_a_foreign_socket_is_kept() {
    let fail2ban = parse(&args(
        "-q -c /etc/fail2ban -s /var/run/fail2ban/fail2ban.sock ping",
    ))
    .unwrap();
    assert_eq!(fail2ban.socket, None, "fail2ban's socket means banxdp's");
    assert_eq!(fail2ban.command, Command::Ping);
    for line in [
        "-s /tmp/b.sock -vv status",
        "-qvs/tmp/b.sock status",
        "--socket=/tmp/b.sock --async status",
        "--conf /etc/fail2ban --socket /tmp/b.sock -- status",
    ] {
        let own = parse(&args(line)).unwrap();
        assert_eq!(own.socket, Some(PathBuf::from("/tmp/b.sock")), "{line}");
        assert_eq!(
            own.command,
            Command::Status {
                jail: None,
                short: false
            },
            "{line}"
        );
    }
    assert_eq!(read("-h ping"), Command::Help);
    assert_eq!(read("-V"), Command::Version);
    assert_eq!(read("--version"), Command::LongVersion);
    assert_eq!(read("--str2sec 1h30m"), Command::Str2Sec(5400));
}

#[test]
fn what_is_not_answered_says_so_and_names_what_is() {
    let error = refused("set sshd bantime 600").to_string();
    assert!(
        error.contains("`set sshd bantime 600` is not a command"),
        "{error}"
    );
    assert!(error.contains("set JAIL banip"), "{error}");
    assert_eq!(
        refused("set sshd banip 192.0.2.300"),
        UsageError::BadAddress("192.0.2.300".into())
    );
    assert!(matches!(
        refused("set sshd banip"),
        UsageError::NotACommand(_)
    ));
    assert_eq!(refused("-s"), UsageError::NeedsValue("-s".into()));
    assert_eq!(
        refused("--frobnicate ping"),
        UsageError::UnknownOption("--frobnicate".into())
    );
    assert!(
        matches!(refused("-d"), UsageError::Elsewhere(..)),
        "banxdp dump is not -d"
    );
    assert!(matches!(
        refused("status sshd cymru"),
        UsageError::Elsewhere(..)
    ));
    assert_eq!(refused("reload a b"), UsageError::ExtraJail("b".into()));
    assert_eq!(
        refused("--str2sec soon"),
        UsageError::BadTime("soon".into())
    );
    assert!(
        refused("get sshd banip --with-time")
            .to_string()
            .contains("banxdp list")
    );
}

#[test]
fn a_failure_is_written_as_fail2ban_writes_it() {
    assert_eq!(
        Failure::NotBanned(words("192.0.2.9 x")).to_string(),
        "not banned: ['192.0.2.9', 'x']"
    );
    assert_eq!(
        Failure::NoJail("nojail".into()).to_string(),
        "Sorry but the jail 'nojail' does not exist"
    );
}

#[test]
fn versions_help_and_flushlogs_need_no_more_than_a_ping() {
    let mut asked = Vec::new();
    let mut call = |request: &Request| {
        asked.push(request.clone());
        Ok(Reply::Pong)
    };
    assert!(
        execute(&Command::Help, &mut call, false)
            .unwrap()
            .contains("set JAIL banip")
    );
    assert_eq!(
        execute(&Command::Version, &mut call, false).unwrap(),
        "1.0.2\n"
    );
    assert!(
        execute(&Command::LongVersion, &mut call, false)
            .unwrap()
            .starts_with("banxdp ")
    );
    assert_eq!(
        execute(&Command::Str2Sec(60), &mut call, false).unwrap(),
        "60\n"
    );
    assert_eq!(
        execute(&Command::FlushLogs, &mut call, true).unwrap(),
        "logs: rolled over\n"
    );
    assert_eq!(
        execute(&Command::FlushLogs, &mut call, false).unwrap(),
        "logs: flushed\n"
    );
    assert_eq!(asked, vec![Request::Ping {}, Request::Ping {}]);
    let mut down = |_: &Request| {
        Err(ClientError::NoDaemon {
            path: "/run/banxdp/banxdp.sock".into(),
            why: "not found",
        })
    };
    assert!(matches!(
        execute(&Command::Ping, &mut down, false),
        Err(Failure::Unreachable(_))
    ));
}
