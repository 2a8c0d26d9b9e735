//! Following log files: one [`Follower`] per daemon reads every file that any jail names,
//! once, and hands out batches of complete lines with the position to store after them.
//!
//! Files are found by globbing each [`FollowSpec`]'s pattern, at the start and again whenever
//! a watched directory reports a file created, removed or renamed, so files that appear later
//! are followed from their first byte. Changes are learnt from notify's inotify watcher on each
//! pattern's directory (notify's thread only records which paths changed and wakes
//! [`Follower::next`]; a directory that does not exist yet is looked for on the poll tick),
//! with a slow safety tick that re-reads everything in case an event was
//! lost; specs with `backend = polling`, and every spec when inotify cannot be had (out of
//! watches, no inotify), are read on every poll tick instead, as are symbolic links (their
//! target's directory is not watched) and files that were rotated
//! or removed while they are still read (their writer may not have reopened its log yet:
//! see [`Intervals::grace`]). The daemon drives `next` from its
//! own task: this module spawns none. Reads are plain blocking reads of at most
//! [`BATCH_BYTES`] per file per batch, from the page cache in practice.
//!
//! ```no_run
//! # async fn run(jails: Vec<banxdp::config::jails::JailConfig>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::collections::HashMap;
//! use banxdp::source::{self, Follower, JailSource};
//!
//! // Every jail's file specs in one follower; `owner[i]` is the jail of spec `i`.
//! let (mut specs, mut owner) = (Vec::new(), Vec::new());
//! for (jail, config) in jails.iter().enumerate() {
//!     if let JailSource::Files(files) = source::for_jail(config)? {
//!         owner.extend(std::iter::repeat_n(jail, files.len()));
//!         specs.extend(files);
//!     }
//! }
//! let stored = HashMap::new(); // path -> Position, from the store
//! let mut follower = Follower::new(specs, stored)?;
//! loop {
//!     let batch = follower.next().await; // cancel-safe: fine inside `select!`
//!     for line in &batch.lines {
//!         for &spec in batch.specs.iter() {
//!             let _jail = &jails[owner[spec]]; // hand `line` to this jail's scanner
//!         }
//!     }
//!     // then store `batch.position` for `batch.path`
//! }
//! # }
//! ```

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use indexmap::IndexMap;
use notify::Watcher as _;
use tokio::{sync::Notify, time::Instant};

use super::{
    SourceError,
    file::{FileTail, Position, Start},
    plan::FollowSpec,
};

/// The most bytes read from one file for one batch: a backlog streams in bounded batches and
/// one busy file cannot starve the others.
pub const BATCH_BYTES: usize = 1 << 20;

/// Complete lines from one file, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub path: Arc<Path>,
    /// Indices of the [`FollowSpec`]s whose pattern names this file: the jails to hand it to.
    pub specs: Arc<[usize]>,
    /// Decoded, without newline, cut at [`super::lines::MAX_LINE`].
    pub lines: Vec<String>,
    /// The position after these lines, for the store.
    pub position: Position,
    /// The lines were written while the file was followed: its end had been reached once
    /// before them. Lines read on the way to the end (what was written while the daemon was
    /// down) are not: fail2ban's "operation mode", where a line dated far from the present
    /// is taken to have happened now.
    pub in_operation: bool,
}

/// Intervals of the follower's clock (tokio's, so tests can pause it).
#[derive(Clone, Copy, Debug)]
pub struct Intervals {
    /// Between two reads of polled files (fail2ban's polling sleeps 1 s).
    pub poll: Duration,
    /// Between two reads of every file and globs under inotify, in case an event was lost.
    pub safety: Duration,
    /// How long a rotated or removed file is still read after its last growth: its writer
    /// may not have reopened its log yet.
    pub grace: Duration,
}

impl Default for Intervals {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(1),
            safety: Duration::from_secs(10),
            grace: Duration::from_secs(60),
        }
    }
}

/// What notify's thread has seen since the last look: bounded whatever the event rate.
#[derive(Debug, Default)]
struct Pending {
    paths: HashSet<PathBuf>,
    /// Paths removed or renamed away: a watched directory among them lost its watch.
    removed: HashSet<PathBuf>,
    everything: bool,
    rescan: bool,
}

const PENDING_PATHS: usize = 4096;

#[derive(Debug, Default)]
struct Events {
    pending: Mutex<Pending>,
    wake: Notify,
}

