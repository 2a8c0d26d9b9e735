//! The `banxdp` command line: argument parsing and exit codes only; the work is elsewhere
//! in the library. `src/main.rs` calls [`main`], and so does the test suite's copy of the
//! binary, so that tests run exactly what users run.
//!
//! Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration.

use clap::{Parser, Subcommand};
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use crate::{config, daemon};

#[derive(Parser)]
#[command(version, about = "fail2ban's jails, enforced by XDP at the NIC")]
struct Cli {
    /// The daemon's control socket (default: `daemon.socket` of banxdp.toml,
    /// /run/banxdp/banxdp.sock).
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground (systemd runs it).
    Run {
        /// banxdp.toml to read (default: /etc/banxdp/banxdp.toml, else built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Jails, filters and actions (default: `daemon.config_dir`, else /etc/banxdp, else
        /// /etc/fail2ban, else the configuration built into banxdp).
        #[arg(long)]
        config_dir: Option<PathBuf>,
        /// Load this XDP object instead of the embedded one (for testing a fresh build).
        #[arg(long, hide = true)]
        xdp_object: Option<PathBuf>,
    },
    /// Run a log (or one line) through a filter, as fail2ban-regex does.
    Regex {
        /// One failure per line as JSON (line, time, host, regex, fields) instead of a summary.
        #[arg(long)]
        json: bool,
        /// Hosts as the log wrote them, and no name resolution (fail2ban-regex's `--raw`).
        #[arg(long)]
        raw: bool,
        /// Where filter names are looked up (default: /etc/banxdp, else /etc/fail2ban, else
        /// built in).
        #[arg(long)]
        config_dir: Option<PathBuf>,
        /// Threads that read a log file, the one that merges their results included
        /// (default: one per core, up to 8; 1 reads it on one thread). The answers are the same with
        /// any number.
        #[arg(long)]
        threads: Option<usize>,
        /// A log file, or one log line.
        log: String,
        /// A filter file, a filter name (`sshd`, `sshd[mode=aggressive]`), or a failregex.
        filter: String,
        /// An ignoreregex to add.
        ignoreregex: Option<String>,
    },
    /// Print the resolved configuration: the enabled jails, or fail2ban's command stream.
    Dump {
        /// Configuration directory (default: /etc/banxdp, else /etc/fail2ban, else the
        /// configuration built into banxdp).
        #[arg(long)]
        config_dir: Option<PathBuf>,
        /// Print the commands `fail2ban-client -d` prints, one JSON array per line.
        #[arg(long)]
        fail2ban_stream: bool,
    },
    #[command(flatten)]
    Client(crate::control::client::ClientCommand),
}

/// The `banxdp` program.
#[must_use]
pub fn main() -> ExitCode {
    // Run as `fail2ban-client` (a symlink): fail2ban-client's command line and output.
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_default();
    if Path::new(&program).file_name() == Some(crate::control::compat::PROGRAM.as_ref()) {
        let _ = crate::logging::init(None);
        let args: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
        return crate::control::compat::main(&args);
    }
    let cli = Cli::parse();
    // `run` logs where its settings say (see `run`); every other command to standard error.
    if !matches!(cli.command, Command::Run { .. }) {
        let _ = crate::logging::init(None);
    }
    match cli.command {
        Command::Client(command) => {
            let socket = crate::control::client::socket_path(cli.socket.as_deref(), None);
            crate::control::client::run(command, &socket)
        }
        Command::Run {
            config,
            config_dir,
            xdp_object,
        } => run(
            config.as_deref(),
            config_dir.as_deref(),
            cli.socket,
            xdp_object,
        ),
        Command::Dump {
            config_dir,
            fail2ban_stream,
        } => dump(config_dir.as_deref(), fail2ban_stream),
        Command::Regex {
            json,
            raw,
            config_dir,
            threads,
            log,
            filter,
            ignoreregex,
        } => match regex_cmd::run(&regex_cmd::Args {
            log: &log,
            filter: &filter,
            ignoreregex: ignoreregex.as_deref(),
            config_dir: config_dir.as_deref(),
            json,
            raw,
            threads,
        }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("banxdp: {error:#}");
                ExitCode::from(2)
            }
        },
    }
}

