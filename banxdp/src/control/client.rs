//! The command line's end of the control socket: the client subcommands (clap), one request
//! each, and the reply printed for people ([`super::render`]) or as JSON (`--json`).
//!
//! Blocking std I/O: a client sends one request and reads its reply (or, for `trace`, a
//! stream of them), so it needs no runtime. Exit codes: 0 ok, 1 when the daemon is not there
//! or answers with an error, 2 for bad usage (clap's, and targets or durations that do not
//! parse).

use std::{
    io::{self, BufRead as _, BufReader, Read as _, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ipnet::IpNet;

use super::{
    proto::{self, MAX_REPLY, Reply, Request},
    render,
};

/// How long a reply may take (a `reload` of many jails is the slowest).
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// The subcommands that talk to the daemon.
#[derive(Clone, Debug, PartialEq, Eq, clap::Subcommand)]
pub enum ClientCommand {
    /// The jails (or one jail's counts and bans), in fail2ban-client's layout.
    Status {
        /// One jail.
        jail: Option<String>,
        /// The status as JSON, with the enforcing backend.
        #[arg(long)]
        json: bool,
    },
    /// Ban an address or a network now.
    Ban {
        #[arg(value_parser = parse_target_arg, help = "An address (192.0.2.7, 2001:db8::7) or a network (192.0.2.0/24)")]
        target: IpNet,
        /// The jail that bans it (default: the daemon's choice, see `banxdp status`).
        #[arg(long)]
        jail: Option<String>,
        /// How long: 600, 10m, 1h 30m, 1d, or -1 for ever (default: the jail's bantime).
        #[arg(long = "for", value_name = "DURATION", allow_hyphen_values = true, value_parser = parse_duration_arg)]
        duration: Option<i64>,
    },
    /// Lift a ban (in every jail, or in one), or every ban (`--all`).
    Unban {
        /// An address or a network, as banned.
        #[arg(value_parser = parse_target_arg, required_unless_present = "all", conflicts_with = "all")]
        target: Option<IpNet>,
        /// Only this jail's ban.
        #[arg(long)]
        jail: Option<String>,
        /// Every ban (of `--jail`, if given).
        #[arg(long)]
        all: bool,
    },
    /// The active bans: expiry, time left, packets dropped.
    List {
        /// Only this jail's bans.
        #[arg(long)]
        jail: Option<String>,
        /// The bans as JSON (expiry in seconds since the epoch).
        #[arg(long)]
        json: bool,
    },
    /// Read the configuration again (every jail, or one); active bans stay.
    Reload {
        /// One jail.
        jail: Option<String>,
    },
    /// Stop the daemon; the pinned XDP program keeps enforcing until the next start.
    Stop {
        /// Also remove the XDP program and every pin (as `banxdp detach`).
        #[arg(long)]
        detach: bool,
    },
    /// Stop the daemon and remove the XDP program and every pin: nothing is enforced after.
    Detach,
    /// Check that the daemon answers.
    Ping,
    /// The XDP program's packet counters, per interface and reason.
    Stats {
        /// The counters as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the XDP program's verdicts as they happen (for sources in ADDR|CIDR, or all),
    /// until interrupted: time, interface, source, pass or drop, the reason and the jails.
    Trace {
        /// Only packets from this address or network.
        #[arg(value_parser = parse_target_arg)]
        target: Option<IpNet>,
        /// One JSON object a line.
        #[arg(long)]
        json: bool,
    },
}

fn parse_target_arg(text: &str) -> Result<IpNet, String> {
    crate::enforce::parse_target(text)
        .map_err(|_| format!("`{text}` is not an address or a network (192.0.2.7, 2001:db8::/64)"))
}

fn parse_duration_arg(text: &str) -> Result<i64, String> {
    match crate::config::duration::parse_seconds(text) {
        Ok(0) => Err(format!(
            "`{text}` is no time at all; a ban needs at least 1 second"
        )),
        Ok(seconds) => Ok(seconds),
        Err(error) => Err(error.to_string()),
    }
}

impl ClientCommand {
    /// The request this command sends.
    #[must_use]
    pub fn request(&self) -> Request {
        match self.clone() {
            Self::Status { jail, .. } => Request::Status { jail },
            Self::Ban {
                target,
                jail,
                duration,
            } => Request::Ban {
                target,
                jail,
                duration,
            },
            Self::Unban { target, jail, all } => Request::Unban { target, jail, all },
            Self::List { jail, .. } => Request::List { jail },
            Self::Reload { jail } => Request::Reload { jail },
            Self::Stop { detach } => Request::Stop { detach },
            Self::Detach => Request::Stop { detach: true },
            Self::Ping => Request::Ping {},
            Self::Stats { .. } => Request::Stats {},
            Self::Trace { target, .. } => Request::Trace { target },
        }
    }

    fn json(&self) -> bool {
        match self {
            Self::Status { json, .. }
            | Self::List { json, .. }
            | Self::Stats { json }
            | Self::Trace { json, .. } => *json,
            _ => false,
        }
    }
}

/// Why a request got no reply.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no daemon at {} ({why}): is `banxdp run` running?", path.display())]
    NoDaemon { path: PathBuf, why: &'static str },
    #[error("cannot connect to {}: permission denied (the control socket is root's, or `daemon.socket_group`'s)", path.display())]
    Denied { path: PathBuf },
    #[error("cannot talk to the daemon at {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the daemon at {} did not answer within {timeout:?}", path.display())]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("the daemon at {} closed the connection without a reply", path.display())]
    Closed { path: PathBuf },
    #[error("the daemon at {} sent a reply of more than {MAX_REPLY} bytes", path.display())]
    TooLong { path: PathBuf },
    #[error("the daemon at {} sent something that is not a reply", path.display())]
    BadReply {
        path: PathBuf,
        #[source]
        source: proto::ProtoError,
    },
}

/// A connection to the daemon.
pub struct Connection {
    read: BufReader<UnixStream>,
    path: PathBuf,
}

impl Connection {
    /// Connects to the daemon's socket at `path`.
    pub fn open(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => ClientError::NoDaemon {
                path: path.to_path_buf(),
                why: "not found",
            },
            io::ErrorKind::ConnectionRefused => ClientError::NoDaemon {
                path: path.to_path_buf(),
                why: "connection refused",
            },
            io::ErrorKind::PermissionDenied => ClientError::Denied {
                path: path.to_path_buf(),
            },
            _ => ClientError::Io {
                path: path.to_path_buf(),
                source,
            },
        })?;
        Ok(Self {
            read: BufReader::new(stream),
            path: path.to_path_buf(),
        })
    }

    fn io(&self, source: io::Error) -> ClientError {
        ClientError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Sends one request.
    pub fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        let line = proto::encode(request);
        self.read.get_mut().write_all(&line).map_err(|e| self.io(e))
    }

    /// Reads the next reply; `None` once the daemon has closed the connection. `timeout`
    /// bounds the wait (`None`: wait for ever, as `trace` does).
    pub fn receive(&mut self, timeout: Option<Duration>) -> Result<Option<Reply>, ClientError> {
        self.read
            .get_ref()
            .set_read_timeout(timeout)
            .map_err(|e| self.io(e))?;
        let mut line = Vec::new();
        let limit = u64::try_from(MAX_REPLY).expect("the bound fits in u64") + 1;
        let read = (&mut self.read)
            .take(limit)
            .read_until(b'\n', &mut line)
            .map_err(|error| match (error.kind(), timeout) {
                (io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut, Some(timeout)) => {
                    ClientError::Timeout {
                        path: self.path.clone(),
                        timeout,
                    }
                }
                _ => self.io(error),
            })?;
        if read == 0 {
            return Ok(None);
        }
        if !line.ends_with(b"\n") && line.len() > MAX_REPLY {
            return Err(ClientError::TooLong {
                path: self.path.clone(),
            });
        }
        proto::decode_reply(&line)
            .map(Some)
            .map_err(|source| ClientError::BadReply {
                path: self.path.clone(),
                source,
            })
    }
}

/// Sends `request` to the daemon at `socket` and returns its reply.
pub fn call(socket: &Path, request: &Request) -> Result<Reply, ClientError> {
    call_within(socket, request, REPLY_TIMEOUT)
}

/// [`call`], waiting at most `timeout` for the reply.
pub fn call_within(
    socket: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<Reply, ClientError> {
    let mut connection = Connection::open(socket)?;
    connection.send(request)?;
    connection
        .receive(Some(timeout))?
        .ok_or_else(|| ClientError::Closed {
            path: socket.to_path_buf(),
        })
}

/// The control socket: `explicit` (the global `--socket`), else `daemon.socket` of
/// banxdp.toml (`config`, else /etc/banxdp/banxdp.toml, else the built-in default). A
/// banxdp.toml that cannot be read is reported and the built-in default used.
#[must_use]
pub fn socket_path(explicit: Option<&Path>, config: Option<&Path>) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_path_buf();
    }
    match crate::config::load_settings(config) {
        Ok((settings, _)) => settings.daemon.socket,
        Err(error) => {
            let fallback = crate::config::settings::DaemonSettings::default().socket;
            eprintln!("banxdp: {error}; using the socket {}", fallback.display());
            fallback
        }
    }
}