impl Events {
    fn record(&self, event: notify::Result<notify::Event>) {
        use notify::EventKind::{Access, Modify, Remove};
        use notify::event::ModifyKind::{Data, Metadata, Name};
        let mut pending = self.pending.lock().expect("pending events lock");
        if let Ok(event) = event {
            if event.need_rescan() {
                pending.everything = true;
            }
            match event.kind {
                Access(_) => return,
                Modify(Data(_) | Metadata(_)) => {}
                Remove(_) | Modify(Name(_)) => {
                    pending.rescan = true;
                    if pending.removed.len() < PENDING_PATHS {
                        pending.removed.extend(event.paths.iter().cloned());
                    }
                }
                _ => pending.rescan = true,
            }
            if pending.paths.len() + event.paths.len() > PENDING_PATHS {
                pending.everything = true;
                pending.paths.clear();
            } else if !pending.everything {
                pending.paths.extend(event.paths);
            }
        } else {
            (pending.everything, pending.rescan) = (true, true);
        }
        drop(pending);
        self.wake.notify_one();
    }

    fn take(&self) -> Pending {
        std::mem::take(&mut *self.pending.lock().expect("pending events lock"))
    }
}

#[derive(Debug)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "four independent facts about one file, each read on its own"
)]
struct Followed {
    tail: FileTail,
    specs: Arc<[usize]>,
    polled: bool,
    /// Its path no longer exists: read on the poll tick until it is quiet and let go.
    missing: bool,
    dirty: bool,
    failing: Option<std::io::ErrorKind>,
    /// Its end has been reached once (see [`Batch::in_operation`]).
    in_operation: bool,
}

/// Follows the files of every jail; see the module documentation.
#[derive(Debug)]
pub struct Follower {
    specs: Vec<FollowSpec>,
    files: IndexMap<PathBuf, Followed>,
    stored: HashMap<PathBuf, Position>,
    events: Arc<Events>,
    watcher: Option<notify::RecommendedWatcher>,
    /// Directories watched, with their identity (device, inode) when the watch was added.
    watched: HashMap<PathBuf, (u64, u64)>,
    intervals: Intervals,
    next_poll: Instant,
    next_safety: Instant,
    ready: std::collections::VecDeque<Batch>,
    /// Per spec: read on the poll tick (`backend = polling`, or its directory is not watched).
    polled: Vec<bool>,
    /// Per spec: its directory does not exist (yet), so nothing watches for its files.
    waiting: Vec<bool>,
}

impl Follower {
    /// Follows `specs`, starting the files present now from their stored `positions` (when
    /// their first line still matches), else from their start, or their end with `tail`.
    pub fn new(
        specs: Vec<FollowSpec>,
        positions: HashMap<PathBuf, Position>,
    ) -> Result<Self, SourceError> {
        Self::with_intervals(specs, positions, Intervals::default())
    }

    /// [`Follower::new`] with other intervals than the defaults.
    pub fn with_intervals(
        specs: Vec<FollowSpec>,
        positions: HashMap<PathBuf, Position>,
        intervals: Intervals,
    ) -> Result<Self, SourceError> {
        for spec in &specs {
            glob::Pattern::new(&spec.pattern).map_err(|source| SourceError::Pattern {
                pattern: spec.pattern.clone(),
                source,
            })?;
        }
        let events = Arc::new(Events::default());
        let watcher = if specs.iter().all(|s| s.polling) {
            None
        } else {
            let sink = Arc::clone(&events);
            match notify::recommended_watcher(move |event| sink.record(event)) {
                Ok(watcher) => Some(watcher),
                Err(e) => {
                    tracing::warn!(error = %e, "inotify unavailable: polling every file");
                    None
                }
            }
        };
        let polled: Vec<bool> = specs
            .iter()
            .map(|s| s.polling || watcher.is_none())
            .collect();
        let now = Instant::now();
        let mut follower = Self {
            specs,
            files: IndexMap::new(),
            stored: positions,
            events,
            watcher,
            watched: HashMap::new(),
            intervals,
            next_poll: now + intervals.poll,
            next_safety: now + intervals.safety,
            ready: std::collections::VecDeque::new(),
            waiting: vec![false; polled.len()],
            polled,
        };
        follower.rescan(true);
        for (index, spec) in follower.specs.iter().enumerate() {
            if !follower.files.values().any(|f| f.specs.contains(&index)) {
                tracing::warn!(pattern = %spec.pattern, "logpath matches no file yet: followed once one appears");
            }
        }
        Ok(follower)
    }

    /// The files followed now, in the order they were found (`status`'s file list).
    #[must_use]
    pub fn files(&self) -> Vec<PathBuf> {
        self.files
            .values()
            .filter(|f| f.tail.is_open())
            .map(|f| f.tail.path().to_path_buf())
            .collect()
    }

