//! Group commit: one thread owns the store's writing connection. Callers send operations
//! down an unbounded channel and go on at once; the thread applies them in the order sent
//! and commits what arrived in one transaction, at most once per [`WriterOptions::interval`]
//! (sooner when [`WriterOptions::max_batch`] operations are waiting, or when someone calls
//! [`Writer::sync`]). A lone operation after a quiet spell is committed at once: the interval
//! counts from the previous commit, so it only spaces commits out under load.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use ipnet::IpNet;
use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior, params};

use super::{BanRecord, LogPosition, StoreError, schema, target_text};

/// How the writer groups its commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterOptions {
    /// The least time between two commits. A power loss can cost the bans of one interval.
    pub interval: Duration,
    /// Commit early once this many operations are in the transaction.
    pub max_batch: usize,
    /// Keep at most this many matched lines per ban (the latest ones); fail2ban's
    /// `dbmaxmatches`.
    pub max_matches: usize,
    /// How long one attempt to take the write lock waits (a purge holds it for a chunk at a
    /// time). The writer tries again after that, for as long as it takes: it delays a batch,
    /// it never drops one for a lock.
    pub busy_timeout: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            interval: Duration::from_millis(200),
            max_batch: 10_000,
            max_matches: 10,
            busy_timeout: schema::BUSY_TIMEOUT,
        }
    }
}

/// What callers send to the writer's thread.
enum Op {
    Ban(BanRecord),
    Unban {
        jail: String,
        target: IpNet,
        now: i64,
    },
    UnbanAll {
        jail: Option<String>,
        now: i64,
    },
    Position {
        jail: String,
        path: PathBuf,
        position: LogPosition,
    },
    Sync(Reply),
}

/// Where the writer answers a sync: a blocked thread, or an async task.
enum Reply {
    Blocking(mpsc::SyncSender<Result<(), StoreError>>),
    Async(tokio::sync::oneshot::Sender<Result<(), StoreError>>),
}

impl Reply {
    fn send(self, status: Result<(), StoreError>) {
        // A caller that gave up waiting is no error.
        let _ = match self {
            Reply::Blocking(sender) => sender.send(status).ok(),
            Reply::Async(sender) => sender.send(status).ok(),
        };
    }
}

/// The store's writing side: a handle to the thread that commits in groups.
pub struct Writer {
    sender: Option<mpsc::Sender<Op>>,
    thread: Option<JoinHandle<Result<(), StoreError>>>,
    path: PathBuf,
    stats: Arc<Counters>,
}

/// What the writer has done so far (for metrics and logs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Operations sent (bans, unbans, positions; syncs not counted).
    pub sent: u64,
    /// Operations written in a committed transaction.
    pub written: u64,
    /// Operations that failed (their errors were logged).
    pub failed: u64,
    /// Transactions committed.
    pub commits: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    written: AtomicU64,
    failed: AtomicU64,
    commits: AtomicU64,
}

impl Writer {
    /// Opens the store at `path` (creating it as [`super::Store::open`] does) and starts the
    /// writer's thread.
    pub fn spawn(path: &Path, options: WriterOptions) -> Result<Writer, StoreError> {
        let conn = schema::open(path, schema::Role::Writer)?;
        conn.busy_timeout(options.busy_timeout).map_err(|source| {
            StoreError::from_sqlite(path, "cannot set the busy timeout", source)
        })?;
        let (sender, receiver) = mpsc::channel();
        let stats = Arc::new(Counters::default());
        let mut worker = Worker {
            conn,
            path: path.to_path_buf(),
            options,
            failed: 0,
            last_error: None,
            stats: Arc::clone(&stats),
        };
        let thread = std::thread::Builder::new()
            .name("banxdp-store".into())
            .spawn(move || worker.run(&receiver))
            .map_err(|source| StoreError::Thread {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Writer {
            sender: Some(sender),
            thread: Some(thread),
            path: path.to_path_buf(),
            stats,
        })
    }

    /// Counts of what the writer has done.
    #[must_use]
    pub fn stats(&self) -> WriterStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        WriterStats {
            sent: load(&self.stats.sent),
            written: load(&self.stats.written),
            failed: load(&self.stats.failed),
            commits: load(&self.stats.commits),
        }
    }

    fn send(&self, op: Op) {
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        let sent = self.sender.as_ref().is_some_and(|s| s.send(op).is_ok());
        if !sent {
            tracing::error!(path = %self.path.display(), "ban store: the writer thread has stopped; a write is lost");
        }
    }

