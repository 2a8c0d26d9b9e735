//! Reading the store at start without holding it whole: the active bans in chunks, in the
//! order they were written ([`ActiveChunks`]), and each jail's ban history as a callback
//! ([`Store::each_history`]), so that a million bans cost one chunk of records in memory
//! rather than a million.
//!
//! Chunks are read by rowid ranges (`id > last LIMIT n`), each one query, so no statement
//! stays open between them and the caller may do anything (enforce, write through the
//! [`super::Writer`]) in between.

use ipnet::IpNet;
use rusqlite::params;

use super::{BanRecord, Store, StoreError, read_record};
use crate::enforce::parse_target;

/// How many active bans [`Store::active_chunks`] reads at once by default: large enough that
/// the enforcer's batch update is worth it, small enough that a chunk of records costs a few
/// megabytes.
pub const RESTORE_CHUNK: usize = 20_000;

/// The active bans of a store, a chunk at a time (see [`Store::active_chunks`]).
pub struct ActiveChunks<'s> {
    store: &'s Store,
    now: i64,
    chunk: usize,
    matches: bool,
    /// The rowid of the last row read.
    after: i64,
    done: bool,
}

impl ActiveChunks<'_> {
    /// Reads each ban's matched lines too (notification actions of restored bans need them);
    /// without this, `matches` is empty, which spares parsing them.
    #[must_use]
    pub fn with_matches(mut self, matches: bool) -> Self {
        self.matches = matches;
        self
    }

    fn next_chunk(&mut self) -> Result<Vec<BanRecord>, StoreError> {
        let matches = if self.matches { "matches" } else { "'[]'" };
        let sql = format!(
            "SELECT jail, target, start, until, ban_count, failures, {matches}, id FROM bans \
             WHERE id > ?1 AND ended IS NULL AND (until IS NULL OR until > ?2) \
             ORDER BY id LIMIT ?3"
        );
        let store = self.store;
        let err = |source| StoreError::from_sqlite(&store.path, "cannot read active bans", source);
        let mut stmt = store.conn.prepare_cached(&sql).map_err(err)?;
        let limit = i64::try_from(self.chunk).unwrap_or(i64::MAX);
        let mut rows = stmt
            .query(params![self.after, self.now, limit])
            .map_err(err)?;
        let mut records = Vec::with_capacity(self.chunk.min(RESTORE_CHUNK));
        let mut read = 0;
        while let Some(row) = rows.next().map_err(err)? {
            read += 1;
            self.after = row.get(7).map_err(err)?;
            if let Some(record) = read_record(row).map_err(err)? {
                records.push(record);
            }
        }
        self.done = read < self.chunk;
        Ok(records)
    }
}

impl Iterator for ActiveChunks<'_> {
    type Item = Result<Vec<BanRecord>, StoreError>;

    /// The next chunk: at most `chunk` bans (fewer where rows were skipped), never empty.
    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.next_chunk() {
                Ok(records) if records.is_empty() => {}
                Ok(records) => return Some(Ok(records)),
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            }
        }
        None
    }
}

/// What the store knows of one target banned by one jail, for the jail's state at start
/// (`bantime.increment`, and whether a ban still holds): its latest ban.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct History {
    pub target: IpNet,
    /// The latest ban's count (how many times the jail banned the target).
    pub ban_count: u32,
    /// When the latest ban began (unix seconds).
    pub start: i64,
    /// Whether the latest ban holds at the `now` given: neither lifted nor past its end.
    pub active: bool,
}

