//! fail2ban-client's command line, read as its getopt and its command table read it: the
//! options before the command (`-qv`, `-s PATH`, `-sPATH`, `--socket=PATH`, `--str2sec`),
//! then the command words, into an [`Invocation`]; or a [`UsageError`] naming what banxdp
//! does not answer, with the list of what it does ([`ANSWERED`]).

use std::path::PathBuf;

use ipnet::IpNet;

/// The commands, as the help and the errors list them.
pub const ANSWERED: &str = "ping, status [JAIL [basic|short]], set JAIL banip IP..., \
    set JAIL unbanip [--report-absent] IP..., get JAIL banip [SEP], get JAIL banned [IP...], \
    banned [IP...], unban IP...|--all, reload [--unban] [JAIL], stop, flushlogs, version";

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

/// The fail2ban-client commands banxdp answers. Addresses are kept as typed where fail2ban
/// answers for words that are not addresses (they are banned nowhere) or echoes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `-h`: the help, exit 0.
    Help,
    /// No command: the help, exit 255.
    Usage,
    /// `-V`, `version`: [`super::EMULATED`].
    Version,
    /// `--version`: banxdp's own.
    LongVersion,
    /// `--str2sec TIME`: the seconds, from no daemon.
    Str2Sec(i64),
    Ping,
    Status {
        jail: Option<String>,
        short: bool,
    },
    Reload {
        jail: Option<String>,
        unban: bool,
    },
    Stop,
    FlushLogs,
    /// `unban WORD...`: in every jail.
    Unban {
        words: Vec<String>,
    },
    UnbanAll,
    /// `banned [WORD...]`: the jails' bans, or the jails banning each.
    Banned {
        words: Vec<String>,
    },
    BanIp {
        jail: String,
        targets: Vec<IpNet>,
    },
    UnbanIp {
        jail: String,
        words: Vec<String>,
        report_absent: bool,
    },
    GetBanIp {
        jail: String,
        separator: String,
    },
    GetBanned {
        jail: String,
        words: Vec<String>,
    },
}

/// A command line banxdp does not answer.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("option `{0}` needs a value")]
    NeedsValue(String),
    #[error("unknown option `{0}`")]
    UnknownOption(String),
    #[error("`{0}` is not answered here: {1}")]
    Elsewhere(String, &'static str),
    #[error(
        "`{0}` is not a command banxdp answers as fail2ban-client ({ANSWERED}); `banxdp --help` \
         lists banxdp's own"
    )]
    NotACommand(String),
    #[error("`{0}` is not an IP address or network")]
    BadAddress(String),
    #[error("reload takes one jail; `{0}` is one more")]
    ExtraJail(String),
    #[error("`{0}` is not a time (600, 10m, 1h30m, ...)")]
    BadTime(String),
}

/// Reads fail2ban-client's arguments (without the program name): options as its getopt
/// reads them (`-qv`, `-s PATH`, `-sPATH`, `--socket=PATH`), up to the first word that is not
/// one, then the command.
///
/// # Errors
/// An option or command banxdp does not answer, a missing or extra word, an address that
/// does not parse.
pub fn parse(args: &[String]) -> Result<Invocation, UsageError> {
    let mut socket = None;
    let mut early = None;
    let mut rest = args;
    while let Some((first, tail)) = rest.split_first() {
        if first == "--" || !first.starts_with('-') || first == "-" {
            rest = if first == "--" { tail } else { rest };
            break;
        }
        rest = tail;
        let options = if let Some(long) = first.strip_prefix("--") {
            vec![long_option(long, &mut rest)?]
        } else {
            short_options(&first[1..], &mut rest)?
        };
        for option in options {
            match option {
                Opt::Socket(path) if !FAIL2BAN_SOCKETS.contains(&path.as_str()) => {
                    socket = Some(PathBuf::from(path));
                }
                Opt::Early(command) => early = early.or(Some(command)),
                Opt::Socket(_) | Opt::Ignored => {}
            }
        }
    }
    if let Some(command) = early {
        return Ok(Invocation { socket, command });
    }
    let words: Vec<&str> = rest.iter().map(String::as_str).collect();
    Ok(Invocation {
        socket,
        command: command(&words)?,
    })
}

/// One option's meaning here.
enum Opt {
    Socket(String),
    /// Answered without the daemon (help, versions, `--str2sec`).
    Early(Command),
    Ignored,
}

/// fail2ban-client's short options taking a value: `-c CONF`, `-s SOCKET`, `-p PIDFILE`.
const SHORT_VALUED: &str = "csp";
/// Its short flags that change nothing here: `-x` (force), `-f`, `-b`, `-v`, `-q`.
const SHORT_IGNORED: &str = "xfbvq";

fn short_options(cluster: &str, rest: &mut &[String]) -> Result<Vec<Opt>, UsageError> {
    let mut options = Vec::new();
    for (at, letter) in cluster.char_indices() {
        if SHORT_VALUED.contains(letter) {
            let attached = &cluster[at + letter.len_utf8()..];
            let value = if attached.is_empty() {
                take_value(&format!("-{letter}"), rest)?
            } else {
                attached.to_string()
            };
            options.push(if letter == 's' {
                Opt::Socket(value)
            } else {
                Opt::Ignored
            });
            return Ok(options);
        }
        options.push(match letter {
            'h' => Opt::Early(Command::Help),
            'V' => Opt::Early(Command::Version),
            letter if SHORT_IGNORED.contains(letter) => Opt::Ignored,
            'd' => return Err(elsewhere("-d")),
            't' => return Err(elsewhere("-t")),
            'i' => {
                return Err(UsageError::Elsewhere(
                    "-i".into(),
                    "banxdp has no interactive mode; give one command a call",
                ));
            }
            other => return Err(UsageError::UnknownOption(format!("-{other}"))),
        });
    }
    Ok(options)
}

