//! `banxdp run`: the one place that owns tokio tasks and wires the parts together.
//!
//! Lines come from the log sources (`source::follow`), go through each jail's scanner and
//! state machine (`daemon::jails` over `filter` and `jail`), and the decisions go to the ban
//! manager (`daemon::bans`), which enforces them at once and hands them to the store's
//! group-commit writer. The control socket's calls (`control::server`) are answered by the
//! same loop, so all state lives in one task and needs no lock. The loop sleeps until the
//! next line, call, signal or ban expiry.
//!
//! Start-up order matters: the control socket is bound first (so a second daemon refuses to
//! start before it touches anything), then the store is opened, the jails built, the XDP
//! program loaded, the store and the pinned maps reconciled both ways, the links a previous
//! process pinned taken over by the new program, and only then are logs read.

mod backend;
mod bans;
mod jails;
mod journals;
mod notify;
mod purge;
mod requests;
mod restore;
mod systemd;
mod trace;
pub mod xdp;

use std::{
    path::PathBuf,
    time::{Duration, SystemTime},
};

use tokio::sync::mpsc;

use journals::Journals;

use crate::{
    config::{Settings, duration::parse_seconds, jails::JailConfig, settings::Backend},
    control::server::{self, Call},
    source::{Batch, Follower},
    store::{self, Store, Writer, WriterOptions},
};

