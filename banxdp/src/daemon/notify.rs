//! A jail's actions that are not firewall actions (`mail-whois`, `sendmail-whois-lines`,
//! reporting actions): they run as fail2ban's action.d commands beside the backend that
//! enforces the ban. Each command may take up to its action's `timeout` (60 s by default),
//! so each jail's actions run on a thread of their own, in the order the daemon sends them
//! (as fail2ban runs each jail's actions in the jail's thread): the event loop never waits
//! for them, and a slow mail server delays no other jail. A reload keeps a jail's thread
//! when its actions are configured as before, and otherwise stops it (`actionstop`, after
//! what it was given) and starts the new set (`actionstart`).

use std::{
    collections::HashMap,
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, UNIX_EPOCH},
};

use crate::{
    action::{ActionSet, BanInfo},
    store::BanRecord,
};

enum Job {
    Ban(BanInfo),
    Unban(BanInfo),
}

/// Every jail's notification actions, a thread per jail.
pub struct Notifier {
    workers: HashMap<String, Worker>,
    /// Threads of sets a reload replaced, still finishing their queue and `actionstop`.
    retired: Vec<JoinHandle<()>>,
}

struct Worker {
    definition: Vec<String>,
    jobs: mpsc::Sender<Job>,
    thread: JoinHandle<()>,
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
    /// Starts a thread per set, which first runs the set's `actionstart`; sets without
    /// actions get none.
    #[must_use]
    pub fn spawn(sets: Vec<ActionSet>) -> Self {
        let mut notifier = Self {
            workers: HashMap::new(),
            retired: Vec::new(),
        };
        for set in sets {
            notifier.start(set);
        }
        notifier
    }

    fn start(&mut self, mut set: ActionSet) {
        if set.is_empty() {
            return;
        }
        let jail = set.jail().to_string();
        let definition = set.definition();
        let (jobs, queue) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name(format!("banxdp-act-{jail}").chars().take(15).collect())
            .spawn(move || {
                tracing::info!("[{}] actions: {}", set.jail(), set.names().join(", "));
                if let Err(e) = set.start() {
                    tracing::error!("[{}] actionstart: {e}", set.jail());
                }
                for job in queue {
                    let (done, ban) = match job {
                        Job::Ban(info) => (set.ban(&info), true),
                        Job::Unban(info) => (set.unban(&info), false),
                    };
                    if let Err(e) = done {
                        tracing::error!(
                            "[{}] {}: {e}",
                            set.jail(),
                            if ban { "actionban" } else { "actionunban" }
                        );
                    }
                }
                if let Err(e) = set.stop() {
                    tracing::error!("[{}] actionstop: {e}", set.jail());
                }
            });
        match spawned {
            Ok(thread) => {
                self.workers.insert(
                    jail,
                    Worker {
                        definition,
                        jobs,
                        thread,
                    },
                );
            }
            Err(e) => tracing::error!("[{jail}] cannot start its actions' thread: {e}"),
        }
    }

    /// After a reload: the sets of `jails` (every jail when `None`) as `sets` has them. A
    /// set configured as before keeps running; another replaces the old one, which first
    /// finishes what it was given and runs its `actionstop`.
    pub fn replace(&mut self, sets: Vec<ActionSet>, jails: Option<&str>) {
        let concerned = |jail: &str| jails.is_none_or(|only| only == jail);
        let mut wanted: HashMap<String, ActionSet> = sets
            .into_iter()
            .filter(|s| concerned(s.jail()) && !s.is_empty())
            .map(|s| (s.jail().to_string(), s))
            .collect();
        let old: Vec<String> = self
            .workers
            .keys()
            .filter(|j| concerned(j))
            .cloned()
            .collect();
        for jail in old {
            if wanted
                .get(&jail)
                .is_some_and(|set| set.definition() == self.workers[&jail].definition)
            {
                wanted.remove(&jail);
                continue;
            }
            if let Some(worker) = self.workers.remove(&jail) {
                drop(worker.jobs);
                self.retired.push(worker.thread);
            }
        }
        for (_, set) in wanted {
            self.start(set);
        }
    }

    /// Whether any jail has notification actions (otherwise every call is a no-op, and no thread runs).
    #[must_use]
    pub fn runs(&self) -> bool {
        !self.workers.is_empty()
    }

    /// Queues the actions of `jail`'s new (or restored) ban.
    pub fn ban(&self, jail: &str, info: BanInfo) {
        if let Some(worker) = self.workers.get(jail) {
            let _ = worker.jobs.send(Job::Ban(info));
        }
    }

    /// Queues the actions of the end of `jail`'s ban.
    pub fn unban(&self, jail: &str, info: BanInfo) {
        if let Some(worker) = self.workers.get(jail) {
            let _ = worker.jobs.send(Job::Unban(info));
        }
    }

    /// Runs what is queued, then every `actionstop`, and waits for the threads.
    pub fn stop(self) {
        let mut threads = self.retired;
        for (_, worker) in self.workers {
            drop(worker.jobs);
            threads.push(worker.thread);
        }
        for thread in threads {
            let _ = thread.join();
        }
    }
}