    /// Records a ban (ending the same jail's earlier ban of the target, if it still held).
    /// Never blocks on the disk.
    pub fn add_ban(&self, record: BanRecord) {
        self.send(Op::Ban(record));
    }

    /// Ends `jail`'s ban of `target` at `now` (an unban). The row stays, for ban counts.
    pub fn remove_ban(&self, jail: &str, target: IpNet, now: i64) {
        self.send(Op::Unban {
            jail: jail.to_string(),
            target,
            now,
        });
    }

    /// Ends every ban of `jail` (or of every jail, with `None`) at `now`.
    pub fn remove_all(&self, jail: Option<&str>, now: i64) {
        self.send(Op::UnbanAll {
            jail: jail.map(str::to_string),
            now,
        });
    }

    /// Records where `jail` stopped reading `path`.
    pub fn set_log_position(&self, jail: &str, path: &Path, position: LogPosition) {
        self.send(Op::Position {
            jail: jail.to_string(),
            path: path.to_path_buf(),
            position,
        });
    }

    /// Waits until everything sent before is committed and synced to disk. An error says
    /// that some write since the previous sync failed (and was logged). Blocks the calling
    /// thread: from async code, use [`Writer::synced`].
    pub fn sync(&self) -> Result<(), StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send_sync(Reply::Blocking(reply))?;
        answer.recv().map_err(|_| self.gone())?
    }

    /// [`Writer::sync`] for async callers (the control socket acknowledging a `ban`): the
    /// task waits, the runtime's thread does not.
    pub async fn synced(&self) -> Result<(), StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send_sync(Reply::Async(reply))?;
        answer.await.map_err(|_| self.gone())?
    }

    fn send_sync(&self, reply: Reply) -> Result<(), StoreError> {
        self.sender
            .as_ref()
            .ok_or_else(|| self.gone())?
            .send(Op::Sync(reply))
            .map_err(|_| self.gone())
    }

    fn gone(&self) -> StoreError {
        StoreError::WriterGone {
            path: self.path.clone(),
        }
    }

    /// Commits what is left and stops the thread.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), StoreError> {
        self.sender = None;
        match self.thread.take() {
            None => Ok(()),
            Some(thread) => thread.join().map_err(|_| StoreError::WriterPanicked {
                path: self.path.clone(),
            })?,
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            tracing::error!(%error, "ban store: closing the writer");
        }
    }
}

/// The writer's thread.
struct Worker {
    conn: Connection,
    path: PathBuf,
    options: WriterOptions,
    /// Operations that failed since the last sync, and the latest error.
    failed: u64,
    last_error: Option<Arc<rusqlite::Error>>,
    stats: Arc<Counters>,
}

impl Worker {
    /// Runs until every sender is gone, then commits the rest.
    fn run(&mut self, receiver: &mpsc::Receiver<Op>) -> Result<(), StoreError> {
        let mut last_commit = Instant::now().checked_sub(self.options.interval);
        while let Ok(first) = receiver.recv() {
            let mut batch = vec![first];
            let due = last_commit.map_or_else(Instant::now, |at| at + self.options.interval);
            gather(receiver, &mut batch, due, self.options.max_batch);
            let replies = self.commit(batch);
            last_commit = Some(Instant::now());
            if !replies.is_empty() {
                let (failed, last_error) = self.take_failures();
                for reply in replies {
                    reply.send(self.status(failed, last_error.clone()));
                }
            }
        }
        let (failed, last_error) = self.take_failures();
        self.status(failed, last_error)
    }

