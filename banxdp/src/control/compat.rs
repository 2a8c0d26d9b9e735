//! `fail2ban-client`, answered by banxdp: the binary run under that name (a symlink,
//! `ln -s banxdp /usr/local/bin/fail2ban-client`) takes fail2ban-client's command line and
//! prints what fail2ban-client prints, so that scripts, monitoring checks and fingers that
//! know fail2ban keep working against `banxdp run`.
//!
//! The commands are those that ask about or change bans: `ping`, `status [JAIL]`,
//! `set JAIL banip|unbanip [--report-absent] IP...`, `get JAIL banip [SEP]`,
//! `get JAIL banned [IP...]`, `banned [IP...]`, `unban IP...|--all`, `reload [--unban]
//! [JAIL]`, `stop`, `flushlogs`, `version`. Each becomes one or more requests of banxdp's own
//! protocol ([`Request`]); nothing here talks to fail2ban. Success prints to standard output
//! and exits 0; a failure prints fail2ban's text for it where it has one (`Sorry but the jail
//! 'x' does not exist`), else banxdp's, to standard output, `ERROR` and the reason to standard
//! error, and exits 255, as fail2ban-client does.

use std::{fmt::Write as _, path::PathBuf, process::ExitCode};

use ipnet::IpNet;

use super::{
    client,
    proto::{BanInfo, Reply, Request, StatusReply},
    render,
};

/// The program name under which banxdp answers as fail2ban-client.
pub const PROGRAM: &str = "fail2ban-client";

/// fail2ban's own socket paths: a script that names one means the daemon, which is banxdp's.
const FAIL2BAN_SOCKETS: [&str; 2] = [
    "/var/run/fail2ban/fail2ban.sock",
    "/run/fail2ban/fail2ban.sock",
];

/// What a fail2ban-client command line asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// `-s SOCKET`, unless it is fail2ban's own.
    pub socket: Option<PathBuf>,
    pub command: Command,
}

/// The fail2ban-client commands banxdp answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Version,
    Ping,
    Status {
        jail: Option<String>,
    },
    Reload {
        jail: Option<String>,
        unban: bool,
    },
    Stop,
    FlushLogs,
    /// `unban IP...`: in every jail.
    Unban {
        targets: Vec<IpNet>,
    },
    UnbanAll,
    /// `banned [IP...]`: the jails' bans, or the jails banning each address.
    Banned {
        targets: Vec<IpNet>,
    },
    BanIp {
        jail: String,
        targets: Vec<IpNet>,
    },
    UnbanIp {
        jail: String,
        targets: Vec<IpNet>,
        report_absent: bool,
    },
    GetBanIp {
        jail: String,
        separator: String,
    },
    GetBanned {
        jail: String,
        targets: Vec<IpNet>,
    },
}

/// Options of fail2ban-client that take a value; all but `-s` mean nothing to banxdp.
const VALUED: [&str; 5] = ["-c", "-s", "-p", "--loglevel", "--logtarget"];
/// Flags of fail2ban-client that change nothing here (verbosity, foreground, async...).
/// `-d` (dump the configuration) is not one: `banxdp dump` is.
const FLAGS: [&str; 8] = ["-q", "-v", "-vv", "-vvv", "-x", "-b", "-f", "--async"];

/// Reads fail2ban-client's arguments (without the program name).
///
/// # Errors
/// A command banxdp does not answer, a missing or extra word, an address that does not parse.
pub fn parse(args: &[String]) -> Result<Invocation, String> {
    let mut socket = None;
    let mut rest = args;
    while let Some((first, tail)) = rest.split_first() {
        if VALUED.contains(&first.as_str()) {
            let (value, tail) = tail
                .split_first()
                .ok_or_else(|| format!("option `{first}` needs a value"))?;
            if first == "-s" && !FAIL2BAN_SOCKETS.contains(&value.as_str()) {
                socket = Some(PathBuf::from(value));
            }
            rest = tail;
        } else if FLAGS.contains(&first.as_str()) {
            rest = tail;
        } else if first.starts_with('-')
            && !matches!(first.as_str(), "-h" | "--help" | "-V" | "--version")
        {
            return Err(format!("unknown option `{first}`"));
        } else {
            break;
        }
    }
    let words: Vec<&str> = rest.iter().map(String::as_str).collect();
    Ok(Invocation {
        socket,
        command: command(&words)?,
    })
}

