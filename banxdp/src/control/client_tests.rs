//! The client: its command line, its output for fixed replies, and its end of the socket
//! against a canned server.

use std::{io::Write as _, os::unix::net::UnixListener, thread};

use clap::Parser as _;

use super::*;
use crate::{
    control::proto::{BanInfo, InterfaceStats, JailStatus, StatusReply},
    enforce::parse_target,
};

/// The command line as cli.rs is to wire it: the client subcommands flattened beside the
/// others, and a global `--socket`.
#[derive(clap::Parser, Debug)]
struct Cli {
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    Run,
    #[command(flatten)]
    Client(ClientCommand),
}

fn parse(args: &str) -> Result<(ClientCommand, Option<PathBuf>), clap::Error> {
    let cli = Cli::try_parse_from(std::iter::once("banxdp").chain(args.split_whitespace()))?;
    match cli.command {
        Command::Client(cmd) => Ok((cmd, cli.socket)),
        Command::Run => panic!("not a client command"),
    }
}

fn request(args: &str) -> Request {
    parse(args).unwrap().0.request()
}

fn net(text: &str) -> IpNet {
    parse_target(text).unwrap()
}

#[test]
fn each_command_sends_its_request() {
    assert_eq!(
        request("ban 192.0.2.7 --jail sshd --for 1h30m"),
        Request::Ban {
            target: net("192.0.2.7"),
            jail: Some("sshd".into()),
            duration: Some(5_400)
        }
    );
    assert_eq!(
        request("ban 2001:db8::/64 --for -1"),
        Request::Ban {
            target: net("2001:db8::/64"),
            jail: None,
            duration: Some(-1)
        }
    );
    assert_eq!(
        request("unban 192.0.2.7"),
        Request::Unban {
            target: Some(net("192.0.2.7")),
            jail: None,
            all: false
        }
    );
    assert_eq!(
        request("unban --all --jail sshd"),
        Request::Unban {
            target: None,
            jail: Some("sshd".into()),
            all: true
        }
    );
    assert_eq!(request("status"), Request::Status { jail: None });
    assert_eq!(
        request("status sshd --json"),
        Request::Status {
            jail: Some("sshd".into())
        }
    );
    assert_eq!(
        request("list --jail sshd --json"),
        Request::List {
            jail: Some("sshd".into())
        }
    );
    assert_eq!(request("reload"), Request::Reload { jail: None });
    assert_eq!(request("stop"), Request::Stop { detach: false });
    assert_eq!(request("stop --detach"), Request::Stop { detach: true });
    assert_eq!(request("detach"), Request::Stop { detach: true });
    assert_eq!(request("ping"), Request::Ping {});
    assert_eq!(request("stats --json"), Request::Stats {});
    assert_eq!(
        request("trace 198.51.100.0/24"),
        Request::Trace {
            target: Some(net("198.51.100.0/24"))
        }
    );
    let (_, socket) = parse("ping --socket /tmp/b.sock").unwrap();
    assert_eq!(socket, Some(PathBuf::from("/tmp/b.sock")));
}

#[test]
fn bad_arguments_are_usage_errors() {
    for (args, expected) in [
        (
            "ban 192.0.2.300",
            "`192.0.2.300` is not an address or a network",
        ),
        ("ban example.org", "`example.org` is not an address"),
        ("ban 192.0.2.7 --for 10x", "`10x` is not a time"),
        ("ban 192.0.2.7 --for 0", "a ban needs at least 1 second"),
        ("unban", "required"),
        ("unban 192.0.2.7 --all", "cannot be used with"),
        ("list --jail", "a value is required"),
    ] {
        let error = parse(args).unwrap_err();
        assert_eq!(error.exit_code(), 2, "{args}");
        assert!(error.to_string().contains(expected), "{args}: {error}");
    }
}

fn cmd(args: &str) -> ClientCommand {
    parse(args).unwrap().0
}

fn out(args: &str, reply: &Reply) -> Result<String, String> {
    output(&cmd(args), reply, 1_796_472_000, &|s| format!("@{s}"))
}

fn status_reply() -> StatusReply {
    StatusReply {
        jails: vec![JailStatus {
            name: "sshd".into(),
            currently_failed: 1,
            total_failed: 4,
            files: vec!["/var/log/auth.log".into()],
            journal_matches: None,
            currently_banned: 1,
            total_banned: 2,
            banned: vec!["192.0.2.7".into()],
        }],
        backend: "xdp".into(),
        backend_detail: "generic on lo".into(),
    }
}

#[test]
fn status_prints_fail2bans_layout_or_json() {
    let reply = Reply::Status(status_reply());
    assert_eq!(
        out("status", &reply).unwrap(),
        "Status\n|- Number of jail:\t1\n`- Jail list:\tsshd\nEnforced by:\tgeneric on lo\n"
    );
    assert_eq!(
        out("status sshd", &reply).unwrap(),
        "Status for the jail: sshd\n|- Filter\n|  |- Currently failed:\t1\n|  |- Total failed:\t4\n\
         |  `- File list:\t/var/log/auth.log\n`- Actions\n   |- Currently banned:\t1\n   \
         |- Total banned:\t2\n   `- Banned IP list:\t192.0.2.7\n"
    );
    let json = out("status --json", &reply).unwrap();
    let back: StatusReply = serde_json::from_str(&json).unwrap();
    assert_eq!(back, status_reply());
    assert!(json.contains("\n  \"backend\": \"xdp\",\n"), "{json}");
}