pub use bans::Bans;
pub use jails::Jails;
pub use xdp::{up_interfaces, xdp_plan};

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("xdp")]
    Xdp(#[from] crate::enforce::xdp::XdpError),
    #[error("enforcing")]
    Enforce(#[from] crate::enforce::Error),
    #[error(transparent)]
    Plan(#[from] xdp::PlanError),
    #[error("XDP cannot enforce bans ({0}) and `enforce.fallback` is `none`")]
    NoBackend(String),
    #[error("control socket")]
    Control(#[from] server::ServerError),
    #[error("ban store")]
    Store(#[from] store::StoreError),
    #[error("log sources")]
    Source(#[from] crate::source::SourceError),
    #[error("cannot start the event loop")]
    Runtime(#[source] std::io::Error),
}

/// What `banxdp run` was given.
pub struct Options {
    pub settings: Settings,
    /// The jails read from the configuration, each checked (`JailConfig::resolve`).
    pub jails: Vec<JailConfig>,
    /// Reads the jails again for `reload` (the configuration directory chosen at start).
    pub reread: Box<dyn Fn() -> Option<Reread> + Send>,
    /// Each jail's actions that are not firewall actions (mail, reporting): they run as
    /// action.d commands beside the backend that enforces the bans.
    pub actions: Vec<crate::action::ActionSet>,
    pub xdp_object: Option<PathBuf>,
}

/// Seconds since the Unix epoch, now.
#[must_use]
pub fn unix_now() -> i64 {
    store::unix_seconds(SystemTime::now())
}

/// Runs the daemon until SIGINT, SIGTERM or `banxdp stop`.
pub fn main(options: Options) -> Result<(), DaemonError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    runtime.block_on(run(options))
}

/// How the loop ended.
enum End {
    Signal(&'static str),
    Stop { detach: bool },
}

/// The action sets of the jails that run: a jail disabled after its actions were read (a
/// filter that does not compile, a bad port, one the enforcer refused) starts none, so that
/// no `actionstart` (a "jail started" mail) speaks for a jail that is not there.
fn running_only(
    sets: Vec<crate::action::ActionSet>,
    running: &[String],
) -> Vec<crate::action::ActionSet> {
    sets.into_iter()
        .filter(|set| running.iter().any(|name| name == set.jail()))
        .collect()
}

async fn run(options: Options) -> Result<(), DaemonError> {
    let Options {
        settings,
        jails: configs,
        reread,
        actions,
        xdp_object,
    } = options;
    // From here on a signal waits for the event loop, which stops cleanly: one during the
    // restore must not kill the process half-way.
    let signals = Signals::new();
    let group = Some(settings.daemon.socket_group.trim())
        .filter(|g| !g.is_empty())
        .map(server::group_id)
        .transpose()?;
    let listener = server::bind(&settings.daemon.socket, group).await?;
    tracing::info!("control socket: {}", settings.daemon.socket.display());

    let store = Store::open(&settings.daemon.database)?;
    let now = unix_now();
    let purge_age = parse_seconds(&settings.daemon.dbpurgeage).unwrap_or(86_400);
    let purged = store.purge(now - purge_age)?;
    if purged > 0 {
        tracing::info!(
            "store: purged {purged} ban(s) older than {}",
            settings.daemon.dbpurgeage
        );
    }
    let mut jails = Jails::build(&configs, &store)?;
    // With `backend = actions` the jails' actions are the backend; otherwise only those
    // that are not firewall actions run, beside it.
    let (backend_actions, notifications) = if settings.enforce.backend == Backend::Actions {
        (actions, Vec::new())
    } else {
        (Vec::new(), actions)
    };
    let chosen = backend::choose(&settings, xdp_object, backend_actions)?;
    let traces = trace::Traces::spawn(chosen.tracer, chosen.why_not_xdp.as_deref());
    let mut bans = Bans::new(chosen.enforcer, None);
    jails.declare(bans.enforcer_mut());
    let writer = Writer::spawn(&settings.daemon.database, WriterOptions::default())?;
    let notifier = notify::Notifier::spawn(running_only(notifications, &jails.names()));
    let restoring = restore::Restore {
        store: &store,
        writer: &writer,
        notifier: &notifier,
        running: &jails.names(),
        chunk: store::RESTORE_CHUNK,
    };
    let restored = restoring.run(&mut bans, now)?;
    restore::Restore::report(&restored);
    bans.set_store(writer);
    // Only now, with every ban in the maps, does the new program replace the one a previous
    // process left running: a map started empty (an upgrade that changed its layout) would
    // otherwise let banned sources through until the restore.
    bans.enforcer_mut().take_over()?;
    let taken = match restored.taken_over {
        0 => String::new(),
        n => format!("; {n} taken over from pinned maps"),
    };
    tracing::info!("enforcing {} ban(s){taken}", bans.count());

    let positions = jails.positions(&store)?;
    let hourly = purge::Purger::spawn(store, purge_age, purge::PURGE_EVERY, now);
    let follower = Follower::new(jails.follow_specs(), positions)?;
    let (journals, journal_rx) = Journals::start(jails.journals());
    let (calls, call_rx) = mpsc::channel(64);
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::run(listener, calls, async move {
        let _ = server_stopped.await;
    }));
    let (asked, answers) = mpsc::unbounded_channel();
    let mut state = State {
        settings,
        jails,
        bans,
        follower,
        reread,
        notifier,
        purger: hourly,
        why_not_xdp: chosen.why_not_xdp,
        asked,
        journals,
        traces,
    };
    systemd::ready(&format!("enforcing {} ban(s)", state.bans.count()));
    let end = state.serve(signals, call_rx, journal_rx, answers).await;
    let _ = stop_server.send(());
    let _ = server.await;
    state.finish(&end)
}

/// The configuration read again for a reload: the jails to run, and each jail's actions
/// that run as commands.
pub type Reread = (Vec<JailConfig>, Vec<crate::action::ActionSet>);

/// The signals the daemon answers, caught from the start (tokio keeps one that arrives
/// before the loop looks).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            term: signal(SignalKind::terminate()).expect("SIGTERM handler"),
            int: signal(SignalKind::interrupt()).expect("SIGINT handler"),
            hup: signal(SignalKind::hangup()).expect("SIGHUP handler"),
        }
    }
}

/// Everything the loop owns.
struct State {
    settings: Settings,
    jails: Jails,
    bans: Bans,
    follower: Follower,
    reread: Box<dyn Fn() -> Option<Reread> + Send>,
    notifier: notify::Notifier,
    /// `dbpurgeage`, hourly.
    purger: purge::Purger,
    /// Why bans do not go through XDP, when they do not (`status` says it).
    why_not_xdp: Option<String>,
    /// Where a jail's `ignorecommand`, run off the loop, answers for a decided ban.
    asked: mpsc::UnboundedSender<Asked>,
    /// The journal jails' readers.
    journals: Journals,
    /// Where `trace` requests go.
    traces: trace::Traces,
}

/// A decided ban with its jail's `ignorecommand`'s answer.
type Asked = (
    String,
    crate::jail::Decision,
    Result<crate::jail::Verdict, crate::jail::IgnoreCommandError>,
);

impl State {
    /// The event loop: lines, calls, expiries and signals, one at a time.
    async fn serve(
        &mut self,
        signals: Signals,
        mut calls: mpsc::Receiver<Call>,
        mut journal: mpsc::Receiver<journals::Tagged>,
        mut answers: mpsc::UnboundedReceiver<Asked>,
    ) -> End {
        let Signals {
            mut term,
            mut int,
            mut hup,
        } = signals;
        // Closed failure windows are freed now and then; bans end at their own deadlines.
        let mut tidy = tokio::time::interval(Duration::from_secs(60));
        loop {
            let sleep = self
                .bans
                .next_deadline()
                .map_or(Duration::from_secs(3600), |at| {
                    Duration::from_secs(u64::try_from(at - unix_now()).unwrap_or(0))
                });
            tokio::select! {
                _ = term.recv() => return End::Signal("SIGTERM"),
                _ = int.recv() => return End::Signal("SIGINT"),
                _ = hup.recv() => {
                    self.reload(None);
                }
                batch = self.follower.next() => self.lines(&batch),
                Some((jail, generation, entry)) = journal.recv() => {
                    if !self.journals.accept(&jail, generation, &entry) {
                        continue;
                    }
                    let now = unix_now();
                    let decided = self.jails.journal_line(&jail, &entry.line, entry.realtime_us, now);
                    self.enforce(decided);
                }
                Some(call) = calls.recv() => {
                    if let Some(end) = self.call(call) {
                        return end;
                    }
                }
                Some((jail, decision, said)) = answers.recv() => {
                    if !self.jails.command_said(&jail, decision.target, &said) {
                        self.place_decided(&jail, decision);
                    }
                }
                () = tokio::time::sleep(sleep) => self.expire(),
                _ = tidy.tick() => {
                    self.jails.expire_failures(unix_now());
                    self.purger.tick(unix_now());
                    if let Err(error) = self.bans.tidy() {
                        tracing::warn!("enforcement upkeep: {:#}", anyhow::Error::from(error));
                    }
                }
            }
        }
    }

    /// A batch of lines from one file: through its jails, then the bans they decided, then
    /// the file's new position to the store.
    fn lines(&mut self, batch: &Batch) {
        let decided = self.jails.lines(batch, unix_now());
        self.enforce(decided);
        if let Some(store) = self.bans.store() {
            let position = jails::log_position(&batch.position);
            for jail in self.jails.readers(&batch.specs) {
                store.set_log_position(jail, &batch.path, position.clone());
            }
        }
    }

    /// Enforces the bans the jails decided. A jail with an `ignorecommand` asks it first, on
    /// a thread of its own: the loop goes on with other lines, calls and expiries meanwhile,
    /// and places the ban when the answer comes (see `serve`).
    fn enforce(&mut self, decided: Vec<(String, crate::jail::Decision)>) {
        for (jail, decision) in decided {
            match self.jails.ignorecommand(&jail) {
                Some(command) => {
                    let asked = self.asked.clone();
                    tokio::task::spawn_blocking(move || {
                        let said = jails::ask_ignorecommand(&command, decision.target);
                        let _ = asked.send((jail, decision, said));
                    });
                }
                None => self.place_decided(&jail, decision),
            }
        }
    }

    fn place_decided(&mut self, jail: &str, decision: crate::jail::Decision) {
        if let Err(error) = self.place(jail, decision) {
            tracing::error!("[{jail}] cannot ban: {:#}", anyhow::Error::from(error));
        }
    }

    fn expire(&mut self) {
        match self.bans.expire(unix_now()) {
            Ok(due) => {
                for (jail, target) in due {
                    self.jails.unbanned(&jail, target);
                    let info = crate::action::BanInfo::new(target, SystemTime::now());
                    self.notifier.unban(&jail, info);
                    tracing::info!(target: crate::logging::ACTIONS, "[{jail}] Unban {}", requests::target_text(target));
                }
            }
            Err(error) => tracing::error!("lifting expired bans: {:#}", anyhow::Error::from(error)),
        }
    }

    fn finish(self, end: &End) -> Result<(), DaemonError> {
        systemd::stopping();
        let detach = match end {
            End::Signal(name) => {
                tracing::info!("{name}: stopping");
                self.settings.xdp.detach_on_exit
            }
            End::Stop { detach } => *detach || self.settings.xdp.detach_on_exit,
        };
        self.notifier.stop();
        self.purger.stop();
        let (enforcer, writer) = self.bans.into_parts();
        if let Some(writer) = writer {
            writer.close()?;
        }
        if detach {
            tracing::info!("stopping: detaching and removing pins");
            enforcer.detach()?;
        } else {
            tracing::info!("stopping: pinned XDP state keeps enforcing until the next start");
        }
        Ok(())
    }
}
