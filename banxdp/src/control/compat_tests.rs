//! fail2ban-client's command line as banxdp reads it, and the Python-shaped lists it prints.
//! What the commands print against a daemon is compared with fail2ban-client's own output in
//! `tests/tests/fail2ban_client.rs`.

use super::*;

fn args(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

fn read(text: &str) -> Command {
    parse(&args(text)).unwrap().command
}

fn net(text: &str) -> IpNet {
    crate::enforce::parse_target(text).unwrap()
}

#[test]
fn the_commands_read_as_fail2ban_client_reads_them() {
    assert_eq!(read("ping"), Command::Ping);
    assert_eq!(read(""), Command::Help);
    assert_eq!(read("-V"), Command::Version);
    assert_eq!(read("status"), Command::Status { jail: None });
    assert_eq!(
        read("status sshd basic"),
        Command::Status {
            jail: Some("sshd".into())
        }
    );
    assert_eq!(
        read("set sshd banip 192.0.2.7 2001:db8::/64"),
        Command::BanIp {
            jail: "sshd".into(),
            targets: vec![net("192.0.2.7"), net("2001:db8::/64")]
        }
    );
    assert_eq!(
        read("set sshd unbanip --report-absent 192.0.2.7"),
        Command::UnbanIp {
            jail: "sshd".into(),
            targets: vec![net("192.0.2.7")],
            report_absent: true
        }
    );
    assert_eq!(read("unban --all"), Command::UnbanAll);
    assert_eq!(
        read("unban 192.0.2.7 192.0.2.8"),
        Command::Unban {
            targets: vec![net("192.0.2.7"), net("192.0.2.8")]
        }
    );
    assert_eq!(read("banned"), Command::Banned { targets: vec![] });
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
    assert_eq!(
        read("reload"),
        Command::Reload {
            jail: None,
            unban: false
        }
    );
}

#[test]
fn options_before_the_command_are_skipped_and_only_a_foreign_socket_is_kept() {
    let fail2ban = parse(&args(
        "-q -c /etc/fail2ban -s /var/run/fail2ban/fail2ban.sock ping",
    ))
    .unwrap();
    assert_eq!(fail2ban.socket, None, "fail2ban's socket means banxdp's");
    assert_eq!(fail2ban.command, Command::Ping);
    let own = parse(&args("-s /tmp/b.sock -vv status")).unwrap();
    assert_eq!(own.socket, Some(PathBuf::from("/tmp/b.sock")));
    assert_eq!(own.command, Command::Status { jail: None });
}

#[test]
fn what_is_not_answered_says_so_and_names_what_is() {
    let error = parse(&args("set sshd bantime 600")).unwrap_err();
    assert!(
        error.contains("`set sshd bantime 600` is not a command"),
        "{error}"
    );
    assert!(error.contains("set JAIL banip"), "{error}");
    assert!(
        parse(&args("set sshd banip 192.0.2.300"))
            .unwrap_err()
            .contains("192.0.2.300")
    );
    assert!(
        parse(&args("set sshd banip")).is_err(),
        "an address is needed"
    );
    assert!(parse(&args("-s")).unwrap_err().contains("needs a value"));
    assert!(
        parse(&args("--frobnicate ping"))
            .unwrap_err()
            .contains("--frobnicate")
    );
    assert!(
        parse(&args("-d")).unwrap_err().contains("`-d`"),
        "banxdp dump is not -d"
    );
    assert!(parse(&args("reload a b")).unwrap_err().contains("`b`"));
    assert!(
        parse(&args("get sshd banip --with-time"))
            .unwrap_err()
            .contains("banxdp list")
    );
}

#[test]
fn lists_are_printed_as_python_prints_them() {
    let targets = [net("192.0.2.7"), net("2001:db8::/64")];
    assert_eq!(py_list(targets.iter()), "['192.0.2.7', '2001:db8::/64']");
    assert_eq!(py_list([].iter()), "[]");
}

#[test]
fn help_version_and_flushlogs_need_no_more_than_a_ping() {
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
    assert!(
        execute(&Command::Version, &mut call, false)
            .unwrap()
            .starts_with("banxdp ")
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
    let mut down = |_: &Request| Err("no daemon at /run/banxdp/banxdp.sock".to_string());
    assert_eq!(
        execute(&Command::Ping, &mut down, false),
        Err(Failure("no daemon at /run/banxdp/banxdp.sock".into()))
    );
}