#[test]
fn list_and_stats_print_tables_or_json() {
    let bans = vec![BanInfo {
        target: net("192.0.2.7"),
        jails: vec!["sshd".into()],
        expiry: Some(1_796_472_600),
        drops: Some(3),
        shadow: None,
    }];
    let reply = Reply::Bans { bans: bans.clone() };
    assert_eq!(
        out("list", &reply).unwrap(),
        "TARGET     JAILS  EXPIRES      REMAINING  DROPS\n\
         192.0.2.7  sshd   @1796472600  10m            3\n"
    );
    assert_eq!(
        out("list --json", &reply).unwrap(),
        "[\n  {\n    \"target\": \"192.0.2.7\",\n    \"jails\": [\n      \"sshd\"\n    ],\n    \
         \"expiry\": 1796472600,\n    \"drops\": 3\n  }\n]\n"
    );
    let reply = Reply::Stats {
        interfaces: vec![InterfaceStats {
            interface: "lo".into(),
            packets: [("seen".into(), 2)].into(),
        }],
    };
    // The longest counter name, `pass_other_port`, sets the first column's width (15).
    let text = out("stats", &reply).unwrap();
    assert!(
        text.starts_with(&format!("{:<15}  lo\n{:<15}   2\n", "COUNTER", "seen")),
        "{text}"
    );
    assert_eq!(
        out("stats --json", &reply).unwrap(),
        "[\n  {\n    \"interface\": \"lo\",\n    \"packets\": {\n      \"seen\": 2\n    }\n  }\n]\n"
    );
}

#[test]
fn other_replies_print_their_message_and_errors_fail() {
    assert_eq!(out("ping", &Reply::Pong).unwrap(), "pong\n");
    let banned = Reply::Ok {
        message: Some("banned 192.0.2.7 in sshd for 1h".into()),
        count: None,
    };
    assert_eq!(
        out("ban 192.0.2.7", &banned).unwrap(),
        "banned 192.0.2.7 in sshd for 1h\n"
    );
    assert_eq!(
        out(
            "reload",
            &Reply::Ok {
                message: None,
                count: None
            }
        )
        .unwrap(),
        "ok\n"
    );
    let error = Reply::Error {
        message: "no jail `x`".into(),
    };
    assert_eq!(out("status x", &error), Err("no jail `x`".into()));
    assert_eq!(
        out("list", &Reply::Pong),
        Err("unexpected reply to `list`: {\"reply\":\"pong\"}".into())
    );
}

/// A server that answers one connection with `reply` (raw bytes, in `pieces` writes), after
/// reading one request line, which it returns.
fn canned(path: &Path, reply: &'static [u8], pieces: usize) -> thread::JoinHandle<String> {
    let listener = UnixListener::bind(path).unwrap();
    thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut read = BufReader::new(stream);
        let mut request = String::new();
        read.read_line(&mut request).unwrap();
        let mut stream = read.into_inner();
        for chunk in reply.chunks(reply.len().div_ceil(pieces).max(1)) {
            stream.write_all(chunk).unwrap();
            stream.flush().unwrap();
            thread::sleep(Duration::from_millis(5));
        }
        request
    })
}

#[test]
fn a_reply_in_pieces_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let server = canned(&path, b"{\"reply\":\"ok\",\"message\":\"unbanned 3\"}\n", 7);
    let reply = call(
        &path,
        &Request::Unban {
            target: None,
            jail: None,
            all: true,
        },
    )
    .unwrap();
    assert_eq!(
        reply,
        Reply::Ok {
            message: Some("unbanned 3".into()),
            count: None,
        }
    );
    assert_eq!(
        server.join().unwrap(),
        "{\"command\":\"unban\",\"all\":true}\n"
    );
}

#[test]
fn a_daemon_that_says_nothing_or_nonsense_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let server = canned(&path, b"", 1);
    let error = call(&path, &Request::Ping {}).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the daemon at {} closed the connection without a reply",
            path.display()
        )
    );
    server.join().unwrap();
    std::fs::remove_file(&path).unwrap();
    let server = canned(&path, b"HTTP/1.1 400 Bad Request\r\n", 1);
    let error = call(&path, &Request::Ping {}).unwrap_err();
    assert!(matches!(error, ClientError::BadReply { .. }), "{error:?}");
    server.join().unwrap();
}

#[test]
fn a_daemon_that_does_not_answer_is_given_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let _listener = UnixListener::bind(&path).unwrap();
    let error = call_within(&path, &Request::Ping {}, Duration::from_millis(100)).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the daemon at {} did not answer within 100ms",
            path.display()
        )
    );
}

#[test]
fn without_a_daemon_every_command_says_so_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sock");
    let error = call(&missing, &Request::Ping {}).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "no daemon at {} (not found): is `banxdp run` running?",
            missing.display()
        )
    );
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let error = call(&stale, &Request::Ping {}).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "no daemon at {} (connection refused): is `banxdp run` running?",
            stale.display()
        )
    );
    for args in [
        "ping",
        "status",
        "list",
        "ban 192.0.2.7",
        "unban --all",
        "trace",
        "detach",
    ] {
        assert_eq!(run(cmd(args), &stale), ExitCode::FAILURE, "{args}");
    }
}

#[test]
fn the_socket_comes_from_the_flag_else_the_settings() {
    assert_eq!(
        socket_path(Some(Path::new("/tmp/x.sock")), None),
        PathBuf::from("/tmp/x.sock")
    );
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("banxdp.toml");
    std::fs::write(&toml, "[daemon]\nsocket = \"/run/other/b.sock\"\n").unwrap();
    assert_eq!(
        socket_path(None, Some(&toml)),
        PathBuf::from("/run/other/b.sock")
    );
    std::fs::write(&toml, "[daemon]\nsocket = 3\n").unwrap();
    assert_eq!(
        socket_path(None, Some(&toml)),
        PathBuf::from("/run/banxdp/banxdp.sock")
    );
}
