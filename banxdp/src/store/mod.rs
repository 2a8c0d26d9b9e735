//! The ban store: a `SQLite` file that remembers every ban (jail, address or network, start,
//! duration, ban count, failures, matched lines) and every log file's position, so that a
//! restart re-applies what is still banned, knows how often a target was banned before
//! (`bantime.increment`), and resumes each log where it stopped.
//!
//! Two connections share the file (WAL mode): [`Store`] reads (start-up restore, ban counts,
//! log positions, `dbpurgeage`), and [`Writer`] owns a thread that takes bans, unbans and
//! positions without making its callers wait, and commits what arrived in one transaction
//! (group commit). [`reconcile`] is the pure comparison of the store with the pinned XDP maps
//! at start. The start-up reads stream ([`Store::active_chunks`], [`Store::each_history`],
//! [`Reconciler`]), so a million bans are never held whole as records. This module may depend on `enforce`'s types; it never touches a backend, spawns
//! no task (one OS thread, the writer's) and reads no clock: every "now" is an argument, in
//! unix seconds.
//!
//! # What survives what
//!
//! The ban path enforces first (the XDP map update), then hands the ban to the [`Writer`],
//! which commits it within [`WriterOptions::interval`]; nothing on the ban path waits for the
//! disk. Each group commit is a transaction written to the WAL and synced (`synchronous=FULL`
//! on the writer's connection), at most once per interval however many bans it holds.
//!
//! - `kill -9` (or a crash) at any moment loses no ban that reached the map or that
//!   [`Writer::sync`] acknowledged: a committed ban is in the file; one still in the writer's
//!   queue is in the pinned maps, which keep enforcing, and the next start adopts it into the
//!   store ([`reconcile`]). The file is never left half-written (`SQLite`'s WAL).
//! - A power loss or kernel crash loses the maps and what had not been committed: the bans of
//!   the last group-commit window (`interval`, 200 ms by default, plus the time of one
//!   commit; longer only under a flood of bans that outruns the disk, while the queue holds
//!   more than one window). A ban acknowledged by [`Writer::sync`] (the CLI's `ban`) is
//!   never lost. The
//!   writer applies operations in the order they were sent, so a log position committed after
//!   a ban implies that ban is committed too: when the daemon sends a line's ban before that
//!   line's position, the bans lost with the window are found again by re-reading the lines
//!   past the stored position (if the log file itself survived).
//! - An unban is the other way round: one still in the queue at a `kill -9` is gone from the
//!   maps but not from the store, so the next start re-applies the ban. An unban that must
//!   hold (the CLI's `unban`) is acknowledged after [`Writer::sync`]; bans that simply expire
//!   need no write at all, their end is in the row.

mod reconcile;
mod schema;
mod stream;
mod writer;

#[cfg(test)]
mod measure;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod writer_tests;

use std::{
    collections::HashMap,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ipnet::IpNet;
use rusqlite::{Connection, OptionalExtension, params};

use crate::enforce::{Ban, Expiry, parse_target};

pub use reconcile::{EXPIRY_TOLERANCE, Reconciler, Reconciliation, Stored, reconcile};
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub use stream::{ActiveChunks, History, RESTORE_CHUNK};
pub use writer::{Writer, WriterOptions, WriterStats};

/// One ban as the store remembers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanRecord {
    pub jail: String,
    /// An address (a /32 or /128) or a network; stored in [`canonical`] form.
    pub target: IpNet,
    /// When the ban began, unix seconds.
    pub start: i64,
    /// How long it lasts in seconds; `None` is permanent (`bantime = -1`).
    pub duration: Option<i64>,
    /// How many times the jail has banned the target, this ban included (1 for a first ban).
    pub ban_count: u32,
    /// Failures that led to the ban.
    pub failures: u32,
    /// The log lines that matched, oldest first.
    pub matches: Vec<String>,
}

