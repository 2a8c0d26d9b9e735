//! `dbpurgeage` while the daemon runs: the store forgets bans that ended more than that long
//! ago, at start and then every [`PURGE_EVERY`] (as fail2ban purges hourly), so the file and
//! the ban history of a long-running daemon stay bounded.
//!
//! A purge of many rows takes seconds of disk work, so it runs on a thread of its own with
//! its own connection (the store's reading side); it deletes in chunks, between which the
//! group-commit writer takes the lock, so bans keep being committed while it runs. The event
//! loop only says when ([`Purger::tick`] on its tidy tick): time is given, never read here.

use std::{sync::mpsc, thread::JoinHandle};

use crate::store::Store;

/// How often the running daemon purges, in seconds.
pub const PURGE_EVERY: i64 = 3600;

/// The thread that purges, and when it last did.
pub struct Purger {
    jobs: Option<mpsc::Sender<i64>>,
    thread: Option<JoinHandle<usize>>,
    /// `dbpurgeage`, seconds.
    age: i64,
    every: i64,
    last: i64,
}

impl Purger {
    /// Starts the thread with `store`, which was purged at `now` (at start); the next purge
    /// is due `every` seconds later.
    #[must_use]
    pub fn spawn(store: Store, age: i64, every: i64, now: i64) -> Self {
        let (jobs, queue) = mpsc::channel::<i64>();
        let thread = std::thread::Builder::new()
            .name("banxdp-purge".into())
            .spawn(move || {
                let mut total = 0;
                for older_than in queue {
                    match store.purge(older_than) {
                        Ok(0) => {}
                        Ok(purged) => {
                            total += purged;
                            tracing::info!("store: purged {purged} ban(s) that ended before {older_than} (dbpurgeage)");
                        }
                        Err(error) => tracing::error!("store: purge: {:#}", anyhow::Error::from(error)),
                    }
                }
                total
            })
            .expect("start the purge thread");
        Self {
            jobs: Some(jobs),
            thread: Some(thread),
            age,
            every,
            last: now,
        }
    }

    /// Asks for a purge when `every` seconds have passed since the last one; returns whether
    /// it did. The purge itself runs on the thread.
    pub fn tick(&mut self, now: i64) -> bool {
        if now < self.last.saturating_add(self.every) {
            return false;
        }
        self.last = now;
        self.jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(now.saturating_sub(self.age)).is_ok())
    }

    /// Finishes the purges asked for and stops the thread; returns how many rows they
    /// deleted.
    pub fn stop(mut self) -> usize {
        drop(self.jobs.take());
        self.thread
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BanRecord, Writer, WriterOptions};

    const NOW: i64 = 1_764_900_000;

    fn record(target: &str, start: i64) -> BanRecord {
        BanRecord {
            jail: "sshd".into(),
            target: crate::enforce::parse_target(target).unwrap(),
            start,
            duration: Some(600),
            ban_count: 1,
            failures: 3,
            matches: Vec::new(),
        }
    }

    #[test]
    fn the_running_daemon_purges_every_hour_what_ended_before_dbpurgeage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("banxdp.sqlite3");
        let writer = Writer::spawn(&path, WriterOptions::default()).unwrap();
        // Ended two days before NOW (purged at the first hourly purge), ended 22.5 h before
        // NOW (at the second), ends after NOW (kept).
        writer.add_ban(record("192.0.2.1", NOW - 2 * 86_400));
        writer.add_ban(record("192.0.2.2", NOW - 81_600));
        writer.add_ban(record("192.0.2.3", NOW));
        writer.sync().unwrap();
        let count = |store: &Store| store.totals().unwrap().first().map_or(0, |t| t.1);
        let check = Store::open(&path).unwrap();
        let mut purger = Purger::spawn(Store::open(&path).unwrap(), 86_400, PURGE_EVERY, NOW);
        assert!(
            !purger.tick(NOW + 60),
            "not due a minute after the start's purge"
        );
        assert!(!purger.tick(NOW + PURGE_EVERY - 1));
        assert!(purger.tick(NOW + PURGE_EVERY), "due after an hour");
        assert!(!purger.tick(NOW + PURGE_EVERY + 60));
        // The writer keeps committing while the purge thread works.
        writer.add_ban(record("192.0.2.4", NOW + PURGE_EVERY));
        writer.sync().unwrap();
        assert!(purger.tick(NOW + 2 * PURGE_EVERY));
        assert_eq!(purger.stop(), 2, "the two old bans, one per purge");
        assert_eq!(count(&check), 2);
        let active = check.active_bans(NOW + PURGE_EVERY).unwrap();
        let targets: Vec<String> = active.iter().map(|b| b.target.addr().to_string()).collect();
        assert_eq!(targets, ["192.0.2.4"]);
        writer.close().unwrap();
    }
}
