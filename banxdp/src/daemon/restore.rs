//! Start-up restore: the store's active bans streamed into the enforcer a chunk at a time
//! (one `ban_many` each), reconciled with what the pinned maps hold, without holding the
//! store in memory: what stays is the daemon's compact index of bans (`Bans`) and, while
//! the restore runs, the maps' side of the reconciliation.
//!
//! Semantics: every active ban of a running jail is applied (idempotent for those the pinned
//! maps kept, and it brings back a ban the maps lost or shortened); a ban found only in the
//! maps, or with a later end there, is adopted into the store; bans of jails not running now
//! (removed, or disabled by an error) are neither restored nor lifted, since a broken jail
//! must not open the gate.

use crate::store::{Reconciler, Store, Stored, Writer};

use super::{Bans, DaemonError, notify};

/// What a restore did, for the daemon's log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Active bans of running jails read from the store and applied.
    pub applied: usize,
    /// Active bans of jails not running, left alone.
    pub orphans: usize,
    /// Bans found only in the maps (or longer there), adopted into the store.
    pub adopted: usize,
    /// Entries the maps held at start.
    pub taken_over: usize,
}

/// Gives the memory the restore used for a while (the maps' side of the reconciliation,
/// the chunks, the index's smaller tables before it grew) back to the system: freed in the
/// middle of the heap, glibc would keep it, and the daemon's resident size would stay at its
/// start-up peak for good.
fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists; no pointer is given.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Where a restore reads, writes and reports.
pub struct Restore<'a> {
    pub store: &'a Store,
    pub writer: &'a Writer,
    pub notifier: &'a notify::Notifier,
    /// The jails running now.
    pub running: &'a [String],
    /// Active bans read and applied at once.
    pub chunk: usize,
}