fn command(words: &[&str]) -> Result<Command, String> {
    let jail = |name: &str| name.to_string();
    Ok(match words {
        [] | ["-h" | "--help" | "help"] => Command::Help,
        ["-V" | "--version" | "version"] => Command::Version,
        ["ping"] => Command::Ping,
        ["status"] => Command::Status { jail: None },
        // fail2ban's `status JAIL FLAVOR` (basic, cymru) only adds to the basic one.
        ["status", name] | ["status", name, "basic"] => Command::Status {
            jail: Some(jail(name)),
        },
        ["reload", rest @ ..] => reload(rest)?,
        ["stop"] => Command::Stop,
        ["flushlogs"] => Command::FlushLogs,
        ["unban", "--all"] => Command::UnbanAll,
        ["unban", targets @ ..] if !targets.is_empty() => Command::Unban {
            targets: addresses(targets)?,
        },
        ["banned", targets @ ..] => Command::Banned {
            targets: addresses(targets)?,
        },
        ["set", name, "banip", targets @ ..] if !targets.is_empty() => Command::BanIp {
            jail: jail(name),
            targets: addresses(targets)?,
        },
        ["set", name, "unbanip", "--report-absent", targets @ ..] if !targets.is_empty() => {
            Command::UnbanIp {
                jail: jail(name),
                targets: addresses(targets)?,
                report_absent: true,
            }
        }
        ["set", name, "unbanip", targets @ ..] if !targets.is_empty() => Command::UnbanIp {
            jail: jail(name),
            targets: addresses(targets)?,
            report_absent: false,
        },
        ["get", name, "banip"] => Command::GetBanIp {
            jail: jail(name),
            separator: " ".into(),
        },
        ["get", _, "banip", "--with-time"] => {
            return Err(
                "`get JAIL banip --with-time` is not answered: `banxdp list --jail JAIL` shows \
                 each ban's end"
                    .into(),
            );
        }
        ["get", name, "banip", separator] => Command::GetBanIp {
            jail: jail(name),
            separator: (*separator).to_string(),
        },
        ["get", name, "banned", targets @ ..] => Command::GetBanned {
            jail: jail(name),
            targets: addresses(targets)?,
        },
        _ => {
            return Err(format!(
                "`{}` is not a command banxdp answers as fail2ban-client ({}); `banxdp --help` \
                 lists banxdp's own",
                words.join(" "),
                ANSWERED
            ));
        }
    })
}

/// The commands, as the help and the errors list them.
const ANSWERED: &str = "ping, status [JAIL], set JAIL banip|unbanip [--report-absent] IP..., \
    get JAIL banip [SEP], get JAIL banned [IP...], banned [IP...], unban IP...|--all, \
    reload [--unban] [JAIL], stop, flushlogs, version";

/// `reload [--restart] [--unban] [--all] [--if-exists] [JAIL]`: banxdp's reload keeps what
/// did not change either way, so only `--unban` (lift every ban first) means something.
fn reload(words: &[&str]) -> Result<Command, String> {
    let mut unban = false;
    let mut jail = None;
    for word in words {
        match *word {
            "--unban" => unban = true,
            "--restart" | "--all" | "--if-exists" => {}
            option if option.starts_with('-') => {
                return Err(format!("unknown option `{option}` of reload"));
            }
            name if jail.is_none() => jail = Some(name.to_string()),
            extra => return Err(format!("reload takes one jail; `{extra}` is one more")),
        }
    }
    Ok(Command::Reload { jail, unban })
}

fn addresses(words: &[&str]) -> Result<Vec<IpNet>, String> {
    words
        .iter()
        .map(|w| crate::enforce::parse_target(w).map_err(|_| format!("`{w}` is not an IP address")))
        .collect()
}

/// Why a command failed: fail2ban-client's text for it, printed to standard output.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure(pub String);

/// Runs `command` through `call` (one request, its reply); the text for standard output.
/// `logs_to_file`: banxdp.toml's `daemon.logtarget` names a file (for `flushlogs`).
///
/// # Errors
/// The daemon's refusal or error, in fail2ban-client's words where it has some.
pub fn execute(
    command: &Command,
    call: &mut dyn FnMut(&Request) -> Result<Reply, String>,
    logs_to_file: bool,
) -> Result<String, Failure> {
    let mut ask = |request: Request| match call(&request).map_err(Failure)? {
        Reply::Error { message } => Err(Failure(message)),
        reply => Ok(reply),
    };
    Ok(match command {
        Command::Help => help(),
        Command::Version => format!("banxdp {}\n", env!("CARGO_PKG_VERSION")),
        Command::Ping => {
            ask(Request::Ping {})?;
            "Server replied: pong\n".into()
        }
        Command::Status { jail } => {
            let status = status(&mut ask, jail.as_deref())?;
            render::status(&status, jail.as_deref())
        }
        Command::Reload { jail, unban } => {
            if *unban {
                ask(Request::Unban {
                    target: None,
                    jail: jail.clone(),
                    all: true,
                })?;
            }
            ask(Request::Reload { jail: jail.clone() })?;
            "OK\n".into()
        }
        Command::Stop => {
            ask(Request::Stop { detach: false })?;
            "Shutdown successful\n".into()
        }
        Command::FlushLogs => {
            // banxdp opens its log file again by itself once it is rotated: nothing to do but
            // answer as fail2ban would for the same log target.
            ask(Request::Ping {})?;
            if logs_to_file {
                "logs: rolled over\n".into()
            } else {
                "logs: flushed\n".into()
            }
        }
        Command::UnbanAll => unban_all(&mut ask)?,
        Command::Unban { targets } => unban(&mut ask, targets)?,
        Command::Banned { targets } => banned(&mut ask, targets)?,
        Command::BanIp { jail, targets } => ban_ip(&mut ask, jail, targets)?,
        Command::UnbanIp {
            jail,
            targets,
            report_absent,
        } => unban_ip(&mut ask, jail, targets, *report_absent)?,
        Command::GetBanIp { jail, separator } => {
            let held = jail_bans(&mut ask, jail)?;
            let texts: Vec<String> = held.iter().map(|t| target_text(*t)).collect();
            format!("{}\n", texts.join(separator))
        }
        Command::GetBanned { jail, targets } => get_banned(&mut ask, jail, targets)?,
    })
}

