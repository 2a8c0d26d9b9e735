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

use crate::store::{Reconciler, Store, Writer};

use super::{Bans, DaemonError, notify};

/// What a restore did, for the daemon's log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Active bans of running jails read from the store and applied.
    pub restored: usize,
    /// Active bans of jails not running, left alone.
    pub orphans: usize,
    /// Bans found only in the maps (or longer there), adopted into the store.
    pub adopted: usize,
    /// Entries the maps held at start.
    pub taken_over: usize,
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
        let mapped = bans.active()?;
        let mut reconciler = Reconciler::new(&mapped, now);
        let mut done = Restored {
            taken_over: mapped.len(),
            ..Restored::default()
        };
        let chunks = self
            .store
            .active_chunks(now, self.chunk)
            .with_matches(self.notifier.runs());
        for chunk in chunks {
            let mut chunk = chunk?;
            for record in &chunk {
                reconciler.stored(record);
            }
            let before = chunk.len();
            chunk.retain(|r| self.running.contains(&r.jail));
            done.orphans += before - chunk.len();
            bans.restore(&chunk)?;
            done.restored += chunk.len();
            if self.notifier.runs() {
                for record in &chunk {
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