/// Reads the jails of the chosen configuration and reports every problem at once; `None`
/// (after saying why) when the configuration cannot be read at all.
fn read_jails(dir: Option<&Path>) -> Option<config::fail2ban::Dump> {
    use config::{
        dump_stream,
        embedded::{self, ConfigDir, Embedded},
        fail2ban::Disk,
    };
    let chosen = embedded::choose(dir, &["/etc/banxdp", "/etc/fail2ban"], Path::is_dir);
    let read = match &chosen {
        ConfigDir::Disk(dir) if !dir.is_dir() => {
            eprintln!("banxdp: `{}` is not a directory", dir.display());
            return None;
        }
        ConfigDir::Disk(dir) => {
            tracing::info!("jails: {}", dir.display());
            dump_stream(&Disk, dir)
        }
        ConfigDir::BuiltIn => {
            tracing::info!("jails: built in (neither /etc/banxdp nor /etc/fail2ban exists)");
            dump_stream(&Embedded, Path::new(embedded::ROOT))
        }
    };
    let read = match read {
        Ok(read) => read,
        Err(error) => {
            eprintln!("banxdp: {error}");
            return None;
        }
    };
    for (file, target) in &read.loops {
        tracing::warn!(
            "include loop: `{}` includes `{}`, which is already being read; skipped",
            file.display(),
            target.display()
        );
    }
    for jail in &read.jails {
        for warning in &jail.warnings {
            tracing::warn!("{warning}");
        }
        if let Some(error) = &jail.error {
            tracing::error!("{error}; the jail is disabled");
        }
    }
    Some(read)
}