fn unban_all(ask: &mut Ask<'_>) -> Result<String, Failure> {
    let held = bans(ask, None)?;
    ask(Request::Unban {
        target: None,
        jail: None,
        all: true,
    })?;
    Ok(format!(
        "{}\n",
        held.iter().map(|b| b.jails.len()).sum::<usize>()
    ))
}

/// `unban IP...`: each in every jail holding it; how many (jail, address) bans ended.
fn unban(ask: &mut Ask<'_>, targets: &[IpNet]) -> Result<String, Failure> {
    let held = bans(ask, None)?;
    let mut lifted = 0;
    for target in targets {
        let Some(ban) = held.iter().find(|b| b.target == *target) else {
            continue;
        };
        ask(Request::Unban {
            target: Some(*target),
            jail: None,
            all: false,
        })?;
        lifted += ban.jails.len();
    }
    Ok(format!("{lifted}\n"))
}

/// `set JAIL banip IP...`: how many were not banned there yet.
fn ban_ip(ask: &mut Ask<'_>, jail: &str, targets: &[IpNet]) -> Result<String, Failure> {
    let held = jail_bans(ask, jail)?;
    let mut placed = 0;
    for target in targets {
        if held.contains(target) {
            continue;
        }
        ask(Request::Ban {
            target: *target,
            jail: Some(jail.to_string()),
            duration: None,
        })?;
        placed += 1;
    }
    Ok(format!("{placed}\n"))
}

/// `set JAIL unbanip [--report-absent] IP...`: how many it held; with `--report-absent`,
/// one it does not hold fails the command before any is lifted.
fn unban_ip(
    ask: &mut Ask<'_>,
    jail: &str,
    targets: &[IpNet],
    report_absent: bool,
) -> Result<String, Failure> {
    let held = jail_bans(ask, jail)?;
    let absent: Vec<&IpNet> = targets.iter().filter(|t| !held.contains(t)).collect();
    if report_absent && !absent.is_empty() {
        return Err(Failure(format!(
            "not banned: {}",
            py_list(absent.iter().copied())
        )));
    }
    let mut lifted = 0;
    for target in targets.iter().filter(|t| held.contains(t)) {
        ask(Request::Unban {
            target: Some(*target),
            jail: Some(jail.to_string()),
            all: false,
        })?;
        lifted += 1;
    }
    Ok(format!("{lifted}\n"))
}

/// `get JAIL banned [IP...]`: the list, `1`/`0` for one address, `[1, 0]` for several.
fn get_banned(ask: &mut Ask<'_>, jail: &str, targets: &[IpNet]) -> Result<String, Failure> {
    let held = jail_bans(ask, jail)?;
    Ok(match targets {
        [] => format!("{}\n", py_list(held.iter())),
        [one] => format!("{}\n", u8::from(held.contains(one))),
        many => {
            let flags: Vec<String> = many
                .iter()
                .map(|t| u8::from(held.contains(t)).to_string())
                .collect();
            format!("[{}]\n", flags.join(", "))
        }
    })
}

type Ask<'a> = dyn FnMut(Request) -> Result<Reply, Failure> + 'a;

/// The status, without banxdp's own `Enforced by` line; an unknown jail in fail2ban's words.
fn status(ask: &mut Ask<'_>, jail: Option<&str>) -> Result<StatusReply, Failure> {
    let reply = ask(Request::Status {
        jail: jail.map(str::to_string),
    })
    .map_err(|failure| match jail {
        Some(name) => no_jail(name, &failure),
        None => failure,
    })?;
    match reply {
        Reply::Status(status) => Ok(StatusReply {
            backend_detail: String::new(),
            ..status
        }),
        other => Err(unexpected(&other)),
    }
}

