//! One followed file: its open handle, its position, rotation. Blocking I/O on one file;
//! [`super::follow`] decides when to call it.
//!
//! A [`FileTail`] keeps the file open and reads what was appended since the last call. Before
//! reading it checks whether the file was rotated: another file at the path (rename and
//! create: the rest of the old file is read first, then the new one from its start; the old
//! one stays open and read until it has been quiet for a grace period, since its writer may
//! keep writing to it until told to reopen its log), or the
//! same file shorter than what was read or with a different first line (copytruncate, also
//! when the writer refilled it past the old position before this call). The first line's hash
//! is fail2ban's identity check, and it is what a stored [`Position`] carries across restarts.

use std::{
    fs::File,
    io,
    os::unix::fs::{FileExt as _, MetadataExt as _},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::{
    encoding::Encoding,
    lines::{MAX_LINE, Splitter},
};

/// Where reading a file has got to: what the daemon stores so that a restart resumes there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Position {
    /// Bytes settled: every line before this offset was handed out.
    pub offset: u64,
    /// [`line_hash`] of the file's first line with its newline; 0 while the file has no
    /// complete first line. A stored offset is used only while this still matches.
    pub first_line_hash: u64,
}

/// Where to start a file that is opened for the first time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// From the first byte (fail2ban's `head`, and every file that appears after the start).
    Head,
    /// From the end: only lines written from now on (`logpath = FILE tail`).
    Tail,
    /// From a stored position, if the file's first line still matches it; else from the start.
    Resume(Position),
}

/// How a file's first line is named in a [`Position`]: FNV-1a, 64 bits, over the line's
/// bytes with its newline; never 0, which stands for "no complete first line". Stable across
/// versions and machines, since stores keep it.
#[must_use]
pub fn line_hash(line: &[u8]) -> u64 {
    let hash = line.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash.max(1)
}

/// A followed file.
#[derive(Debug)]
pub struct FileTail {
    path: PathBuf,
    encoding: Encoding,
    current: Option<Reader>,
    /// The file that the current one replaced, read until it has been quiet for the grace
    /// period: a writer keeps writing to it until it reopens its log (logrotate's `postrotate`).
    retired: Option<Reader>,
}

/// An open file and how far it was read.
#[derive(Debug)]
struct Reader {
    file: File,
    id: (u64, u64),
    read_to: u64,
    hash: u64,
    splitter: Splitter,
    grew_at: Instant,
}

impl FileTail {
    /// A file to follow, not opened yet.
    #[must_use]
    pub fn new(path: PathBuf, encoding: Encoding) -> Self {
        Self {
            path,
            encoding,
            current: None,
            retired: None,
        }
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file is open (it existed and was readable at the last call).
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.current.is_some()
    }

    /// Whether a replaced file is still being read (then it is worth reading on every tick).
    #[must_use]
    pub fn has_retired(&self) -> bool {
        self.retired.is_some()
    }

    /// Whether nothing was read for `grace` (since `now`): a file gone for good may be let go.
    #[must_use]
    pub fn quiet(&self, now: Instant, grace: Duration) -> bool {
        [&self.current, &self.retired]
            .into_iter()
            .flatten()
            .all(|r| now.saturating_duration_since(r.grew_at) >= grace)
    }

    /// The position to store after the lines handed out so far.
    #[must_use]
    pub fn position(&self) -> Position {
        self.current
            .as_ref()
            .map_or_else(Position::default, |r| Position {
                offset: r.read_to - r.splitter.pending() as u64,
                first_line_hash: r.hash,
            })
    }