fn dump(dir: Option<&Path>, fail2ban_stream: bool) -> ExitCode {
    let Some(config::fail2ban::Dump { stream, jails, .. }) = read_jails(dir) else {
        return ExitCode::from(2);
    };
    if fail2ban_stream {
        for command in &stream {
            println!("{command}");
        }
    } else {
        print!("{}", config::fail2ban::jail::describe(&jails));
        print!("{}", enforcement(&jails));
    }
    if !jails.is_empty() && jails.iter().all(|j| j.error.is_some()) {
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

/// For `dump`: per jail, what enforces its bans (the backend banxdp.toml chooses, with the
/// jail's port scope) and which of its actions run as commands beside it.
fn enforcement(jails: &[config::fail2ban::Jail]) -> String {
    use std::fmt::Write as _;

    use crate::{
        action::{ActionSet, Context, is_firewall_action},
        config::settings::Backend,
        jail::{Services, port_scope, shadow},
    };
    let settings =
        config::load_settings(None).map_or_else(|_| config::Settings::default(), |s| s.0);
    let backend = settings.enforce.backend;
    let services = Services::parse(&std::fs::read_to_string("/etc/services").unwrap_or_default());
    let by = match backend {
        Backend::Xdp => format!(
            "xdp (where XDP cannot run: {})",
            settings
                .enforce
                .fallback
                .backend()
                .map_or("nothing", Backend::as_str)
        ),
        other => other.as_str().to_string(),
    };
    let mut out = format!("\n# enforcement (enforce.backend = {})\n", backend.as_str());
    for jail in jails.iter().filter(|j| j.error.is_none()) {
        let Ok(c) = config::jails::JailConfig::resolve(jail) else {
            continue;
        };
        let scope = port_scope(
            c.port.as_deref(),
            c.protocol.as_deref(),
            &c.actions,
            &services,
        )
        .map_err(|source| crate::jail::JailError::Ports {
            jail: jail.name.clone(),
            source,
        });
        let scope = match scope.and_then(|scope| Ok((scope, shadow(&c)?))) {
            Ok((scope, false)) => scope.to_string(),
            Ok((scope, true)) => format!("{scope} in shadow mode (counted, not dropped)"),
            Err(e) => {
                // The daemon does not start it (`JailParams::from_config` refuses it).
                let _ = writeln!(out, "[{}] disabled: {e}", jail.name);
                continue;
            }
        };
        let all = backend == Backend::Actions;
        let commands =
            ActionSet::for_jail(jail, Context::system(), |n| all || !is_firewall_action(n))
                .map_or_else(
                    |e| format!("(cannot run: {e})"),
                    |(set, _)| set.names().join(", "),
                );
        let enforced = if all {
            "its actions".to_string()
        } else {
            by.clone()
        };
        let _ = writeln!(
            out,
            "[{}] enforced by {enforced}, {scope}; actions run as commands: {}",
            jail.name,
            if commands.is_empty() {
                "none"
            } else {
                &commands
            }
        );
    }
    out
}

/// The jails that can run, each checked; problems were reported by `read_jails`.
fn runnable(read: &config::fail2ban::Dump) -> Vec<config::jails::JailConfig> {
    read.jails
        .iter()
        .filter(|j| j.error.is_none())
        .filter_map(|j| config::jails::JailConfig::resolve(j).ok())
        .collect()
}

/// Each runnable jail's actions that are not firewall actions (the enforcing backend does
/// those): they run as commands beside it. Python actions cannot run and are named.
/// With `all` (`enforce.backend = actions`) every action: they are the backend.
fn jail_actions(read: &config::fail2ban::Dump, all: bool) -> Vec<crate::action::ActionSet> {
    use crate::action::{ActionSet, Context, is_firewall_action};
    let mut sets = Vec::new();
    for jail in read.jails.iter().filter(|j| j.error.is_none()) {
        match ActionSet::for_jail(jail, Context::system(), |name| {
            all || !is_firewall_action(name)
        }) {
            Ok((set, python)) => {
                for name in python {
                    tracing::warn!(
                        "jail `{}`: action `{name}` is a Python action, which banxdp cannot run",
                        jail.name
                    );
                }
                sets.push(set);
            }
            Err(error) => tracing::error!(
                "jail `{}`: its actions cannot run: {error}; the jail bans without them",
                jail.name
            ),
        }
    }
    sets
}

fn run(
    config: Option<&Path>,
    config_dir: Option<&Path>,
    socket: Option<PathBuf>,
    xdp_object: Option<PathBuf>,
) -> ExitCode {
    let (mut settings, origin) = match config::load_settings(config) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("banxdp: {:#}", anyhow::Error::from(error));
            return ExitCode::from(2);
        }
    };
    let logtarget = &settings.daemon.logtarget;
    let file = (!logtarget.eq_ignore_ascii_case("stderr")).then(|| PathBuf::from(logtarget));
    if let Err(error) = crate::logging::init(file.as_deref()) {
        eprintln!("banxdp: cannot open the log `{logtarget}`: {error}");
        return ExitCode::from(2);
    }
    tracing::info!("settings: {origin:?}");
    if let Some(socket) = socket {
        settings.daemon.socket = socket;
    }
    let from_settings =
        Some(settings.daemon.config_dir.clone()).filter(|d| !d.as_os_str().is_empty());
    let dir: Option<PathBuf> = config_dir.map(Path::to_path_buf).or(from_settings);
    let Some(read) = read_jails(dir.as_deref()) else {
        return ExitCode::from(2);
    };
    let jails = runnable(&read);
    if jails.is_empty() && !read.jails.is_empty() {
        eprintln!("banxdp: no jail can run (every enabled jail has an error, listed above)");
        return ExitCode::from(2);
    }
    if jails.is_empty() {
        tracing::warn!("no jail is enabled");
    } else {
        let names: Vec<&str> = jails.iter().map(|j| j.name.as_str()).collect();
        tracing::info!("{} jail(s) read: {}", names.len(), names.join(", "));
    }
    let all = settings.enforce.backend == config::settings::Backend::Actions;
    let actions = jail_actions(&read, all);
    let reread = Box::new(move || {
        read_jails(dir.as_deref()).map(|read| (runnable(&read), jail_actions(&read, all)))
    });
    let options = daemon::Options {
        settings,
        jails,
        reread,
        actions,
        xdp_object,
    };
    match daemon::main(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("banxdp: {:#}", anyhow::Error::from(error));
            ExitCode::FAILURE
        }
    }
}

#[path = "regex_cmd.rs"]
mod regex_cmd;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