/// fail2ban's words for a jail that does not exist, when that is what the daemon said.
fn no_jail(name: &str, failure: &Failure) -> Failure {
    if failure.0 == format!("no jail `{name}`") {
        Failure(format!("Sorry but the jail '{name}' does not exist"))
    } else {
        Failure(failure.0.clone())
    }
}

/// The targets one jail holds, in banxdp's order (by address); an unknown jail is an error.
fn jail_bans(ask: &mut Ask<'_>, jail: &str) -> Result<Vec<IpNet>, Failure> {
    let status = status(ask, Some(jail))?;
    let Some(one) = status.jails.into_iter().find(|j| j.name == jail) else {
        return Err(Failure(format!(
            "Sorry but the jail '{jail}' does not exist"
        )));
    };
    one.banned
        .iter()
        .map(|text| {
            crate::enforce::parse_target(text)
                .map_err(|_| Failure(format!("the daemon listed `{text}`, not an address")))
        })
        .collect()
}

fn bans(ask: &mut Ask<'_>, jail: Option<&str>) -> Result<Vec<BanInfo>, Failure> {
    match ask(Request::List {
        jail: jail.map(str::to_string),
    })? {
        Reply::Bans { bans } => Ok(bans),
        other => Err(unexpected(&other)),
    }
}

/// `banned`: `[{'sshd': ['192.0.2.7']}, {'web': []}]`, or for addresses the jails banning
/// each, `[['sshd'], []]`.
fn banned(ask: &mut Ask<'_>, targets: &[IpNet]) -> Result<String, Failure> {
    let status = status(ask, None)?;
    let mut out = String::from("[");
    if targets.is_empty() {
        for (n, jail) in status.jails.iter().enumerate() {
            let quoted: Vec<String> = jail.banned.iter().map(|t| format!("'{t}'")).collect();
            let _ = write!(
                out,
                "{}{{'{}': [{}]}}",
                if n == 0 { "" } else { ", " },
                jail.name,
                quoted.join(", ")
            );
        }
    } else {
        for (n, target) in targets.iter().enumerate() {
            let text = target_text(*target);
            let quoted: Vec<String> = status
                .jails
                .iter()
                .filter(|j| j.banned.contains(&text))
                .map(|j| format!("'{}'", j.name))
                .collect();
            let _ = write!(
                out,
                "{}[{}]",
                if n == 0 { "" } else { ", " },
                quoted.join(", ")
            );
        }
    }
    out.push_str("]\n");
    Ok(out)
}

/// Python's `repr` of a list of address strings: `['192.0.2.7', '2001:db8::/64']`.
fn py_list<'a>(targets: impl Iterator<Item = &'a IpNet>) -> String {
    let quoted: Vec<String> = targets.map(|t| format!("'{}'", target_text(*t))).collect();
    format!("[{}]", quoted.join(", "))
}

/// An address alone, a network with its prefix, as fail2ban writes them.
fn target_text(target: IpNet) -> String {
    if target.prefix_len() == target.max_prefix_len() {
        target.addr().to_string()
    } else {
        target.to_string()
    }
}

fn unexpected(reply: &Reply) -> Failure {
    Failure(format!(
        "unexpected reply from the daemon: {}",
        String::from_utf8_lossy(super::proto::encode(reply).trim_ascii_end())
    ))
}

fn help() -> String {
    format!(
        "Usage: fail2ban-client [OPTIONS] <COMMAND>\n\n\
         banxdp, answering as fail2ban-client. Commands: {ANSWERED}.\n\
         Options: -s SOCKET (banxdp's control socket; fail2ban's own path means banxdp's \
         default), -c, -p, -q, -v, -x, -b, -f are accepted and change nothing.\n\
         banxdp's own commands: banxdp --help\n"
    )
}

/// fail2ban-client's program: `args` without the program name.
#[must_use]
pub fn main(args: &[String]) -> ExitCode {
    let invocation = match parse(args) {
        Ok(invocation) => invocation,
        Err(message) => {
            eprintln!("ERROR  {message}");
            return ExitCode::from(255);
        }
    };
    let settings = crate::config::load_settings(None).ok().map(|(s, _)| s);
    let logs_to_file = settings
        .as_ref()
        .is_some_and(|s| !s.daemon.logtarget.eq_ignore_ascii_case("stderr"));
    let socket = client::socket_path(invocation.socket.as_deref(), None);
    let mut call =
        |request: &Request| client::call(&socket, request).map_err(|error| error.to_string());
    match execute(&invocation.command, &mut call, logs_to_file) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(Failure(message)) => {
            println!("{message}");
            eprintln!("ERROR  {message}");
            ExitCode::from(255)
        }
    }
}

#[cfg(test)]
#[path = "compat_tests.rs"]
mod tests;