    /// Opens the file and places the reader as `start` says. `Ok(false)`: it does not exist.
    pub fn open(&mut self, start: Start, now: Instant) -> io::Result<bool> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let hash = first_line_hash(&file)?;
        let mut splitter = Splitter::default();
        let read_to = match start {
            Start::Head => 0,
            Start::Tail => {
                if meta.len() > 0 && !ends_with_newline(&file, meta.len())? {
                    splitter.skip_to_newline();
                }
                meta.len()
            }
            Start::Resume(p) if p.first_line_hash == hash && p.offset <= meta.len() => p.offset,
            Start::Resume(p) => {
                if p.offset > 0 {
                    tracing::info!(path = %self.path.display(), "file changed while stopped (first line or size differs): reading it from the start");
                }
                0
            }
        };
        self.current = Some(Reader {
            id: (meta.dev(), meta.ino()),
            file,
            read_to,
            hash,
            splitter,
            grew_at: now,
        });
        Ok(true)
    }

    /// Reads what was appended since the last call, up to about `budget` bytes, decoding each
    /// complete line into `lines`; checks for rotation first. Lines of a replaced file come
    /// before those of its successor. `Ok(true)`: more is waiting.
    pub fn read(
        &mut self,
        budget: usize,
        lines: &mut Vec<String>,
        now: Instant,
        grace: Duration,
    ) -> io::Result<bool> {
        if self.current.is_none() && !self.open(Start::Head, now)? {
            self.read_retired(lines, now, grace)?;
            return Ok(false);
        }
        match std::fs::metadata(&self.path) {
            Ok(meta)
                if self
                    .current
                    .as_ref()
                    .is_some_and(|r| r.id != (meta.dev(), meta.ino())) =>
            {
                tracing::info!(path = %self.path.display(), "log rotation: a new file replaced it");
                if let Some(mut older) = self.retired.take() {
                    older.finish(lines, self.encoding, &self.path, now)?;
                }
                self.retired = self.current.take();
                self.open(Start::Head, now)?;
            }
            Ok(_) => self.check_truncation()?,
            // Renamed away with no successor yet: keep reading the open file.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.read_retired(lines, now, grace)?;
        match self.current.as_mut() {
            Some(reader) => reader.read(budget, lines, self.encoding, &self.path, now),
            None => Ok(false),
        }
    }

    /// Reads the replaced file; lets it go, its last partial line handed out as complete,
    /// once it has been quiet for `grace`.
    fn read_retired(
        &mut self,
        lines: &mut Vec<String>,
        now: Instant,
        grace: Duration,
    ) -> io::Result<()> {
        let Some(retired) = self.retired.as_mut() else {
            return Ok(());
        };
        while retired.read(usize::MAX, lines, self.encoding, &self.path, now)? {}
        if now.saturating_duration_since(retired.grew_at) >= grace {
            retired
                .splitter
                .flush(|l, _| lines.push(self.encoding.decode(l).into_owned()));
            self.retired = None;
        }
        Ok(())
    }

    /// Reads and hands out everything left, the replaced file first (the file is let go).
    pub fn finish(&mut self, lines: &mut Vec<String>, now: Instant) -> io::Result<()> {
        for mut reader in [self.retired.take(), self.current.take()]
            .into_iter()
            .flatten()
        {
            reader.finish(lines, self.encoding, &self.path, now)?;
        }
        Ok(())
    }

    /// Copytruncate: the open file is shorter than what was read, or its first line changed.
    fn check_truncation(&mut self) -> io::Result<()> {
        let Some(reader) = self.current.as_mut() else {
            return Ok(());
        };
        let len = reader.file.metadata()?.len();
        if len == reader.read_to && reader.hash != 0 {
            return Ok(());
        }
        let hash = first_line_hash(&reader.file)?;
        if len < reader.read_to || (reader.hash != 0 && hash != reader.hash) {
            tracing::info!(path = %self.path.display(), size = len, read = reader.read_to, "log rotation: the file was truncated");
            reader.read_to = 0;
            reader.splitter.reset();
        }
        reader.hash = hash;
        Ok(())
    }
}

