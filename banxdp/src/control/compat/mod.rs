//! `fail2ban-client`, answered by banxdp: the binary run under that name (a symlink,
//! `ln -s banxdp /usr/local/bin/fail2ban-client`) reads fail2ban-client's command line and
//! prints what fail2ban-client 1.0.2 prints, so that scripts, monitoring checks and fingers
//! that know fail2ban keep working against `banxdp run`.
//!
//! The commands answered are those that ask about or change bans (see [`ANSWERED`]); each
//! becomes one or more requests of banxdp's own protocol ([`Request`]). They count as
//! fail2ban's server counts, address by address: `set JAIL banip X X` places one ban, an
//! address not banned counts 0 (`--report-absent` lifts the others, then fails naming it), a
//! network that is not banned as such lifts every ban inside it. Success prints to standard
//! output and exits 0. A refusal prints fail2ban's text for it where it has one (`Sorry but
//! the jail 'x' does not exist`), else the daemon's, to standard output, and exits 255, as
//! fail2ban-client does; a daemon that cannot be reached is said on standard error only.

mod args;

use std::{
    io::Write as _,
    process::ExitCode,
    time::{Duration, Instant},
};

use ipnet::IpNet;

use self::args::address;
pub use self::args::{ANSWERED, Command, Invocation, UsageError, parse};
use super::{
    client::{self, ClientError},
    proto::{BanInfo, Reply, Request, StatusReply, target_text},
    render,
};

/// The program name under which banxdp answers as fail2ban-client.
pub const PROGRAM: &str = "fail2ban-client";

/// The fail2ban version whose client this answers as (`-V`, `version`): scripts compare it
/// to decide which commands exist.
pub const EMULATED: &str = "1.0.2";

/// How long `stop` waits for the daemon to be gone, as fail2ban-client waits for its server.
const STOP_WAIT: Duration = Duration::from_secs(30);

/// Why an answered command failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("Sorry but the jail '{0}' does not exist")]
    NoJail(String),
    /// Python's `repr` of the words as typed, as fail2ban writes it.
    #[error("not banned: [{}]", quoted(.0))]
    NotBanned(Vec<String>),
    /// The daemon's error reply.
    #[error("{0}")]
    Refused(String),
    #[error("unexpected reply from the daemon: {0}")]
    Unexpected(String),
    #[error(transparent)]
    Unreachable(#[from] ClientError),
}

/// `'a', 'b'`: Python's `repr` of the strings of a list, without its brackets.
fn quoted(words: &[String]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    quoted.join(", ")
}

/// The daemon, one request at a time: its error replies are refusals.
type Ask<'a> = dyn FnMut(Request) -> Result<Reply, Failure> + 'a;

