//! The `banxdp` command line: argument parsing and exit codes only; the work is elsewhere
//! in the library. `src/main.rs` calls [`main`], and so does the test suite's copy of the
//! binary, so that tests run exactly what users run.
//!
//! Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::{config, daemon};

#[derive(Parser)]
#[command(version, about = "fail2ban's jails, enforced by XDP at the NIC")]
struct Cli {
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
}

/// The `banxdp` program.
#[must_use]
pub fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    match Cli::parse().command {
        Command::Run {
            config,
            config_dir,
            xdp_object,
        } => run(config.as_deref(), config_dir.as_deref(), xdp_object),
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
            log::info!("jails: {}", dir.display());
            dump_stream(&Disk, dir)
        }
        ConfigDir::BuiltIn => {
            log::info!("jails: built in (neither /etc/banxdp nor /etc/fail2ban exists)");
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
        log::warn!(
            "include loop: `{}` includes `{}`, which is already being read; skipped",
            file.display(),
            target.display()
        );
    }
    for jail in &read.jails {
        for warning in &jail.warnings {
            log::warn!("{warning}");
        }
        if let Some(error) = &jail.error {
            log::error!("{error}; the jail is disabled");
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
    }
    if !jails.is_empty() && jails.iter().all(|j| j.error.is_some()) {
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

fn run(config: Option<&Path>, config_dir: Option<&Path>, xdp_object: Option<PathBuf>) -> ExitCode {
    let (settings, origin) = match config::load_settings(config) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("banxdp: {:#}", anyhow::Error::from(error));
            return ExitCode::from(2);
        }
    };
    log::info!("settings: {origin:?}");
    let from_settings =
        Some(settings.daemon.config_dir.as_path()).filter(|d| !d.as_os_str().is_empty());
    let Some(read) = read_jails(config_dir.or(from_settings)) else {
        return ExitCode::from(2);
    };
    let ready: Vec<&str> = read
        .jails
        .iter()
        .filter(|j| j.error.is_none())
        .map(|j| j.name.as_str())
        .collect();
    if ready.is_empty() && !read.jails.is_empty() {
        eprintln!("banxdp: no jail can run (every enabled jail has an error, listed above)");
        return ExitCode::from(2);
    }
    if ready.is_empty() {
        log::warn!("no jail is enabled");
    } else {
        log::info!("{} jail(s) read: {}", ready.len(), ready.join(", "));
    }
    let result = daemon::xdp_plan(&settings, xdp_object)
        .map_err(anyhow::Error::from)
        .and_then(|plan| {
            let stop = signals::Stop::install().context("cannot install signal handlers")?;
            daemon::run(&settings, &plan, |timeout| stop.wait(timeout)).map_err(Into::into)
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("banxdp: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[path = "regex_cmd.rs"]
mod regex_cmd;

mod signals {
    //! SIGINT and SIGTERM, taken synchronously: blocked, then waited for with a timeout.

    use super::Duration;

    pub struct Stop {
        set: libc::sigset_t,
    }

    impl Stop {
        pub fn install() -> std::io::Result<Self> {
            // SAFETY: sigset operations on a local, zero-initialised set.
            unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&raw mut set);
                libc::sigaddset(&raw mut set, libc::SIGINT);
                libc::sigaddset(&raw mut set, libc::SIGTERM);
                if libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(Self { set })
            }
        }

        /// Waits up to `timeout`; true when a stop signal arrived.
        pub fn wait(&self, timeout: Duration) -> bool {
            let ts = libc::timespec {
                tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
            };
            // SAFETY: valid set and timespec; no siginfo wanted.
            unsafe {
                libc::sigtimedwait(&raw const self.set, std::ptr::null_mut(), &raw const ts) > 0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn signal_wait_times_out_without_a_signal() {
        let stop = signals::Stop::install().unwrap();
        assert!(!stop.wait(Duration::from_millis(10)));
    }
}