impl BanRecord {
    /// When the ban ends (unix seconds), `None` if never.
    #[must_use]
    pub fn until(&self) -> Option<i64> {
        self.duration.map(|d| self.start.saturating_add(d))
    }

    /// Whether the ban still holds at `now` (unix seconds).
    #[must_use]
    pub fn is_active(&self, now: i64) -> bool {
        self.until().is_none_or(|until| until > now)
    }

    /// The ban's end as an enforcer's [`Expiry`].
    #[must_use]
    pub fn expiry(&self) -> Expiry {
        self.until()
            .map_or(Expiry::Never, |until| Expiry::At(from_unix(until)))
    }

    /// The ban as an enforcer applies it.
    #[must_use]
    pub fn to_ban(&self) -> Ban {
        Ban {
            jail: self.jail.clone(),
            target: self.target,
            expiry: self.expiry(),
        }
    }
}

/// Where a jail stopped reading a log file: the hash of the file's first line (a different
/// hash means the file was replaced, so reading starts over) and the byte offset reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPosition {
    pub first_line_hash: Vec<u8>,
    pub offset: u64,
}

impl LogPosition {
    /// Where to resume reading a file whose first line now hashes to `first_line_hash`:
    /// the stored offset if it is the same file, `None` (start over) if it is not.
    #[must_use]
    pub fn resume_offset(&self, first_line_hash: &[u8]) -> Option<u64> {
        (self.first_line_hash == first_line_hash).then_some(self.offset)
    }
}

/// Unix seconds of a wall-clock time (negative before 1970).
#[must_use]
pub fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// The wall-clock time of unix seconds.
#[must_use]
pub fn from_unix(seconds: i64) -> SystemTime {
    let magnitude = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// The form in which a target is stored and compared: host bits cleared, and an IPv4-mapped
/// IPv6 network (`::ffff:192.0.2.7`) as the IPv4 one, as every backend holds it.
pub use crate::enforce::book::normalize as canonical;

/// The text of a target in the file: an address alone for a host, CIDR for a network.
fn target_text(target: IpNet) -> String {
    let target = canonical(target);
    if target.prefix_len() == target.max_prefix_len() {
        target.addr().to_string()
    } else {
        target.to_string()
    }
}

/// Errors of the ban store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("ban store: cannot create the directory `{}`", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ban store: cannot create `{}`", path.display())]
    CreateFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "ban store `{}` is not a SQLite database, or is damaged: move it away to start with an \
         empty store",
        path.display()
    )]
    NotADatabase {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "ban store `{}` is a SQLite database of another program (application id {application_id:#x}), \
         not banxdp's",
        path.display()
    )]
    Foreign { path: PathBuf, application_id: i32 },
    #[error(
        "ban store `{}` has schema version {found}; this banxdp knows versions up to {known}",
        path.display()
    )]
    SchemaVersion {
        path: PathBuf,
        found: i32,
        known: i32,
    },
    #[error("ban store `{}`: journal mode is `{mode}`, not `wal`", path.display())]
    NoWal { path: PathBuf, mode: String },
    #[error("ban store `{}`: {what}", path.display())]
    Sqlite {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("ban store `{}`: {failed} writes failed since the last sync", path.display())]
    WriteFailed {
        path: PathBuf,
        failed: u64,
        #[source]
        source: Arc<rusqlite::Error>,
    },
    #[error("ban store `{}`: cannot start the writer thread", path.display())]
    Thread {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ban store `{}`: the writer thread has stopped", path.display())]
    WriterGone { path: PathBuf },
    #[error("ban store `{}`: the writer thread panicked", path.display())]
    WriterPanicked { path: PathBuf },
}

impl StoreError {
    fn from_sqlite(path: &Path, what: &'static str, source: rusqlite::Error) -> Self {
        if schema::is_not_a_database(&source) {
            StoreError::NotADatabase {
                path: path.to_path_buf(),
                source,
            }
        } else {
            StoreError::Sqlite {
                path: path.to_path_buf(),
                what,
                source,
            }
        }
    }
}