/// Runs `command` through `call` (one request, its reply); the text for standard output.
/// `logs_to_file`: banxdp.toml's `daemon.logtarget` names a file (for `flushlogs`).
///
/// # Errors
/// The daemon's refusal or error, in fail2ban-client's words where it has some, or why it
/// could not be reached.
pub fn execute(
    command: &Command,
    call: &mut dyn FnMut(&Request) -> Result<Reply, ClientError>,
    logs_to_file: bool,
) -> Result<String, Failure> {
    let mut ask = |request: Request| match call(&request)? {
        Reply::Error { message } => Err(Failure::Refused(message)),
        reply => Ok(reply),
    };
    let ask: &mut Ask<'_> = &mut ask;
    Ok(match command {
        Command::Help | Command::Usage => help(),
        Command::Version => format!("{EMULATED}\n"),
        Command::LongVersion => format!(
            "banxdp {}, answering as fail2ban-client {EMULATED}\n",
            env!("CARGO_PKG_VERSION")
        ),
        Command::Str2Sec(seconds) => format!("{seconds}\n"),
        Command::Ping => {
            ask(Request::Ping {})?;
            "Server replied: pong\n".into()
        }
        Command::Status { jail, short } => status_text(ask, jail.as_deref(), *short)?,
        Command::Reload { jail, unban } => {
            // The reload first: one that fails lifts nothing.
            ask(Request::Reload { jail: jail.clone() })?;
            if *unban {
                ask(Request::Unban {
                    target: None,
                    jail: jail.clone(),
                    all: true,
                })?;
            }
            "OK\n".into()
        }
        Command::Stop => {
            ask(Request::Stop { detach: false })?;
            "Shutdown successful\n".into()
        }
        Command::FlushLogs => {
            // banxdp opens its log file again by itself once it is rotated: nothing to do but
            // answer as fail2ban does for the same log target.
            ask(Request::Ping {})?;
            if logs_to_file {
                "logs: rolled over\n".into()
            } else {
                "logs: flushed\n".into()
            }
        }
        Command::UnbanAll => {
            let reply = ask(Request::Unban {
                target: None,
                jail: None,
                all: true,
            })?;
            format!("{}\n", count(&reply))
        }
        Command::Unban { words } => format!("{}\n", unban(ask, None, words, false)?),
        Command::UnbanIp {
            jail,
            words,
            report_absent,
        } => {
            known_jail(ask, jail)?;
            format!("{}\n", unban(ask, Some(jail), words, *report_absent)?)
        }
        Command::Banned { words } => banned(ask, words)?,
        Command::BanIp { jail, targets } => format!("{}\n", ban_ip(ask, jail, targets)?),
        Command::GetBanIp { jail, separator } => {
            let held = jail_bans(ask, jail)?;
            let texts: Vec<String> = held.iter().map(target_text).collect();
            format!("{}\n", texts.join(separator))
        }
        Command::GetBanned { jail, words } => get_banned(ask, jail, words)?,
    })
}

/// What a ban or unban reply counted (a daemon from before counts carried 1).
fn count(reply: &Reply) -> u64 {
    match reply {
        Reply::Ok { count, .. } => count.unwrap_or(1),
        _ => 0,
    }
}

/// The status, without banxdp's own `Enforced by` line.
fn status(ask: &mut Ask<'_>, jail: Option<&str>) -> Result<StatusReply, Failure> {
    if let Some(name) = jail {
        known_jail(ask, name)?;
    }
    match ask(Request::Status {
        jail: jail.map(str::to_string),
    })? {
        Reply::Status(status) => Ok(StatusReply {
            backend_detail: String::new(),
            ..status
        }),
        other => Err(unexpected(&other)),
    }
}

/// `status [JAIL]` as fail2ban prints it; `short` leaves out the banned addresses.
fn status_text(ask: &mut Ask<'_>, jail: Option<&str>, short: bool) -> Result<String, Failure> {
    let text = render::status(&status(ask, jail)?, jail);
    if !short {
        return Ok(text);
    }
    let mut lines: Vec<&str> = text.lines().collect();
    lines.retain(|line| !line.contains("`- Banned IP list:"));
    let mut text = String::new();
    for line in lines {
        text.push_str(&line.replace("|- Total banned:", "`- Total banned:"));
        text.push('\n');
    }
    Ok(text)
}

/// Fails with fail2ban's words unless the daemon runs jail `name`.
fn known_jail(ask: &mut Ask<'_>, name: &str) -> Result<(), Failure> {
    match ask(Request::Status { jail: None })? {
        Reply::Status(all) if all.jails.iter().any(|j| j.name == name) => Ok(()),
        Reply::Status(_) => Err(Failure::NoJail(name.to_string())),
        other => Err(unexpected(&other)),
    }
}

/// The targets one jail holds, by address (the daemon's order).
fn jail_bans(ask: &mut Ask<'_>, jail: &str) -> Result<Vec<IpNet>, Failure> {
    let status = status(ask, Some(jail))?;
    let listed = status
        .jails
        .into_iter()
        .find(|j| j.name == jail)
        .map(|j| j.banned)
        .unwrap_or_default();
    listed
        .iter()
        .map(|text| address(text).ok_or_else(|| Failure::Unexpected(format!("a banned `{text}`"))))
        .collect()
}