fn long_option(text: &str, rest: &mut &[String]) -> Result<Opt, UsageError> {
    let (name, attached) = match text.split_once('=') {
        Some((name, value)) => (name, Some(value.to_string())),
        None => (text, None),
    };
    let mut value = || match attached.clone() {
        Some(value) => Ok(value),
        None => take_value(&format!("--{name}"), rest),
    };
    Ok(match name {
        "socket" => Opt::Socket(value()?),
        "conf" | "pidfile" | "pname" | "timeout" | "loglevel" | "logtarget" | "syslogsocket" => {
            value()?;
            Opt::Ignored
        }
        "str2sec" => {
            let time = value()?;
            let seconds = crate::config::duration::parse_seconds(&time)
                .map_err(|_| UsageError::BadTime(time.clone()))?;
            Opt::Early(Command::Str2Sec(seconds))
        }
        "async" => Opt::Ignored,
        "help" => Opt::Early(Command::Help),
        "version" => Opt::Early(Command::LongVersion),
        "test" | "dp" | "dump-pretty" => return Err(elsewhere(&format!("--{name}"))),
        _ => return Err(UsageError::UnknownOption(format!("--{name}"))),
    })
}

fn take_value(option: &str, rest: &mut &[String]) -> Result<String, UsageError> {
    let (value, tail) = rest
        .split_first()
        .ok_or_else(|| UsageError::NeedsValue(option.to_string()))?;
    *rest = tail;
    Ok(value.clone())
}

fn elsewhere(option: &str) -> UsageError {
    UsageError::Elsewhere(
        option.to_string(),
        "`banxdp dump` prints (and so checks) the configuration as banxdp reads it",
    )
}

fn command(words: &[&str]) -> Result<Command, UsageError> {
    let jail = |name: &str| name.to_string();
    let owned = |words: &[&str]| words.iter().map(|w| (*w).to_string()).collect();
    Ok(match words {
        [] => Command::Usage,
        ["help"] => Command::Help,
        ["version"] => Command::Version,
        ["ping"] | ["ping", _] => Command::Ping,
        ["status"] => Command::Status {
            jail: None,
            short: false,
        },
        ["status", _, "cymru"] => {
            return Err(UsageError::Elsewhere(
                "status JAIL cymru".into(),
                "banxdp looks up no ASN; the basic status is `status JAIL`",
            ));
        }
        // fail2ban answers an unknown flavor with the basic status.
        ["status", name] | ["status", name, _] => Command::Status {
            jail: Some(jail(name)),
            short: words.get(2) == Some(&"short"),
        },
        ["reload", rest @ ..] => reload(rest)?,
        ["stop"] => Command::Stop,
        ["flushlogs"] => Command::FlushLogs,
        ["unban", "--all"] => Command::UnbanAll,
        ["unban", words @ ..] if !words.is_empty() => Command::Unban {
            words: owned(words),
        },
        ["banned", words @ ..] => Command::Banned {
            words: owned(words),
        },
        ["set", name, "banip", targets @ ..] if !targets.is_empty() => Command::BanIp {
            jail: jail(name),
            targets: addresses(targets)?,
        },
        ["set", name, "unbanip", "--report-absent", words @ ..] if !words.is_empty() => {
            Command::UnbanIp {
                jail: jail(name),
                words: owned(words),
                report_absent: true,
            }
        }
        ["set", name, "unbanip", words @ ..] if !words.is_empty() => Command::UnbanIp {
            jail: jail(name),
            words: owned(words),
            report_absent: false,
        },
        ["get", name, "banip"] => Command::GetBanIp {
            jail: jail(name),
            separator: " ".into(),
        },
        ["get", _, "banip", "--with-time"] => {
            return Err(UsageError::Elsewhere(
                "get JAIL banip --with-time".into(),
                "`banxdp list --jail JAIL` shows each ban's end",
            ));
        }
        ["get", name, "banip", separator] => Command::GetBanIp {
            jail: jail(name),
            separator: (*separator).to_string(),
        },
        ["get", name, "banned", words @ ..] => Command::GetBanned {
            jail: jail(name),
            words: owned(words),
        },
        _ => return Err(UsageError::NotACommand(words.join(" "))),
    })
}

/// `reload [--restart] [--unban] [--all] [--if-exists] [JAIL]`: banxdp's reload keeps what
/// did not change either way, so only `--unban` (lift the bans too) means something.
fn reload(words: &[&str]) -> Result<Command, UsageError> {
    let mut unban = false;
    let mut jail = None;
    for word in words {
        match *word {
            "--unban" => unban = true,
            "--restart" | "--all" | "--if-exists" => {}
            option if option.starts_with('-') => {
                return Err(UsageError::UnknownOption(option.to_string()));
            }
            name if jail.is_none() => jail = Some(name.to_string()),
            extra => return Err(UsageError::ExtraJail(extra.to_string())),
        }
    }
    Ok(Command::Reload { jail, unban })
}

fn addresses(words: &[&str]) -> Result<Vec<IpNet>, UsageError> {
    words
        .iter()
        .map(|w| address(w).ok_or_else(|| UsageError::BadAddress((*w).to_string())))
        .collect()
}

/// A word as the address fail2ban reads in it: host bits cleared, an IPv4-mapped IPv6
/// address as IPv4 (as the daemon holds it).
pub(super) fn address(word: &str) -> Option<IpNet> {
    crate::enforce::parse_target(word)
        .ok()
        .map(crate::enforce::book::normalize)
}