/// The reading side of the store (and its maintenance: `dbpurgeage`).
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// How many rows [`Store::purge`] deletes in one transaction.
pub const PURGE_CHUNK: usize = 10_000;

impl Store {
    /// Opens the store at `path`, creating the directory (0700), the file (0600) and the
    /// schema as needed. A file that is not a banxdp store is an error, never overwritten.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            conn: schema::open(path, schema::Role::Reader)?,
            path: path.to_path_buf(),
        })
    }

    /// The file this store reads.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::from_sqlite(&self.path, what, source)
    }

    /// The latest ban of `target` by `jail` (or, with `None`, each jail's latest), as
    /// `bantime.increment` needs it: how many times it was banned, and when last.
    pub fn last_ban(
        &self,
        jail: Option<&str>,
        target: IpNet,
    ) -> Result<Option<LastBan>, StoreError> {
        let text = target_text(target);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT ban_count, start, until, max(id) FROM bans \
                 WHERE target = ?1 AND (?2 IS NULL OR jail = ?2) GROUP BY jail",
            )
            .map_err(self.err("cannot read ban counts"))?;
        let rows = stmt
            .query_map(params![text, jail], |row| {
                Ok(LastBan {
                    ban_count: row.get(0)?,
                    start: row.get(1)?,
                    until: row.get(2)?,
                })
            })
            .map_err(self.err("cannot read ban counts"))?;
        let mut merged: Option<LastBan> = None;
        for row in rows {
            let row = row.map_err(self.err("cannot read ban counts"))?;
            merged = Some(match merged {
                None => row,
                Some(m) => LastBan {
                    ban_count: m.ban_count.saturating_add(row.ban_count),
                    start: m.start.max(row.start),
                    until: match (m.until, row.until) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        _ => None,
                    },
                },
            });
        }
        Ok(merged)
    }

    /// How many times `jail` banned `target` (its latest ban's count), or with `None` the sum
    /// over jails (`bantime.overalljails`); 0 if never, or if purged.
    pub fn ban_count(&self, jail: Option<&str>, target: IpNet) -> Result<u32, StoreError> {
        // From the index alone: no table row is read.
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT ban_count, max(id) FROM bans \
                 WHERE target = ?1 AND (?2 IS NULL OR jail = ?2) GROUP BY jail",
            )
            .map_err(self.err("cannot read ban counts"))?;
        let counts = stmt
            .query_map(params![target_text(target), jail], |row| {
                row.get::<_, u32>(0)
            })
            .map_err(self.err("cannot read ban counts"))?;
        let mut sum = 0u32;
        for count in counts {
            sum = sum.saturating_add(count.map_err(self.err("cannot read ban counts"))?);
        }
        Ok(sum)
    }

    /// [`Store::ban_count`] of every target at once (for start-up), keyed by [`canonical`]
    /// target. Targets never banned are absent.
    pub fn ban_counts(&self, jail: Option<&str>) -> Result<HashMap<IpNet, u32>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT target, ban_count, max(id) FROM bans \
                 WHERE ?1 IS NULL OR jail = ?1 GROUP BY target, jail",
            )
            .map_err(self.err("cannot read ban counts"))?;
        let mut rows = stmt
            .query([jail])
            .map_err(self.err("cannot read ban counts"))?;
        let mut counts = HashMap::new();
        while let Some(row) = rows.next().map_err(self.err("cannot read ban counts"))? {
            let text: String = row.get(0).map_err(self.err("cannot read ban counts"))?;
            let count: u32 = row.get(1).map_err(self.err("cannot read ban counts"))?;
            let Ok(target) = parse_target(&text) else {
                tracing::warn!(path = %self.path.display(), target = text, "skipping a row whose target does not parse");
                continue;
            };
            let sum: &mut u32 = counts.entry(target).or_default();
            *sum = sum.saturating_add(count);
        }
        Ok(counts)
    }

    /// How many bans each jail has in the store (active, ended and expired, since the last
    /// purge), for `status`'s "Total banned". Jails in name order.
    pub fn totals(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT jail, count(*) FROM bans GROUP BY jail ORDER BY jail")
            .map_err(self.err("cannot count bans"))?;
        let rows = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(self.err("cannot count bans"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("cannot count bans"))
    }

    /// `dbpurgeage`: forgets the bans that ended (lifted or expired) before `older_than`
    /// (unix seconds), with their counts. Permanent bans still in force are kept. Returns
    /// how many rows went. Deletes in transactions of [`PURGE_CHUNK`] rows, so that the
    /// writer's commits (which wait for the write lock, without blocking the ban path) slip
    /// in between.
    pub fn purge(&self, older_than: i64) -> Result<usize, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "DELETE FROM bans WHERE id IN (SELECT id FROM bans WHERE \
                 (CASE WHEN ended IS NOT NULL AND (until IS NULL OR ended < until) \
                  THEN ended ELSE until END) < ?1 LIMIT ?2)",
            )
            .map_err(self.err("cannot purge old bans"))?;
        let mut total = 0;
        loop {
            let deleted = stmt
                .execute(params![older_than, PURGE_CHUNK])
                .map_err(self.err("cannot purge old bans"))?;
            total += deleted;
            if deleted < PURGE_CHUNK {
                return Ok(total);
            }
        }
    }

    /// Where `jail` stopped reading `path`, if it read it before.
    pub fn log_position(&self, jail: &str, path: &Path) -> Result<Option<LogPosition>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT first_line_hash, offset FROM logs WHERE jail = ?1 AND path = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![jail, path.as_os_str().as_bytes()], |row| {
                    Ok(LogPosition {
                        first_line_hash: row.get(0)?,
                        offset: row.get(1)?,
                    })
                })
                .optional()
            })
            .map_err(self.err("cannot read a log position"))
    }

    /// The record to adopt for a ban found in the maps but not in the store
    /// ([`Reconciliation::adopt`]): it starts `now`, ends at the map's expiry, and counts one
    /// more than the jail's earlier bans of the target.
    pub fn adopted(&self, ban: &Ban, now: i64) -> Result<BanRecord, StoreError> {
        let previous = self.ban_count(Some(&ban.jail), ban.target)?;
        Ok(BanRecord {
            jail: ban.jail.clone(),
            target: canonical(ban.target),
            start: now,
            duration: match ban.expiry {
                Expiry::Never => None,
                Expiry::At(at) => Some(unix_seconds(at).saturating_sub(now).max(1)),
            },
            ban_count: previous.saturating_add(1),
            failures: 0,
            matches: Vec::new(),
        })
    }
}

/// A target's latest ban, for `bantime.increment` (with several jails merged: counts
/// summed, the latest start, the latest end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastBan {
    pub ban_count: u32,
    pub start: i64,
    /// `None`: permanent.
    pub until: Option<i64>,
}

/// Reads a row of `jail, target, start, until, ban_count, failures, matches`; `None` (with a warning) if its target or matches do
/// not parse.
fn read_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<BanRecord>> {
    let jail: String = row.get(0)?;
    let text: String = row.get(1)?;
    let start: i64 = row.get(2)?;
    let until: Option<i64> = row.get(3)?;
    let matches: String = row.get(6)?;
    let Ok(target) = parse_target(&text) else {
        tracing::warn!(
            jail,
            target = text,
            "ban store: skipping a ban whose target does not parse"
        );
        return Ok(None);
    };
    let Ok(matches) = serde_json::from_str(&matches) else {
        tracing::warn!(
            jail,
            target = text,
            "ban store: skipping a ban whose matches do not parse"
        );
        return Ok(None);
    };
    Ok(Some(BanRecord {
        jail,
        target,
        start,
        duration: until.map(|u| u.saturating_sub(start)),
        ban_count: row.get(4)?,
        failures: row.get(5)?,
        matches,
    }))
}