/// The bans held, every jail's or `jail`'s, as targets with their jails.
fn held(ask: &mut Ask<'_>, jail: Option<&str>) -> Result<Vec<BanInfo>, Failure> {
    match ask(Request::List {
        jail: jail.map(str::to_string),
    })? {
        Reply::Bans { bans } => Ok(bans),
        other => Err(unexpected(&other)),
    }
}

/// `unban WORD...` (every jail) or `set JAIL unbanip WORD...`, address by address and jail
/// by jail as fail2ban's server does: a jail holding the target lifts it; one that does not,
/// given a network, lifts every ban of its inside it; anything else counts 0, or with
/// `report_absent` is named in the failure that follows the lifting of the others. How many
/// (jail, target) bans ended.
fn unban(
    ask: &mut Ask<'_>,
    jail: Option<&str>,
    words: &[String],
    report_absent: bool,
) -> Result<u64, Failure> {
    let mut lifted = 0;
    let mut missed = Vec::new();
    for word in words {
        let held = held(ask, jail)?;
        let mut jails: Vec<&str> = held
            .iter()
            .flat_map(|b| b.jails.iter().map(String::as_str))
            .filter(|j| jail.is_none_or(|only| only == *j))
            .collect();
        jails.sort_unstable();
        jails.dedup();
        let mut chosen: Vec<(String, IpNet)> = Vec::new();
        if let Some(net) = address(word) {
            for name in jails {
                let mine = held.iter().filter(|b| b.jails.iter().any(|j| j == name));
                let targets: Vec<IpNet> = mine.map(|b| b.target).collect();
                if targets.contains(&net) {
                    chosen.push((name.to_string(), net));
                } else if net.prefix_len() < net.max_prefix_len() {
                    chosen.extend(
                        targets
                            .into_iter()
                            .filter(|t| net.contains(t))
                            .map(|t| (name.to_string(), t)),
                    );
                }
            }
        }
        if chosen.is_empty() {
            missed.push(word.clone());
        }
        for (name, target) in chosen {
            lifted += lift(ask, &name, target)?;
        }
    }
    if report_absent && !missed.is_empty() {
        return Err(Failure::NotBanned(missed));
    }
    Ok(lifted)
}

/// Lifts one target `jail` held a moment ago: one that ended meanwhile counts 0.
fn lift(ask: &mut Ask<'_>, jail: &str, target: IpNet) -> Result<u64, Failure> {
    let request = Request::Unban {
        target: Some(target),
        jail: Some(jail.to_string()),
        all: false,
    };
    match ask(request) {
        Ok(reply) => Ok(count(&reply)),
        Err(Failure::Refused(why)) => {
            if held(ask, Some(jail))?.iter().any(|b| b.target == target) {
                Err(Failure::Refused(why))
            } else {
                Ok(0)
            }
        }
        Err(other) => Err(other),
    }
}

/// `set JAIL banip IP...`: how many it did not hold yet (an address given twice, once).
fn ban_ip(ask: &mut Ask<'_>, jail: &str, targets: &[IpNet]) -> Result<u64, Failure> {
    known_jail(ask, jail)?;
    let mut placed = 0;
    for target in targets {
        let reply = ask(Request::Ban {
            target: *target,
            jail: Some(jail.to_string()),
            duration: None,
        })?;
        placed += count(&reply);
    }
    Ok(placed)
}