    /// The next batch of lines from any file; waits until there is one. Cancel-safe: a batch
    /// is taken off the queue only when returned.
    pub async fn next(&mut self) -> Batch {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                return batch;
            }
            let now = Instant::now();
            let poll_due = self.next_poll <= now;
            let safety_due = self.next_safety <= now;
            if poll_due {
                self.next_poll = now + self.intervals.poll;
            }
            if safety_due {
                self.next_safety = now + self.intervals.safety;
            }
            self.poll_once(poll_due, safety_due);
            if !self.ready.is_empty() {
                continue;
            }
            if self.files.values().any(|f| f.dirty) {
                tokio::task::yield_now().await;
                continue;
            }
            let deadline = if self.wants_poll() {
                self.next_poll.min(self.next_safety)
            } else {
                self.next_safety
            };
            tokio::select! {
                () = self.events.wake.notified() => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Takes what notify saw, finds new files, and reads the files that changed (`poll_due`:
    /// also the polled ones; `safety_due`: all of them).
    fn poll_once(&mut self, poll_due: bool, safety_due: bool) {
        let pending = self.events.take();
        self.forget_watches(&pending);
        if pending.rescan || pending.everything || safety_due || (poll_due && self.wants_poll()) {
            self.rescan(false);
        }
        for (path, followed) in &mut self.files {
            followed.dirty |= pending.everything
                || safety_due
                || (poll_due && followed.wants_poll())
                || pending.paths.contains(path);
        }
        let (now, grace) = (std_now(), self.intervals.grace);
        for followed in self.files.values_mut() {
            if followed.dirty {
                self.ready.extend(read(followed, now, grace));
            }
        }
    }

    /// Globs every spec: follows the files that are new, updates which specs read each, lets
    /// go of the files that are gone (after reading what was left in them).
    fn rescan(&mut self, initial: bool) {
        let mut found: IndexMap<PathBuf, Vec<usize>> = IndexMap::new();
        let mut watched_now = false;
        for index in 0..self.specs.len() {
            watched_now |= self.watch(index);
            // As Python's glob, which fail2ban uses: `*` does not match a leading dot.
            let options = glob::MatchOptions {
                require_literal_leading_dot: true,
                ..glob::MatchOptions::new()
            };
            let Ok(paths) = glob::glob_with(&self.specs[index].pattern, options) else {
                continue;
            };
            for path in paths.flatten().filter(|p| !p.is_dir()) {
                found.entry(path).or_default().push(index);
            }
        }
        self.let_go(&found);
        if watched_now {
            // Whatever was written while a directory was not watched has sent no event.
            for followed in self.files.values_mut() {
                followed.dirty = true;
            }
        }
        for (path, specs) in found {
            // A symbolic link's target may live in a directory nobody watches: polled.
            let polled = specs.iter().any(|&i| self.polled[i]) || path.is_symlink();
            if let Some(followed) = self.files.get_mut(&path) {
                followed.polled = polled;
                if *followed.specs != *specs {
                    followed.specs = specs.into();
                }
                continue;
            }
            let start = match self.stored.remove(&path) {
                Some(position) => Start::Resume(position),
                None if initial && specs.iter().any(|&i| self.specs[i].from_end) => Start::Tail,
                None => Start::Head,
            };
            if let Some(followed) = self.start(path, specs, start, polled) {
                self.files
                    .insert(followed.tail.path().to_path_buf(), followed);
            }
        }
    }

    /// Marks the files whose path is gone, and lets go of those among them that have been
    /// quiet for the grace period, after handing out what was left in them.
    fn let_go(&mut self, found: &IndexMap<PathBuf, Vec<usize>>) {
        let now = std_now();
        let mut gone = Vec::new();
        for (path, followed) in &mut self.files {
            followed.missing = !found.contains_key(path) && !path.exists();
            if followed.missing && followed.tail.quiet(now, self.intervals.grace) {
                gone.push(path.clone());
            }
        }
        for path in gone {
            let mut followed = self.files.shift_remove(&path).expect("listed above");
            let mut lines = Vec::new();
            if let Err(e) = followed.tail.finish(&mut lines, now) {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the rest of a removed log file");
            }
            tracing::info!(path = %path.display(), "no longer following: removed");
            if !lines.is_empty() {
                self.ready.push_back(Batch {
                    path: path.into(),
                    specs: followed.specs,
                    lines,
                    position: Position::default(),
                    in_operation: followed.in_operation,
                });
            }
        }
    }

    /// Drops the watches of directories removed or renamed (their inode may be reused at
    /// once by a new directory of the same name, so identity alone would not tell), and of
    /// those no longer the directory watched: the next rescan watches whatever is there now.
    fn forget_watches(&mut self, pending: &Pending) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        let stale: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|(dir, id)| {
                pending.removed.contains(*dir)
                    || ((pending.everything || pending.paths.contains(*dir))
                        && dir_id(dir) != Some(**id))
            })
            .map(|(dir, _)| dir.clone())
            .collect();
        for dir in stale {
            let _ = watcher.unwatch(&dir);
            self.watched.remove(&dir);
        }
    }