    /// Applies `batch` in one transaction and commits it; returns the syncs to answer.
    /// The transaction takes the write lock first (waiting while a purge holds it, however
    /// long), so that a busy file delays the batch rather than losing it.
    fn commit(&mut self, batch: Vec<Op>) -> Vec<Reply> {
        let mut replies = Vec::new();
        let mut ops = Vec::with_capacity(batch.len());
        for op in batch {
            match op {
                Op::Sync(reply) => replies.push(reply),
                op => ops.push(op),
            }
        }
        let writes = ops.len() as u64;
        let mut failed = 0;
        let tx = loop {
            match self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
            {
                Err(error) if error.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {
                    tracing::warn!(path = %self.path.display(), "ban store: still locked by another connection; retrying");
                }
                other => break other,
            }
        };
        let outcome = tx.and_then(|tx| {
            for op in ops {
                if let Err(error) = apply(&tx, op, self.options.max_matches) {
                    tracing::error!(path = %self.path.display(), %error, "ban store: a write failed");
                    failed += 1;
                    self.last_error = Some(Arc::new(error));
                }
            }
            tx.commit()
        });
        if let Err(error) = outcome {
            tracing::error!(path = %self.path.display(), %error, writes, "ban store: a commit failed");
            failed = writes;
            self.last_error = Some(Arc::new(error));
        } else {
            self.stats.commits.fetch_add(1, Ordering::Relaxed);
            self.stats
                .written
                .fetch_add(writes - failed, Ordering::Relaxed);
        }
        self.failed += failed;
        self.stats.failed.fetch_add(failed, Ordering::Relaxed);
        replies
    }

    /// The failures since the last sync, forgotten here.
    fn take_failures(&mut self) -> (u64, Option<Arc<rusqlite::Error>>) {
        (std::mem::take(&mut self.failed), self.last_error.take())
    }

    fn status(
        &self,
        failed: u64,
        last_error: Option<Arc<rusqlite::Error>>,
    ) -> Result<(), StoreError> {
        match last_error {
            Some(source) if failed > 0 => Err(StoreError::WriteFailed {
                path: self.path.clone(),
                failed,
                source,
            }),
            _ => Ok(()),
        }
    }
}

/// Adds to `batch` what arrives before `due`, up to `max` operations; stops at once after a
/// sync (someone is waiting) or when every sender is gone.
fn gather(receiver: &mpsc::Receiver<Op>, batch: &mut Vec<Op>, due: Instant, max: usize) {
    while batch.len() < max && !matches!(batch.last(), Some(Op::Sync(_))) {
        let wait = due.saturating_duration_since(Instant::now());
        let next = if wait.is_zero() {
            receiver.try_recv().ok()
        } else {
            receiver.recv_timeout(wait).ok()
        };
        match next {
            Some(op) => batch.push(op),
            None => break,
        }
    }
}

/// Applies one write inside the group's transaction.
fn apply(tx: &Transaction<'_>, op: Op, max_matches: usize) -> rusqlite::Result<()> {
    match op {
        Op::Ban(record) => {
            let target = target_text(record.target);
            tx.prepare_cached(
                "UPDATE bans SET ended = ?3 WHERE target = ?1 AND jail = ?2 \
                 AND ended IS NULL AND (until IS NULL OR until > ?3)",
            )?
            .execute(params![target, record.jail, record.start])?;
            let skip = record.matches.len().saturating_sub(max_matches);
            let matches = serde_json::to_string(&record.matches[skip..])
                .expect("a list of strings is always JSON");
            tx.prepare_cached(
                "INSERT INTO bans(jail, target, start, until, ban_count, failures, matches) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                record.jail,
                target,
                record.start,
                record.until(),
                record.ban_count,
                record.failures,
                matches,
            ])?;
        }
        Op::Unban { jail, target, now } => {
            tx.prepare_cached(
                "UPDATE bans SET ended = ?3 WHERE target = ?1 AND jail = ?2 \
                 AND ended IS NULL AND (until IS NULL OR until > ?3)",
            )?
            .execute(params![target_text(target), jail, now])?;
        }
        Op::UnbanAll { jail, now } => {
            tx.prepare_cached(
                "UPDATE bans SET ended = ?2 WHERE (?1 IS NULL OR jail = ?1) AND id IN \
                 (SELECT id FROM bans WHERE ended IS NULL AND until > ?2 \
                  UNION ALL SELECT id FROM bans WHERE ended IS NULL AND until IS NULL)",
            )?
            .execute(params![jail, now])?;
        }
        Op::Position {
            jail,
            path,
            position,
        } => {
            use std::os::unix::ffi::OsStrExt;
            tx.prepare_cached(
                "INSERT INTO logs(jail, path, first_line_hash, offset) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(jail, path) DO UPDATE SET \
                 first_line_hash = excluded.first_line_hash, offset = excluded.offset",
            )?
            .execute(params![
                jail,
                path.as_os_str().as_bytes(),
                position.first_line_hash,
                position.offset,
            ])?;
        }
        Op::Sync(_) => unreachable!("syncs are answered, not applied"),
    }
    Ok(())
}