/// `get JAIL banned [WORD...]`: the list, `1`/`0` for one word, `[1, 0]` for several.
fn get_banned(ask: &mut Ask<'_>, jail: &str, words: &[String]) -> Result<String, Failure> {
    let held = jail_bans(ask, jail)?;
    let flag = |word: &String| u8::from(address(word).is_some_and(|n| held.contains(&n)));
    Ok(match words {
        [] => {
            let texts: Vec<String> = held.iter().map(target_text).collect();
            format!("[{}]\n", quoted(&texts))
        }
        [one] => format!("{}\n", flag(one)),
        many => {
            let flags: Vec<String> = many.iter().map(|w| flag(w).to_string()).collect();
            format!("[{}]\n", flags.join(", "))
        }
    })
}

/// `banned`: `[{'sshd': ['192.0.2.7']}, {'web': []}]` (the jails in the configuration's
/// order), or for words the jails banning each, `[['sshd'], []]`.
fn banned(ask: &mut Ask<'_>, words: &[String]) -> Result<String, Failure> {
    let status = status(ask, None)?;
    let items: Vec<String> = if words.is_empty() {
        status
            .jails
            .iter()
            .map(|jail| format!("{{'{}': [{}]}}", jail.name, quoted(&jail.banned)))
            .collect()
    } else {
        words
            .iter()
            .map(|word| {
                let text = address(word).map(|n| target_text(&n));
                let jails: Vec<String> = status
                    .jails
                    .iter()
                    .filter(|j| text.as_ref().is_some_and(|t| j.banned.contains(t)))
                    .map(|j| j.name.clone())
                    .collect();
                format!("[{}]", quoted(&jails))
            })
            .collect()
    };
    Ok(format!("[{}]\n", items.join(", ")))
}

fn unexpected(reply: &Reply) -> Failure {
    Failure::Unexpected(
        String::from_utf8_lossy(super::proto::encode(reply).trim_ascii_end()).into_owned(),
    )
}

fn help() -> String {
    format!(
        "Usage: fail2ban-client [OPTIONS] <COMMAND>\n\n\
         banxdp, answering as fail2ban-client {EMULATED}. Commands: {ANSWERED}.\n\
         Options: -s SOCKET (banxdp's control socket; fail2ban's own path means banxdp's \
         default), --str2sec TIME, -h, -V, --version; -c, -p, -q, -v, -x, -b, -f and --async \
         are accepted and change nothing.\n\
         banxdp's own commands: banxdp --help\n"
    )
}

/// Waits until the daemon at `socket` no longer answers (at most [`STOP_WAIT`]).
fn wait_gone(socket: &std::path::Path) {
    let deadline = Instant::now() + STOP_WAIT;
    while Instant::now() < deadline && client::Connection::open(socket).is_ok() {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// fail2ban-client's program: `args` without the program name.
#[must_use]
pub fn main(args: &[String]) -> ExitCode {
    let invocation = match parse(args) {
        Ok(invocation) => invocation,
        Err(error) => {
            eprintln!("ERROR  {error}");
            return ExitCode::from(255);
        }
    };
    // Only `flushlogs` asks where banxdp logs.
    let logs_to_file = invocation.command == Command::FlushLogs
        && crate::config::load_settings(None)
            .is_ok_and(|(s, _)| !s.daemon.logtarget.eq_ignore_ascii_case("stderr"));
    let socket = client::socket_path(invocation.socket.as_deref(), None);
    let mut call = |request: &Request| client::call(&socket, request);
    let result = execute(&invocation.command, &mut call, logs_to_file);
    if result.is_ok() && invocation.command == Command::Stop {
        wait_gone(&socket);
    }
    match result {
        Ok(text) => {
            // A reader gone (`| head -1`) is no failure of the command.
            let mut stdout = std::io::stdout().lock();
            let _ = stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush());
            if invocation.command == Command::Usage {
                return ExitCode::from(255);
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            // fail2ban-client prints its server's refusals; one it cannot reach, it logs.
            if !matches!(failure, Failure::Unreachable(_)) {
                println!("{failure}");
            }
            eprintln!("ERROR  {failure}");
            ExitCode::from(255)
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