impl Reader {
    /// Reads up to about `budget` bytes; `Ok(true)`: more is waiting.
    fn read(
        &mut self,
        budget: usize,
        lines: &mut Vec<String>,
        encoding: Encoding,
        path: &Path,
        now: Instant,
    ) -> io::Result<bool> {
        // Sized to what is there (a line or two, usually), at most one chunk.
        let mut buf = Vec::new();
        let mut done = 0;
        while done < budget {
            let available = self.file.metadata()?.len().saturating_sub(self.read_to);
            if available == 0 {
                return Ok(false);
            }
            let want = usize::try_from(available)
                .unwrap_or(usize::MAX)
                .min(CHUNK)
                .min(budget - done);
            buf.resize(want, 0);
            let n = match self.file.read_at(&mut buf, self.read_to) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok(false);
            }
            self.read_to += n as u64;
            self.grew_at = now;
            done += n;
            self.splitter.feed(&buf[..n], |line, cut| {
                if cut {
                    tracing::warn!(path = %path.display(), bound = MAX_LINE, "line longer than the bound: cut there, the rest of it skipped");
                }
                lines.push(encoding.decode(line).into_owned());
            });
        }
        Ok(true)
    }

    /// Reads everything left and hands out a last partial line as complete.
    fn finish(
        &mut self,
        lines: &mut Vec<String>,
        encoding: Encoding,
        path: &Path,
        now: Instant,
    ) -> io::Result<()> {
        while self.read(usize::MAX, lines, encoding, path, now)? {}
        self.splitter
            .flush(|l, _| lines.push(encoding.decode(l).into_owned()));
        Ok(())
    }
}

/// The most bytes read at once.
const CHUNK: usize = 64 * 1024;

/// The [`line_hash`] of the file's first line, read from its start; 0 if it has no newline
/// within [`MAX_LINE`] bytes.
fn first_line_hash(file: &File) -> io::Result<u64> {
    let mut buf = vec![0; 4096];
    let mut line = Vec::new();
    while line.len() < MAX_LINE {
        let n = file.read_at(&mut buf, line.len() as u64)?;
        if n == 0 {
            return Ok(0);
        }
        if let Some(at) = memchr::memchr(b'\n', &buf[..n]) {
            line.extend_from_slice(&buf[..=at]);
            return Ok(line_hash(&line));
        }
        line.extend_from_slice(&buf[..n]);
    }
    Ok(0)
}