    /// Whether anything needs the poll tick: a polled spec, a spec whose directory is missing,
    /// a file gone or rotated.
    fn wants_poll(&self) -> bool {
        self.polled.iter().chain(&self.waiting).any(|&p| p)
            || self.files.values().any(Followed::wants_poll)
    }

    fn start(
        &self,
        path: PathBuf,
        specs: Vec<usize>,
        start: Start,
        polled: bool,
    ) -> Option<Followed> {
        let encoding = self.specs[specs[0]].encoding;
        if specs.iter().any(|&i| self.specs[i].encoding != encoding) {
            tracing::warn!(path = %path.display(), ?encoding, "jails read this file with different logencodings: all get this one");
        }
        let mut tail = FileTail::new(path, encoding);
        let failing = match tail.open(start, std_now()) {
            Ok(false) => return None,
            Ok(true) => None,
            Err(e) => {
                tracing::warn!(path = %tail.path().display(), error = %e, "cannot open log file: retrying");
                Some(e.kind())
            }
        };
        tracing::info!(path = %tail.path().display(), ?start, "following");
        Some(Followed {
            tail,
            specs: specs.into(),
            polled,
            missing: false,
            dirty: true,
            failing,
            in_operation: false,
        })
    }

    /// Watches the directory of spec `index` if not yet; a spec whose directory cannot be
    /// watched is polled, one whose directory is missing waits for it on the poll tick.
    /// Whether a watch was added.
    fn watch(&mut self, index: usize) -> bool {
        let Some(watcher) = self.watcher.as_mut() else {
            return false;
        };
        let (dir, mode) = watch_dir(&self.specs[index].pattern);
        if self.polled[index] || self.watched.contains_key(&dir) {
            return false;
        }
        // Not there yet: globbed on every poll tick until it exists.
        let id = dir_id(&dir);
        self.waiting[index] = id.is_none();
        let Some(id) = id else {
            return false;
        };
        match watcher.watch(&dir, mode) {
            Ok(()) => {
                self.watched.insert(dir, id);
                true
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "inotify cannot watch the directory: polling its files");
                self.polled[index] = true;
                false
            }
        }
    }
}

/// A directory's (device, inode), if it is one.
fn dir_id(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(dir)
        .ok()
        .filter(std::fs::Metadata::is_dir)
        .map(|m| (m.dev(), m.ino()))
}

impl Followed {
    fn wants_poll(&self) -> bool {
        self.polled || self.missing || self.tail.has_retired()
    }
}

/// Now on tokio's clock (which tests may pause), as the file layer takes it.
fn std_now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Reads one file's next batch; logs a failure once per kind of failure.
fn read(followed: &mut Followed, now: std::time::Instant, grace: Duration) -> Option<Batch> {
    let mut lines = Vec::new();
    let in_operation = followed.in_operation;
    match followed.tail.read(BATCH_BYTES, &mut lines, now, grace) {
        Ok(more) => {
            followed.dirty = more;
            followed.failing = None;
            if !more && !followed.in_operation {
                tracing::info!(path = %followed.tail.path().display(), "caught up: lines written from here on are new");
                followed.in_operation = true;
            }
        }
        Err(e) => {
            if followed.failing != Some(e.kind()) {
                tracing::warn!(path = %followed.tail.path().display(), error = %e, "cannot read log file: retrying");
            }
            followed.failing = Some(e.kind());
            followed.dirty = false;
        }
    }
    (!lines.is_empty()).then(|| Batch {
        path: followed.tail.path().into(),
        specs: Arc::clone(&followed.specs),
        lines,
        position: followed.tail.position(),
        in_operation,
    })
}

/// The directory to watch for a pattern: its parent, or, when the parent holds wildcards, the
/// longest literal prefix of it, recursively.
fn watch_dir(pattern: &str) -> (PathBuf, notify::RecursiveMode) {
    let parent = Path::new(pattern).parent().unwrap_or(Path::new(""));
    let mut dir = PathBuf::new();
    for part in parent.components() {
        if part.as_os_str().to_string_lossy().contains(['*', '?', '[']) {
            return (non_empty(dir), notify::RecursiveMode::Recursive);
        }
        dir.push(part);
    }
    (non_empty(dir), notify::RecursiveMode::NonRecursive)
}

fn non_empty(dir: PathBuf) -> PathBuf {
    if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    }
}