/// Runs one client command against the daemon at `socket`, printing the reply.
#[must_use]
#[expect(
    clippy::needless_pass_by_value,
    reason = "cli.rs hands over the command it parsed; taking it whole keeps the call plain"
)]
pub fn run(cmd: ClientCommand, socket: &Path) -> ExitCode {
    let request = cmd.request();
    let result = if matches!(request, Request::Trace { .. }) {
        trace(socket, &request, cmd.json())
    } else {
        call(socket, &request).map(|reply| print(&cmd, &reply))
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("banxdp: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Prints a reply as `cmd` asked (people's layout or JSON); the exit code it means.
fn print(cmd: &ClientCommand, reply: &Reply) -> ExitCode {
    match output(cmd, reply, unix_now(), &render::local_time) {
        Ok(text) => {
            let mut stdout = io::stdout().lock();
            // A closed pipe (`banxdp list | head`) is not the daemon's failure.
            let _ = stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("banxdp: {message}");
            ExitCode::FAILURE
        }
    }
}

/// What `cmd` prints for `reply`: the text for stdout, or the error for stderr.
pub fn output(
    cmd: &ClientCommand,
    reply: &Reply,
    now: i64,
    local: &dyn Fn(i64) -> String,
) -> Result<String, String> {
    Ok(match (cmd, reply) {
        (_, Reply::Error { message }) => return Err(message.clone()),
        (ClientCommand::Status { json: true, .. }, Reply::Status(status)) => json(status),
        (ClientCommand::Status { jail, .. }, Reply::Status(status)) => {
            render::status(status, jail.as_deref())
        }
        (ClientCommand::List { json: true, .. }, Reply::Bans { bans }) => json(bans),
        (ClientCommand::List { .. }, Reply::Bans { bans }) => render::bans(bans, now, local),
        (ClientCommand::Stats { json: true }, Reply::Stats { interfaces }) => json(interfaces),
        (ClientCommand::Stats { .. }, Reply::Stats { interfaces }) => render::stats(interfaces),
        (ClientCommand::Ping, Reply::Pong) => "pong\n".to_string(),
        (
            _,
            Reply::Ok {
                message: Some(message),
                ..
            },
        ) => format!("{message}\n"),
        (_, Reply::Ok { message: None, .. }) => "ok\n".to_string(),
        (_, other) => {
            return Err(format!(
                "unexpected reply to `{}`: {}",
                command_name(cmd),
                String::from_utf8_lossy(proto::encode(other).trim_ascii_end())
            ));
        }
    })
}

fn command_name(cmd: &ClientCommand) -> &'static str {
    match cmd {
        ClientCommand::Status { .. } => "status",
        ClientCommand::Ban { .. } => "ban",
        ClientCommand::Unban { .. } => "unban",
        ClientCommand::List { .. } => "list",
        ClientCommand::Reload { .. } => "reload",
        ClientCommand::Stop { .. } => "stop",
        ClientCommand::Detach => "detach",
        ClientCommand::Ping => "ping",
        ClientCommand::Stats { .. } => "stats",
        ClientCommand::Trace { .. } => "trace",
    }
}

/// A reply's part as indented JSON, with a final newline.
fn json<T: serde::Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("replies serialize");
    text.push('\n');
    text
}

/// `trace`: the request, then every verdict as it comes, until the daemon ends the stream
/// (or the user interrupts).
fn trace(socket: &Path, request: &Request, json: bool) -> Result<ExitCode, ClientError> {
    let mut connection = Connection::open(socket)?;
    connection.send(request)?;
    let mut stdout = io::stdout().lock();
    while let Some(reply) = connection.receive(None)? {
        let text = match reply {
            Reply::Trace(event) if json => {
                let mut line = serde_json::to_string(&event).expect("events serialize");
                line.push('\n');
                line
            }
            Reply::Trace(event) => render::trace(&event, &render::local_time),
            Reply::Ok { message, .. } => {
                if let Some(message) = message {
                    eprintln!("banxdp: {message}");
                }
                continue;
            }
            Reply::Error { message } => {
                eprintln!("banxdp: {message}");
                return Ok(ExitCode::FAILURE);
            }
            _ => continue,
        };
        if stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // The reader went away (`banxdp trace | head`): the trace is over.
            return Ok(ExitCode::SUCCESS);
        }
    }
    // Only the daemon ends a stream: it stopped (a trace does not survive a restart).
    eprintln!(
        "banxdp: the daemon ended the trace (it stopped or restarted); run `banxdp trace` again"
    );
    Ok(ExitCode::FAILURE)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
