//! A jail's actions that are not firewall actions (`mail-whois`, `sendmail-whois-lines`,
//! reporting actions): they run as fail2ban's action.d commands beside the backend that
//! enforces the ban. Each command may take up to its action's `timeout` (60 s by default),
//! so they run on a thread of their own, in the order the daemon sends them; the event loop
//! never waits for them.

use std::{
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, UNIX_EPOCH},
};

use crate::{
    action::{ActionSet, BanInfo},
    store::BanRecord,
};

enum Job {
    Ban(String, BanInfo),
    Unban(String, BanInfo),
}

/// The thread that runs every jail's notification actions.
pub struct Notifier {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

/// What an action knows of a ban the daemon placed or restored.
#[must_use]
pub fn ban_info(record: &BanRecord, restored: bool) -> BanInfo {
    let start = UNIX_EPOCH + Duration::from_secs(u64::try_from(record.start).unwrap_or(0));
    let mut info = BanInfo::new(record.target, start);
    info.failures = record.failures;
    info.matches.clone_from(&record.matches);
    info.bantime = record.duration.unwrap_or(-1);
    info.bancount = record.ban_count;
    info.restored = restored;
    info
}

impl Notifier {
    /// Starts the thread, which first runs every set's `actionstart`; sets without actions
    /// are dropped, and with none at all no thread is started.
    #[must_use]
    pub fn spawn(sets: Vec<ActionSet>) -> Self {
        let mut sets: Vec<ActionSet> = sets.into_iter().filter(|s| !s.is_empty()).collect();
        if sets.is_empty() {
            return Self {
                jobs: None,
                thread: None,
            };
        }
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("banxdp-actions".into())
            .spawn(move || {
                for set in &mut sets {
                    tracing::info!("[{}] actions: {}", set.jail(), set.names().join(", "));
                    if let Err(e) = set.start() {
                        tracing::error!("[{}] actionstart: {e}", set.jail());
                    }
                }
                for job in queue {
                    let (jail, info, ban) = match job {
                        Job::Ban(jail, info) => (jail, info, true),
                        Job::Unban(jail, info) => (jail, info, false),
                    };
                    let Some(set) = sets.iter_mut().find(|s| s.jail() == jail) else {
                        continue;
                    };
                    let done = if ban {
                        set.ban(&info)
                    } else {
                        set.unban(&info)
                    };
                    if let Err(e) = done {
                        tracing::error!(
                            "[{jail}] {}: {e}",
                            if ban { "actionban" } else { "actionunban" }
                        );
                    }
                }
                for set in &mut sets {
                    if let Err(e) = set.stop() {
                        tracing::error!("[{}] actionstop: {e}", set.jail());
                    }
                }
            })
            .expect("start the actions thread");
        Self {
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    /// Whether any jail has notification actions (otherwise every call is a no-op).
    #[must_use]
    pub fn runs(&self) -> bool {
        self.jobs.is_some()
    }

    /// Queues the actions of `jail`'s new (or restored) ban.
    pub fn ban(&self, jail: &str, info: BanInfo) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job::Ban(jail.to_string(), info));
        }
    }

    /// Queues the actions of the end of `jail`'s ban.
    pub fn unban(&self, jail: &str, info: BanInfo) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job::Unban(jail.to_string(), info));
        }
    }

    /// Runs what is queued, then every `actionstop`, and waits for the thread.
    pub fn stop(mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