impl Store {
    /// The bans that hold at `now` (neither lifted nor past their end), in chunks of at most
    /// `chunk` records, in the order they were written. Rows that cannot be read (a target
    /// or matches that do not parse) are skipped with a warning.
    #[must_use]
    pub fn active_chunks(&self, now: i64, chunk: usize) -> ActiveChunks<'_> {
        ActiveChunks {
            store: self,
            now,
            chunk: chunk.max(1),
            matches: false,
            after: i64::MIN,
            done: false,
        }
    }

    /// Every ban that holds at `now`, with its matched lines, all at once (for tests and
    /// small stores; the daemon's start-up reads [`Store::active_chunks`]).
    pub fn active_bans(&self, now: i64) -> Result<Vec<BanRecord>, StoreError> {
        let mut bans = Vec::new();
        for chunk in self.active_chunks(now, RESTORE_CHUNK).with_matches(true) {
            bans.extend(chunk?);
        }
        Ok(bans)
    }

    /// Calls `each(jail, history)` once for every (jail, target) the store remembers (since
    /// the last purge), with its latest ban, in one pass over the file: the start-up seeding
    /// of every jail's ban counts. Targets that do not parse are skipped with a warning.
    pub fn each_history(
        &self,
        now: i64,
        mut each: impl FnMut(&str, History),
    ) -> Result<(), StoreError> {
        // In the order of the index `bans_target`, a pair's rows come together; its latest
        // (highest id) is kept as they pass. (A `GROUP BY` with `max(id)` costs several
        // times as much: it looks every row up again.)
        let err = |source| StoreError::from_sqlite(&self.path, "cannot read ban counts", source);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT jail, target, ban_count, start, until, ended, id FROM bans \
                 ORDER BY target, jail",
            )
            .map_err(err)?;
        let mut rows = stmt.query([]).map_err(err)?;
        let mut pair = (String::new(), String::new());
        let mut latest: Option<(i64, u32, i64, bool)> = None;
        let mut emit = |pair: &(String, String), latest: Option<(i64, u32, i64, bool)>| {
            let Some((_, ban_count, start, active)) = latest else {
                return;
            };
            let Ok(target) = parse_target(&pair.1) else {
                tracing::warn!(path = %self.path.display(), target = pair.1, "skipping a row whose target does not parse");
                return;
            };
            each(
                &pair.0,
                History {
                    target,
                    ban_count,
                    start,
                    active,
                },
            );
        };
        while let Some(row) = rows.next().map_err(err)? {
            let text = |i| -> Result<&str, StoreError> {
                row.get_ref(i)
                    .and_then(|v| v.as_str().map_err(Into::into))
                    .map_err(err)
            };
            let (jail, target) = (text(0)?, text(1)?);
            if pair.0 != jail || pair.1 != target {
                emit(&pair, latest.take());
                pair.0.clear();
                pair.0.push_str(jail);
                pair.1.clear();
                pair.1.push_str(target);
            }
            let id: i64 = row.get(6).map_err(err)?;
            if latest.is_none_or(|(best, ..)| id > best) {
                let until: Option<i64> = row.get(4).map_err(err)?;
                let ended: Option<i64> = row.get(5).map_err(err)?;
                let active = ended.is_none() && until.is_none_or(|until| until > now);
                latest = Some((
                    id,
                    row.get(2).map_err(err)?,
                    row.get(3).map_err(err)?,
                    active,
                ));
            }
        }
        emit(&pair, latest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use ipnet::IpNet;

    use super::super::tests::{NOW, net, record, temp, writer};
    use super::*;

    /// A store of 10 active bans interleaved with rows that do not hold (ended, expired, a
    /// target that does not parse), in id order: the active ones' targets.
    fn mixed_store(path: &Path) -> Vec<IpNet> {
        let w = writer(path);
        let mut active = Vec::new();
        for i in 0..10u8 {
            let target = format!("192.0.2.{i}");
            w.add_ban(record("sshd", &target, NOW, Some(600), 1));
            active.push(net(&target));
            // Expired, and lifted early: neither holds.
            w.add_ban(record(
                "sshd",
                &format!("198.51.100.{i}"),
                NOW - 900,
                Some(600),
                1,
            ));
            w.add_ban(record(
                "web",
                &format!("203.0.113.{i}"),
                NOW - 10,
                Some(600),
                1,
            ));
            w.remove_ban("web", net(&format!("203.0.113.{i}")), NOW - 5);
        }
        w.close().unwrap();
        let store = Store::open(path).unwrap();
        store
            .conn
            .execute(
                "INSERT INTO bans(jail, target, start, until, ban_count, failures) \
                 VALUES ('sshd', 'not-an-address', ?1, NULL, 1, 1)",
                [NOW],
            )
            .unwrap();
        active
    }

    #[test]
    fn active_chunks_split_anywhere_and_skip_what_does_not_hold() {
        let (_dir, path) = temp();
        let active = mixed_store(&path);
        let store = Store::open(&path).unwrap();
        for chunk in [1, 2, 3, 9, 10, 11, 1000] {
            let chunks: Vec<Vec<BanRecord>> = store
                .active_chunks(NOW, chunk)
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                chunks.iter().all(|c| !c.is_empty() && c.len() <= chunk),
                "chunk {chunk}: sizes {:?}",
                chunks.iter().map(Vec::len).collect::<Vec<_>>()
            );
            let got: Vec<IpNet> = chunks.iter().flatten().map(|r| r.target).collect();
            assert_eq!(
                got, active,
                "chunk {chunk}: every active ban once, in written order"
            );
            assert!(
                chunks.iter().flatten().all(|r| r.matches.is_empty()),
                "matches are read only on request"
            );
        }
        let with: Vec<BanRecord> = store
            .active_chunks(NOW, 4)
            .with_matches(true)
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
            .concat();
        assert_eq!(with, store.active_bans(NOW).unwrap());
        assert_eq!(with[0].matches, ["Failed password for root from 192.0.2.0"]);
        // Later, everything has expired: no chunk at all.
        assert_eq!(store.active_chunks(NOW + 600, 3).count(), 0);
    }

    #[test]
    fn each_history_gives_every_pairs_latest_ban() {
        let (_dir, path) = temp();
        let w = writer(&path);
        w.add_ban(record("sshd", "192.0.2.7", NOW - 9000, Some(600), 1));
        w.add_ban(record("sshd", "192.0.2.7", NOW - 10, Some(600), 2));
        w.add_ban(record("web", "192.0.2.7", NOW - 10, None, 5));
        w.add_ban(record("web", "192.0.2.8", NOW - 10, Some(600), 1));
        w.remove_ban("web", net("192.0.2.8"), NOW - 5);
        w.add_ban(record("sshd", "2001:db8::/32", NOW - 9000, Some(600), 3));
        w.close().unwrap();
        let store = Store::open(&path).unwrap();
        let mut seen = Vec::new();
        store
            .each_history(NOW, |jail, h| {
                seen.push((jail.to_string(), h.target, h.ban_count, h.start, h.active));
            })
            .unwrap();
        seen.sort();
        assert_eq!(
            seen,
            vec![
                ("sshd".into(), net("192.0.2.7"), 2, NOW - 10, true),
                ("sshd".into(), net("2001:db8::/32"), 3, NOW - 9000, false),
                ("web".into(), net("192.0.2.7"), 5, NOW - 10, true),
                // Lifted by an unban: no longer in force, its count kept.
                ("web".into(), net("192.0.2.8"), 1, NOW - 10, false),
            ]
        );
    }
}