impl Restore<'_> {
    /// Restores into `bans` (whose enforcer knows the running jails already) what the store
    /// holds at `now`, then adopts what only the maps hold.
    pub fn run(&self, bans: &mut Bans, now: i64) -> Result<Restored, DaemonError> {
        let mut reconciler = Reconciler::new(now);
        bans.enforcer()
            .each_active(&mut |entry| reconciler.mapped(&entry))?;
        let mut done = Restored {
            taken_over: reconciler.mapped_count(),
            ..Restored::default()
        };
        let chunks = self
            .store
            .active_chunks(now, self.chunk)
            .with_matches(self.notifier.runs());
        for chunk in chunks {
            // Targets that neither the maps nor an earlier chunk hold go in without the
            // backend looking them up; bans the maps hold as they are need no write; the
            // others are merged with what the maps hold.
            let (mut new, mut same, mut merged) = (Vec::new(), Vec::new(), Vec::new());
            for record in chunk? {
                let mapped = reconciler.stored(&record);
                if !self.running.contains(&record.jail) {
                    done.orphans += 1;
                    continue;
                }
                let list = match mapped {
                    Stored::Same => &mut same,
                    Stored::Absent if !bans.holds_any(record.target) => &mut new,
                    Stored::Absent | Stored::Other => &mut merged,
                };
                list.push(record);
            }
            bans.restore_new(&new)?;
            bans.track(&same);
            bans.restore(&merged)?;
            done.applied += new.len() + same.len() + merged.len();
            if self.notifier.runs() {
                for record in new.iter().chain(&same).chain(&merged) {
                    self.notifier
                        .ban(&record.jail, notify::ban_info(record, true));
                }
            }
        }
        let plan = reconciler.finish();
        for ban in plan.adopt.iter().filter(|b| self.running.contains(&b.jail)) {
            let record = self.store.adopted(ban, now)?;
            bans.restore(std::slice::from_ref(&record))?;
            self.writer.add_ban(record);
            done.adopted += 1;
        }
        release_freed_memory();
        Ok(done)
    }

    /// Logs what [`Restore::run`] did.
    pub fn report(done: &Restored) {
        if done.orphans > 0 {
            tracing::warn!(
                "store: {} active ban(s) of jails that are not running are not restored (what \
                 the pinned maps hold of them keeps dropping until it expires)",
                done.orphans
            );
        }
        if done.adopted > 0 {
            tracing::info!(
                "store: adopted {} ban(s) found only in the pinned maps",
                done.adopted
            );
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::{
        path::Path,
        sync::{Arc, Mutex},
    };

    use ipnet::IpNet;

    use super::*;
    use crate::{
        enforce::{self, ActiveBan, Ban, Enforcer, Expiry, JailScope, book::Book, parse_target},
        store::{BanRecord, WriterOptions, from_unix},
    };

    const NOW: i64 = 1_764_900_000;

    /// What the backend was asked: its bans (the shared bookkeeping the real backends use)
    /// and the size of each `ban_many`.
    #[derive(Default)]
    pub(in crate::daemon) struct Log {
        pub book: Book,
        pub batches: Vec<usize>,
        /// Bans given through `ban_many_new`.
        pub news: usize,
    }

    /// A backend that records, for tests above the kernel.
    pub(in crate::daemon) struct Recording(pub Arc<Mutex<Log>>);

    impl Enforcer for Recording {
        fn name(&self) -> &'static str {
            "recording"
        }
        fn add_jail(&mut self, _: &JailScope) -> Result<(), enforce::Error> {
            Ok(())
        }
        fn remove_jail(&mut self, name: &str) -> Result<(), enforce::Error> {
            self.0.lock().unwrap().book.remove_jail(name);
            Ok(())
        }
        fn ban_many(&mut self, bans: &[Ban]) -> Result<(), enforce::Error> {
            let mut log = self.0.lock().unwrap();
            for ban in bans {
                log.book.ban(&ban.jail, ban.target, ban.expiry);
            }
            log.batches.push(bans.len());
            Ok(())
        }
        /// Checks the promise: no target here is held by any jail yet.
        fn ban_many_new(&mut self, bans: &[Ban]) -> Result<(), enforce::Error> {
            let held = self.0.lock().unwrap().book.active();
            for ban in bans {
                assert!(
                    held.iter().all(|h| h.target != ban.target),
                    "{} is held already",
                    ban.target
                );
            }
            self.0.lock().unwrap().news += bans.len();
            self.ban_many(bans)
        }
        fn unban(&mut self, jail: &str, target: IpNet) -> Result<(), enforce::Error> {
            self.0.lock().unwrap().book.unban(jail, target);
            Ok(())
        }
        fn set_allowed(&mut self, _: &[IpNet]) -> Result<(), enforce::Error> {
            Ok(())
        }
        fn active(&self) -> Result<Vec<ActiveBan>, enforce::Error> {
            Ok(self.0.lock().unwrap().book.active())
        }
        fn remove_expired(&mut self) -> Result<usize, enforce::Error> {
            Ok(0)
        }
    }

    fn net(text: &str) -> IpNet {
        parse_target(text).unwrap()
    }

    fn record(jail: &str, target: &str, start: i64, duration: i64) -> BanRecord {
        BanRecord {
            jail: jail.into(),
            target: net(target),
            start,
            duration: Some(duration),
            ban_count: 1,
            failures: 3,
            matches: vec![format!("failed from {target}")],
        }
    }

    fn at(unix: i64) -> Expiry {
        Expiry::At(from_unix(unix))
    }

    /// 25 bans of `sshd` (each ending a second later than the one before), 10 of `web`
    /// and one of `web` on a target `sshd` bans too (far from it in the file), 3 of a jail
    /// that is not running, and rows that do not hold (expired, lifted) between them.
    fn fill(path: &Path) -> Vec<(String, IpNet, Expiry)> {
        let w = Writer::spawn(path, WriterOptions::default()).unwrap();
        let mut want = Vec::new();
        for i in 0..25 {
            let target = format!("10.0.0.{i}");
            w.add_ban(record("sshd", &target, NOW - 10 + i, 600));
            want.push(("sshd".to_string(), net(&target), at(NOW + 590 + i)));
            w.add_ban(record("sshd", &format!("10.0.9.{i}"), NOW - 900, 600));
            if i % 5 == 0 {
                w.add_ban(record("gone", &format!("10.0.7.{i}"), NOW, 600));
                w.add_ban(record("web", &format!("10.0.8.{i}"), NOW, 600));
                w.remove_ban("web", net(&format!("10.0.8.{i}")), NOW - 1);
            }
        }
        for i in 0..10 {
            let target = format!("2001:db8::{i}");
            w.add_ban(record("web", &target, NOW, 3600));
            want.push(("web".to_string(), net(&target), at(NOW + 3600)));
        }
        w.add_ban(record("web", "10.0.0.3", NOW, 7200));
        want.push(("web".to_string(), net("10.0.0.3"), at(NOW + 7200)));
        w.close().unwrap();
        want.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        want
    }

    fn booked(log: &Log) -> Vec<(String, IpNet, Expiry)> {
        let mut all: Vec<_> = ["gone", "sshd", "web"]
            .iter()
            .flat_map(|jail| {
                log.book
                    .of_jail(jail)
                    .into_iter()
                    .map(|(t, e)| ((*jail).to_string(), t, e))
            })
            .collect();
        all.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        all
    }

    /// Restores the store at `path` into a recording backend that holds `mapped` already.
    fn restore(path: &Path, chunk: usize, mapped: &[Ban]) -> (Bans, Arc<Mutex<Log>>, Restored) {
        let log = Arc::new(Mutex::new(Log::default()));
        let mut bans = Bans::new(Box::new(Recording(Arc::clone(&log))), None);
        bans.enforcer_mut().ban_many(mapped).unwrap();
        log.lock().unwrap().batches.clear();
        let store = Store::open(path).unwrap();
        let writer = Writer::spawn(path, WriterOptions::default()).unwrap();
        let notifier = notify::Notifier::spawn(Vec::new());
        let running = ["sshd".to_string(), "web".to_string()];
        let done = Restore {
            store: &store,
            writer: &writer,
            notifier: &notifier,
            running: &running,
            chunk,
        }
        .run(&mut bans, NOW)
        .unwrap();
        writer.close().unwrap();
        (bans, log, done)
    }

    #[test]
    fn a_store_larger_than_a_chunk_is_restored_whatever_the_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("banxdp.sqlite3");
        let want = fill(&path);
        assert_eq!(want.len(), 36);
        for chunk in [1, 2, 7, 35, 36, 37, 40, 1000] {
            let (bans, log, done) = restore(&path, chunk, &[]);
            let log = log.lock().unwrap();
            assert_eq!(booked(&log), want, "chunk {chunk}");
            assert!(
                log.batches.iter().all(|&n| n <= chunk),
                "chunk {chunk}: batches {:?}",
                log.batches
            );
            assert_eq!(log.batches.iter().sum::<usize>(), 36, "chunk {chunk}");
            // Only the second jail's ban of a target banned in an earlier chunk needs a look.
            // (41 active rows, the 5 of the jail not running included.)
            let merged = usize::from(chunk < 41);
            assert_eq!(log.news, 36 - merged, "chunk {chunk}");
            let expect = Restored {
                applied: 36,
                orphans: 5,
                adopted: 0,
                taken_over: 0,
            };
            assert_eq!(done, expect, "chunk {chunk}");
            assert_eq!(bans.count(), 36);
            assert_eq!(bans.next_deadline(), Some(NOW + 590));
            assert_eq!(bans.of_jail("web").len(), 11);
            assert_eq!(
                bans.held("web", net("10.0.0.3")).map(|h| h.end),
                Some(Some(NOW + 7200))
            );
            assert_eq!(
                bans.held("sshd", net("10.0.0.3")).map(|h| h.end),
                Some(Some(NOW + 593))
            );
        }
    }

    #[test]
    fn a_restart_whose_maps_agree_with_the_store_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("banxdp.sqlite3");
        let want = fill(&path);
        // What a first run left pinned (the jail not running had its bans pinned too).
        let (_, first, _) = restore(&path, 7, &[]);
        let pinned: Vec<Ban> = booked(&first.lock().unwrap())
            .into_iter()
            .map(|(jail, target, expiry)| Ban {
                jail,
                target,
                expiry,
            })
            .collect();
        let (bans, log, done) = restore(&path, 7, &pinned);
        let log = log.lock().unwrap();
        assert_eq!((done.applied, done.adopted, done.taken_over), (36, 0, 35));
        // Only the target two jails share is written again (merged, once for each jail, in
        // two chunks); the rest stays as pinned.
        assert_eq!(log.batches, [1, 1], "{:?}", log.batches);
        assert_eq!(booked(&log), want);
        assert_eq!(bans.count(), 36);
        assert_eq!(bans.next_deadline(), Some(NOW + 590));
    }

    #[test]
    fn the_maps_and_the_store_are_reconciled_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("banxdp.sqlite3");
        let want = fill(&path);
        let ban = |jail: &str, target: &str, end: i64| Ban {
            jail: jail.into(),
            target: net(target),
            expiry: at(end),
        };
        let mapped = [
            // Only in the maps: adopted.
            ban("sshd", "10.9.9.9", NOW + 5000),
            // Longer in the maps than in the store: the longer end adopted.
            ban("sshd", "10.0.0.1", NOW + 9000),
            // Shorter in the maps: the store's end re-applied.
            ban("sshd", "10.0.0.2", NOW + 100),
            // Of a jail not running: left as it is, not adopted.
            ban("gone", "10.8.8.8", NOW + 5000),
        ];
        let (bans, log, done) = restore(&path, 7, &mapped);
        assert_eq!((done.adopted, done.taken_over, done.applied), (2, 4, 36));
        // 10.0.0.1 and 10.0.0.2 are in the maps, 10.0.0.3 is held by then: merged.
        assert_eq!(log.lock().unwrap().news, 33);
        let mut expect = want;
        expect.push(("sshd".into(), net("10.9.9.9"), at(NOW + 5000)));
        expect.push(("gone".into(), net("10.8.8.8"), at(NOW + 5000)));
        for entry in &mut expect {
            if entry.0 == "sshd" && entry.1 == net("10.0.0.1") {
                entry.2 = at(NOW + 9000);
            }
        }
        expect.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        assert_eq!(booked(&log.lock().unwrap()), expect);
        assert_eq!(bans.count(), 37, "the other jail's entry is not held");
        assert_eq!(
            bans.held("sshd", net("10.0.0.1")).map(|h| h.end),
            Some(Some(NOW + 9000))
        );
        // The adopted bans are in the store now: a second start finds both sides agreeing
        // (for the running jails; the other one is left as it was).
        let store = Store::open(&path).unwrap();
        let stored = store.active_bans(NOW).unwrap();
        let adopted = stored
            .iter()
            .find(|r| r.target == net("10.9.9.9"))
            .expect("adopted into the store");
        assert_eq!((adopted.start, adopted.until()), (NOW, Some(NOW + 5000)));
        let mapped = log.lock().unwrap().book.active();
        let plan = crate::store::reconcile(&stored, &mapped, NOW);
        let running = |b: &&Ban| b.jail != "gone";
        assert_eq!(plan.adopt.iter().filter(running).count(), 0, "{plan:?}");
        assert_eq!(plan.reapply.iter().filter(running).count(), 0, "{plan:?}");
    }
}