fn ends_with_newline(file: &File, len: u64) -> io::Result<bool> {
    let mut last = [0];
    file.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn append(path: &Path, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    const GRACE: Duration = Duration::from_secs(60);

    fn read_at(tail: &mut FileTail, now: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        while tail.read(7, &mut lines, now, GRACE).unwrap() {}
        lines
    }

    fn read_all(tail: &mut FileTail) -> Vec<String> {
        read_at(tail, Instant::now())
    }

    fn opened(path: &Path, start: Start) -> FileTail {
        let mut tail = FileTail::new(path.to_path_buf(), Encoding::Auto);
        assert!(tail.open(start, Instant::now()).unwrap());
        tail
    }

    #[test]
    fn reads_appended_lines_once_and_holds_a_partial_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.log");
        append(&path, "one\ntwo\nthr");
        let mut tail = opened(&path, Start::Head);
        assert_eq!(read_all(&mut tail), ["one", "two"]);
        assert_eq!(tail.position().offset, 8, "the partial line is not settled");
        assert_eq!(tail.position().first_line_hash, line_hash(b"one\n"));
        assert!(read_all(&mut tail).is_empty());
        append(&path, "ee\nfour\n");
        assert_eq!(read_all(&mut tail), ["three", "four"]);
        assert_eq!(tail.position().offset, 19);
    }

    #[test]
    fn tail_starts_at_the_end_and_skips_an_unfinished_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.log");
        append(&path, "old\nhalf of an old li");
        let mut tail = opened(&path, Start::Tail);
        append(&path, "ne\nnew\n");
        assert_eq!(read_all(&mut tail), ["new"]);
    }

    #[test]
    fn resumes_from_a_stored_position_only_while_the_first_line_matches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.log");
        append(&path, "first\nsecond\n");
        let mut tail = opened(&path, Start::Head);
        assert_eq!(read_all(&mut tail), ["first", "second"]);
        let stored = tail.position();
        append(&path, "written while down\n");

        let mut again = opened(&path, Start::Resume(stored));
        assert_eq!(read_all(&mut again), ["written while down"]);

        // Truncated while down and refilled with the same first line, but shorter than the
        // stored offset: from the start.
        std::fs::write(&path, "first\n").unwrap();
        let mut shorter = opened(&path, Start::Resume(stored));
        assert_eq!(read_all(&mut shorter), ["first"]);

        // Rotated while down: another first line, so from the start, whatever the offset.
        std::fs::write(&path, "other\nfile is longer than before\n").unwrap();
        let mut rotated = opened(&path, Start::Resume(stored));
        assert_eq!(
            read_all(&mut rotated),
            ["other", "file is longer than before"]
        );
    }

    #[test]
    fn copytruncate_is_seen_even_when_the_file_has_regrown_past_the_old_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.log");
        append(&path, "1\n2\n");
        let mut tail = opened(&path, Start::Head);
        assert_eq!(read_all(&mut tail), ["1", "2"]);
        // Truncated in place and refilled beyond 4 bytes before the next read.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        append(&path, "3\n4\n5\n");
        assert_eq!(read_all(&mut tail), ["3", "4", "5"]);
        // Truncated to less than was read.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        append(&path, "6\n");
        assert_eq!(read_all(&mut tail), ["6"]);
    }

    #[test]
    fn rename_and_create_reads_the_old_file_first_and_until_it_is_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.log");
        let t0 = Instant::now();
        append(&path, "1\n");
        let mut tail = opened(&path, Start::Head);
        assert_eq!(read_at(&mut tail, t0), ["1"]);
        append(&path, "2\n");
        let old = dir.path().join("auth.log.1");
        std::fs::rename(&path, &old).unwrap();
        // Renamed away, no successor yet: the open file is still read.
        assert_eq!(read_at(&mut tail, t0), ["2"]);
        // The writer goes on with the old file, then the new one appears: the old file's
        // lines come first, and its unfinished last line waits.
        append(&old, "3\n4 unfin");
        append(&path, "5\n");
        assert_eq!(read_at(&mut tail, t0), ["3", "5"]);
        assert_eq!(tail.position().offset, 2, "the new file's position");
        // Until the writer reopens its log, it writes to the old file: still read.
        append(&old, "ished\n6\n7 never finished");
        assert_eq!(read_at(&mut tail, t0 + GRACE / 2), ["4 unfinished", "6"]);
        assert!(tail.has_retired());
        assert!(!tail.quiet(t0 + GRACE / 2, GRACE));
        // Quiet for the grace period: let go, its last partial line handed out.
        assert_eq!(read_at(&mut tail, t0 + GRACE * 2), ["7 never finished"]);
        assert!(!tail.has_retired());
        append(&path, "8\n");
        assert_eq!(read_at(&mut tail, t0 + GRACE * 2), ["8"]);
    }

    #[test]
    fn a_line_past_the_bound_is_cut_and_the_next_one_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.log");
        append(&path, &format!("{}\nafter\n", "x".repeat(MAX_LINE * 3)));
        let mut tail = opened(&path, Start::Head);
        let mut lines = Vec::new();
        while tail
            .read(usize::MAX, &mut lines, Instant::now(), GRACE)
            .unwrap()
        {}
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(lines[1], "after");
    }

    #[test]
    fn the_hash_is_stable_and_never_zero() {
        // Pinned: stores keep this value across versions.
        assert_eq!(line_hash(b"a\n"), 0x089b_dc07_b544_e7b2);
        assert_ne!(line_hash(b""), 0);
    }
}
