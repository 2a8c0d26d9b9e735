//! A whole log read on several cores, with the answers one scanner reading it line by line
//! would give (`banxdp regex` on a file).
//!
//! The log is cut into chunks of whole lines. Worker threads, each with its own copy of the
//! scanner, *prepare* the lines of one chunk at a time ([`Scanner::prepare`]: the date found
//! and cut out, a one-line filter's patterns searched); the calling thread *finishes* them
//! in the log's order ([`Scanner::finish`]: the last date, connections, multi-line buffers),
//! and prepares chunks itself while the next one to finish is not ready, so that no core
//! waits for another.
//!
//! Preparing depends on one piece of state, the date pattern that found the last line's date,
//! which is tried first ([`Scanner::date_order`]). A worker starts each chunk without it, as
//! if the chunk began the log. The finishing scanner knows the real one; while the two
//! differ it prepares the chunk's lines again itself, and from the first line after which
//! they agree, the worker's answers are the ones it would have found. On a log in one date
//! format that is one line per chunk.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    io::{self, Read},
    ops::Range,
    sync::{Condvar, Mutex, PoisonError, mpsc},
};

use crate::filter::{Scanned, Scanner, date::Clock, scan::Prepared, tracker::Found};

/// How a log is read.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Threads in all: 0 or 1 reads the log on the calling thread alone; more add that
    /// many less one workers to it, since the calling thread works too.
    pub threads: usize,
    /// Bytes per chunk (a chunk holds whole lines, so it may be longer).
    pub chunk: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            // One per core, up to eight: past that the merging thread cannot keep up, and
            // each thread keeps about 4 MiB of chunks in flight.
            threads: std::thread::available_parallelism().map_or(1, |n| usize::from(n).min(8)),
            chunk: 256 << 10,
        }
    }
}

/// What a line is to [`scan`]'s caller.
pub struct Line<'a> {
    /// 0-based number of the line in the log.
    pub index: usize,
    /// Its bytes, without the line end (see [`Line::text`]).
    pub bytes: &'a [u8],
    /// What the scanner found; `None` for a line the caller's `skip` left out.
    pub scanned: Option<Scanned>,
    /// The scanner that finished the line (for the names of its date patterns).
    pub scanner: &'a mut Scanner,
}

impl Line<'_> {
    /// The line's text, invalid UTF-8 replaced.
    #[must_use]
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.bytes)
    }
}

/// Reads every line of `input` through `scanner`, handing each to `each` in order; lines
/// for which `skip` is true are handed on without reaching the scanner. The answers are
/// those of [`Scanner::line`] on each line in turn, whatever `options.threads`.
pub fn scan(
    input: &mut (dyn Read + Send),
    scanner: &mut Scanner,
    clock: &Clock,
    options: Options,
    skip: fn(&str) -> bool,
    each: &mut dyn FnMut(Line<'_>),
) -> io::Result<()> {
    let mut chunks = Chunks::new(input, options.chunk.max(1));
    let mut base = 0;
    if options.threads <= 1 {
        let mut chunk = Chunk::default();
        while chunks.next(&mut chunk)? {
            let data = chunk.bytes();
            for (range, text) in texts(data) {
                let bytes = trimmed(&data[range]);
                let read = (!skip(&text)).then(|| scanner.line(&text, clock));
                each(Line {
                    index: base,
                    bytes,
                    scanned: read,
                    scanner,
                });
                base += 1;
            }
        }
        return Ok(());
    }
    let workers = options.threads - 1;
    let shared = Shared {
        limit: options.threads * 4,
        state: Mutex::new(Queue {
            chunks,
            next: 0,
            finished: 0,
        }),
        room: Condvar::new(),
        spare: Mutex::new(Vec::new()),
    };
    let (send, receive) = mpsc::channel::<io::Result<Prepped>>();
    std::thread::scope(|threads| {
        for _ in 0..workers {
            let send = send.clone();
            let mut own = scanner.clone();
            let shared = &shared;
            threads.spawn(move || {
                // A worker that fails stops the others, so that nobody waits for its chunk.
                let _stop = StopOnPanic(shared);
                loop {
                    let mut prepped = shared.spare();
                    match shared.take(&mut prepped.data) {
                        Ok(Some(seq)) => prepped.seq = seq,
                        Ok(None) => break,
                        Err(e) => {
                            let _ = send.send(Err(e));
                            break;
                        }
                    }
                    prepare(&mut own, &mut prepped, clock, skip);
                    if send.send(Ok(prepped)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(send);
        // This thread prepares chunks too, and may fail as a worker can.
        let _stop = StopOnPanic(&shared);
        let mut merge = Merge {
            shared: &shared,
            receive: &receive,
            helper: scanner.clone(),
            waiting: BTreeMap::new(),
            next: 0,
            base: 0,
        };
        let outcome = merge.run(scanner, clock, skip, each);
        // Whatever happened, the workers stop at their next chunk.
        shared.stop();
        drop(receive);
        outcome
    })
}

/// The calling thread's part: finishing the chunks in order, and preparing chunks itself
/// while the next one to finish is not ready.
struct Merge<'m, 'r> {
    shared: &'m Shared<'r>,
    receive: &'m mpsc::Receiver<io::Result<Prepped>>,
    /// The scanner that prepares chunks here (the finishing one keeps the log's state).
    helper: Scanner,
    /// Prepared chunks not yet finished, by number.
    waiting: BTreeMap<usize, Prepped>,
    /// The number of the next chunk to finish.
    next: usize,
    /// The number of the first line of that chunk.
    base: usize,
}

impl Merge<'_, '_> {
    fn run(
        &mut self,
        scanner: &mut Scanner,
        clock: &Clock,
        skip: fn(&str) -> bool,
        each: &mut dyn FnMut(Line<'_>),
    ) -> io::Result<()> {
        let (mut reading, mut workers_done) = (true, false);
        loop {
            while let Some(mut prepped) = self.waiting.remove(&self.next) {
                self.base += finish(scanner, &mut prepped, self.base, clock, each);
                self.next += 1;
                self.shared.finished(self.next);
                self.shared.recycle(prepped);
            }
            if !workers_done {
                match self.receive.try_recv() {
                    Ok(prepped) => {
                        self.keep(prepped?);
                        continue;
                    }
                    Err(mpsc::TryRecvError::Disconnected) => workers_done = true,
                    Err(mpsc::TryRecvError::Empty) => {}
                }
            }
            if reading {
                let mut prepped = self.shared.spare();
                match self.shared.try_take(&mut prepped.data)? {
                    Take::Chunk(seq) => {
                        prepped.seq = seq;
                        prepare(&mut self.helper, &mut prepped, clock, skip);
                        self.keep(prepped);
                        continue;
                    }
                    Take::End => {
                        reading = false;
                        self.shared.recycle(prepped);
                        continue;
                    }
                    Take::Full => self.shared.recycle(prepped),
                }
            }
            if workers_done {
                // Nothing more comes; a chunk still waiting lacks one before it, which a
                // failed worker had (its panic reaches the caller).
                return Ok(());
            }
            match self.receive.recv() {
                Ok(prepped) => self.keep(prepped?),
                Err(mpsc::RecvError) => workers_done = true,
            }
        }
    }

    fn keep(&mut self, prepped: Prepped) {
        self.waiting.insert(prepped.seq, prepped);
    }
}

/// What [`Shared::try_take`] found.
enum Take {
    /// A chunk, with its number.
    Chunk(usize),
    /// The workers are as far ahead of the finishing as they may be.
    Full,
    /// The log's end.
    End,
}

/// A chunk's lines, prepared by a worker. Finished, it goes back to the workers for another
/// chunk, with the room its buffers grew.
#[derive(Default)]
struct Prepped {
    seq: usize,
    data: Chunk,
    /// Each line's place in `data`, and what the worker made of it (`None`: skipped).
    lines: Vec<(Range<usize>, Option<Prepared>)>,
    found: Found,
}

/// The chunks still to read, shared by the workers, and how far the finishing has come:
/// workers wait for it when they are `limit` chunks ahead, so memory stays bounded however
/// long one chunk takes.
struct Shared<'r> {
    /// How many chunks workers may be ahead of the finishing.
    limit: usize,
    state: Mutex<Queue<'r>>,
    room: Condvar,
    /// Finished chunks, for their buffers.
    spare: Mutex<Vec<Prepped>>,
}

struct Queue<'r> {
    chunks: Chunks<'r>,
    /// The number of the next chunk read.
    next: usize,
    /// Chunks finished so far.
    finished: usize,
}

impl<'r> Shared<'r> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<'r>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the next chunk into `data`; its number.
    fn take(&self, data: &mut Chunk) -> io::Result<Option<usize>> {
        let mut state = self.lock();
        while state.next >= state.finished.saturating_add(self.limit) {
            state = self
                .room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if !state.chunks.next(data)? {
            return Ok(None);
        }
        state.next += 1;
        Ok(Some(state.next - 1))
    }

    /// As [`Shared::take`], without waiting for room.
    fn try_take(&self, data: &mut Chunk) -> io::Result<Take> {
        let mut state = self.lock();
        if state.next >= state.finished.saturating_add(self.limit) {
            return Ok(Take::Full);
        }
        if !state.chunks.next(data)? {
            return Ok(Take::End);
        }
        state.next += 1;
        Ok(Take::Chunk(state.next - 1))
    }

    /// Keeps a finished chunk's buffers for another.
    fn recycle(&self, prepped: Prepped) {
        self.spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(prepped);
    }

    /// A finished chunk's buffers, or new ones.
    fn spare(&self) -> Prepped {
        self.spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default()
    }

    /// Workers read no more chunks.
    fn stop(&self) {
        let mut state = self.lock();
        state.chunks.stop();
        state.finished = usize::MAX;
        drop(state);
        self.room.notify_all();
    }

    fn finished(&self, count: usize) {
        self.lock().finished = count;
        self.room.notify_all();
    }
}

/// Stops the reading when dropped in a panic (see [`Shared::stop`]).
struct StopOnPanic<'s, 'r>(&'s Shared<'r>);

impl Drop for StopOnPanic<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}

/// A worker's part: the chunk's lines prepared from a fresh date order.
fn prepare(scanner: &mut Scanner, prepped: &mut Prepped, clock: &Clock, skip: fn(&str) -> bool) {
    scanner.set_date_order(None);
    let Prepped {
        data,
        lines: out,
        found,
        ..
    } = prepped;
    out.clear();
    found.clear();
    for (range, text) in texts(data.bytes()) {
        let prepared = (!skip(&text)).then(|| scanner.prepare(&text, clock, found));
        out.push((range, prepared));
    }
}

/// The finishing thread's part: the chunk's lines finished in order, those prepared from
/// another date order than the real one prepared again; the number of lines.
fn finish(
    scanner: &mut Scanner,
    prepped: &mut Prepped,
    base: usize,
    clock: &Clock,
    each: &mut dyn FnMut(Line<'_>),
) -> usize {
    let count = prepped.lines.len();
    let mut own = Found::default();
    let Prepped {
        data, lines, found, ..
    } = prepped;
    let data = data.bytes();
    // The worker's date order before the current line; equal to the real one from some line
    // on, and from then on the worker's answers are the real ones.
    let mut worker = None;
    let mut agree = false;
    for (n, (range, prepared)) in lines.iter().enumerate() {
        let bytes = trimmed(&data[range.clone()]);
        let read = prepared.as_ref().map(|prepared| {
            agree = agree || scanner.date_order() == worker;
            if agree {
                return scanner.finish(prepared, found, clock);
            }
            worker = prepared.template().or(worker);
            own.clear();
            let again = scanner.prepare(&text_of(bytes), clock, &mut own);
            scanner.finish(&again, &mut own, clock)
        });
        each(Line {
            index: base + n,
            bytes,
            scanned: read,
            scanner,
        });
    }
    count
}

/// The lines of a chunk: the text between line ends, without a last empty one after the
/// final line end.
fn lines(data: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= data.len() {
            return None;
        }
        let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |p| start + p);
        let line = start..end;
        start = end + 1;
        Some(line)
    })
}

/// The lines of a chunk with their text (see [`text_of`]): the chunk's UTF-8 is checked
/// once, and each line's only where the chunk has invalid bytes.
fn texts(data: &[u8]) -> impl Iterator<Item = (Range<usize>, Cow<'_, str>)> + '_ {
    let ascii = is_ascii(data);
    let whole = if ascii {
        // SAFETY: ASCII, as `is_ascii` just found this very slice to be, is valid UTF-8.
        // The check `from_utf8` would repeat costs about 1% of a line's reading.
        Some(unsafe { std::str::from_utf8_unchecked(data) })
    } else {
        std::str::from_utf8(data).ok()
    };
    lines(data).map(move |range| {
        let text = match whole {
            // Line ends are character boundaries.
            Some(all) => Cow::Borrowed(all[range.clone()].trim_end_matches('\r')),
            None => text_of(trimmed(&data[range.clone()])),
        };
        (range, text)
    })
}

/// Whether `data` is all ASCII: every byte read, without the early exit that keeps the
/// standard check from being vectorised (a chunk almost always is).
fn is_ascii(data: &[u8]) -> bool {
    data.iter().fold(0, |any, &byte| any | byte) < 0x80
}

/// A line without the carriage returns before its end.
fn trimmed(line: &[u8]) -> &[u8] {
    let end = line.iter().rposition(|b| *b != b'\r').map_or(0, |p| p + 1);
    &line[..end]
}

/// A line's text, invalid UTF-8 replaced (checked first the fast way: it is rare).
fn text_of(line: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(line) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(line),
    }
}

/// A chunk's bytes ([`Chunk::bytes`]), in a buffer that stays initialised as it is reused,
/// so that the next chunk is read straight into it, in one `read` for a file, without
/// zeroing it again first.
#[derive(Default)]
struct Chunk {
    buffer: Vec<u8>,
    len: usize,
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        &self.buffer[..self.len]
    }

    /// Room for `more` bytes after the chunk's.
    fn room(&mut self, more: usize) -> &mut [u8] {
        let end = self.len + more;
        if self.buffer.len() < end {
            self.buffer.resize(end, 0);
        }
        &mut self.buffer[self.len..end]
    }
}

/// A log read in chunks of whole lines.
struct Chunks<'r> {
    input: &'r mut (dyn Read + Send),
    size: usize,
    /// The start of a line read with the last chunk.
    carry: Vec<u8>,
    ended: bool,
}

impl<'r> Chunks<'r> {
    fn new(input: &'r mut (dyn Read + Send), size: usize) -> Self {
        Self {
            input,
            size,
            carry: Vec::new(),
            ended: false,
        }
    }

    /// Reads the next chunk into `chunk`: at least `size` bytes up to a line end, or the
    /// rest of the log; false at its end.
    fn next(&mut self, chunk: &mut Chunk) -> io::Result<bool> {
        chunk.len = 0;
        chunk.room(self.carry.len()).copy_from_slice(&self.carry);
        chunk.len = self.carry.len();
        self.carry.clear();
        // Where a line end may be: not in what was searched before.
        let mut searched = 0;
        loop {
            if chunk.len >= self.size {
                if let Some(end) = memchr::memrchr(b'\n', &chunk.bytes()[searched..]) {
                    let end = searched + end + 1;
                    self.carry.extend_from_slice(&chunk.bytes()[end..]);
                    chunk.len = end;
                    return Ok(true);
                }
                searched = chunk.len;
            }
            if self.ended {
                return Ok(chunk.len > 0);
            }
            // `size` bytes more, or up to the end. (`read_to_end` would read them in
            // several calls, from 8 KiB up.)
            let want = self.size;
            let mut got = 0;
            while got < want {
                match self.input.read(&mut chunk.room(want - got)[..]) {
                    Ok(0) => {
                        self.ended = true;
                        break;
                    }
                    Ok(n) => {
                        chunk.len += n;
                        got += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Reads no more.
    fn stop(&mut self) {
        self.ended = true;
        self.carry.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{FilterSpec, date::fixed::utc};

    /// What a scanner reading `log` line by line gives, with each line's number and text.
    fn one_by_one(spec: &FilterSpec, log: &[u8]) -> Vec<(usize, String, Option<Scanned>)> {
        let mut scanner = Scanner::new(spec, 2026).unwrap();
        let text = String::from_utf8_lossy(log);
        let mut lines: Vec<&str> = text.split('\n').collect();
        if lines.last() == Some(&"") {
            lines.pop();
        }
        lines
            .into_iter()
            .enumerate()
            .map(|(index, line)| {
                let line = line.trim_end_matches('\r');
                let read = (!skipped(line)).then(|| scanner.line(line, &utc()));
                (index, line.to_string(), read)
            })
            .collect()
    }

    fn skipped(line: &str) -> bool {
        line.is_empty() || line.starts_with('#')
    }

    fn in_bulk(
        spec: &FilterSpec,
        log: &[u8],
        threads: usize,
        chunk: usize,
    ) -> Vec<(usize, String, Option<Scanned>)> {
        in_bulk_skipping(spec, log, threads, chunk, skipped)
    }

    fn in_bulk_skipping(
        spec: &FilterSpec,
        log: &[u8],
        threads: usize,
        chunk: usize,
        skip: fn(&str) -> bool,
    ) -> Vec<(usize, String, Option<Scanned>)> {
        let mut scanner = Scanner::new(spec, 2026).unwrap();
        let mut out = Vec::new();
        let options = Options { threads, chunk };
        scan(
            &mut &log[..],
            &mut scanner,
            &utc(),
            options,
            skip,
            &mut |line| {
                out.push((line.index, line.text().into_owned(), line.scanned));
            },
        )
        .unwrap();
        out
    }

    /// A log that tells date orders apart: a line that only the `%Z`-first template reads
    /// makes it the one tried first, and then it, not the plain syslog template, reads the
    /// plain lines after it. Also connections across lines, a line break inside a chunk's
    /// reach, CRLF, invalid UTF-8, comments and no final line end.
    fn log() -> Vec<u8> {
        let mut log = Vec::new();
        for i in 0..300_u32 {
            let pid = 100 + (i / 11) % 7;
            let second = i % 60;
            let line = match i % 11 {
                0 => format!(
                    "UTC Nov 21 11:{:02}:{second:02} h sshd[{pid}]: Connection from 192.0.2.{}\n",
                    i % 60,
                    i % 250
                ),
                1 | 5 => format!(
                    "Nov 21 11:{:02}:{second:02} h sshd[{pid}]: Failed password for root\n",
                    i % 60
                ),
                2 => format!(
                    "Nov 21 11:{:02}:{second:02} h sshd[{pid}]: Connection from 198.51.100.{}\r\n",
                    i % 60,
                    i % 250
                ),
                3 => "# a comment\n".to_string(),
                4 => "\n".to_string(),
                6 => format!(
                    "Nov 21 11:{:02}:{second:02} h sshd[{pid}]: Failed password for j\u{fc}rgen\n",
                    i % 60
                ),
                7 => format!(
                    "2026-11-21 11:{:02}:{second:02} h sshd[{pid}]: Failed password for root\n",
                    i % 60
                ),
                8 => format!(
                    "no date at all, h sshd[{pid}]: Failed password for root {}\n",
                    "x".repeat(i as usize)
                ),
                _ => format!(
                    "Nov 21 11:{:02}:{second:02} h sshd[{pid}]: Accepted password for bob\n",
                    i % 60
                ),
            };
            log.extend_from_slice(line.as_bytes());
            if i == 150 {
                log.extend_from_slice(b"Nov 21 11:59:59 h sshd[1]: \xff\xfe bad bytes\n");
            }
        }
        log.extend_from_slice(b"Nov 21 11:59:59 h sshd[100]: Failed password for root");
        log
    }

    fn sshd_like(maxlines: usize) -> FilterSpec {
        FilterSpec {
            prefregex: Some(
                r"^\s*<F-MLFID>\S+ sshd\[\d+\]: </F-MLFID><F-CONTENT>.+</F-CONTENT>$".into(),
            ),
            failregex: vec![
                r"^<F-NOFAIL>Connection from</F-NOFAIL> <HOST>".into(),
                r"^Failed password for <F-USER>\S+</F-USER>".into(),
                r"^<F-MLFFORGET><F-MLFGAINED>Accepted password</F-MLFGAINED></F-MLFFORGET> for <F-USER>\S+</F-USER>$".into(),
            ],
            maxlines,
            usedns: "no".into(),
            ..FilterSpec::default()
        }
    }

    #[test]
    fn a_byte_outside_ascii_is_seen_wherever_it_is() {
        for len in [0, 1, 7, 31, 32, 33, 100, 1000] {
            let plain = vec![b'a'; len];
            assert!(is_ascii(&plain));
            for at in 0..len {
                for byte in [0x80, 0xc3, 0xff] {
                    let mut data = plain.clone();
                    data[at] = byte;
                    assert!(!is_ascii(&data), "{len} {at}");
                }
            }
        }
    }

    /// A reader that hands out a few bytes at a time, and is interrupted now and then, as a
    /// pipe or a terminal may be.
    struct Trickle<'a> {
        data: &'a [u8],
        calls: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(3) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(self.data.len()).min(1 + self.calls % 11);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn short_and_interrupted_reads_give_the_same_lines() {
        let log = log();
        let spec = sshd_like(1);
        let want = one_by_one(&spec, &log);
        for (threads, chunk) in [(1, 1), (1, 64), (2, 7), (2, 1000), (3, 333)] {
            let mut scanner = Scanner::new(&spec, 2026).unwrap();
            let mut got = Vec::new();
            let options = Options { threads, chunk };
            let mut input = Trickle {
                data: &log,
                calls: 0,
            };
            scan(
                &mut input,
                &mut scanner,
                &utc(),
                options,
                skipped,
                &mut |line| {
                    got.push((line.index, line.text().into_owned(), line.scanned));
                },
            )
            .unwrap();
            assert!(input.data.is_empty() && input.calls > log.len() / 10);
            assert_eq!(got, want, "{threads} threads, chunks of {chunk}");
        }
    }

    #[test]
    fn every_split_and_thread_count_gives_the_line_by_line_answers() {
        let log = log();
        let spec = sshd_like(1);
        let want = one_by_one(&spec, &log);
        assert!(
            want.iter()
                .filter_map(|(_, _, s)| s.as_ref())
                .any(|s| !s.failures.is_empty()),
            "the log has failures"
        );
        // The `%Z` template's lines change the order, so chunks starting after them differ
        // from a fresh start.
        let templates: std::collections::BTreeSet<_> = want
            .iter()
            .filter_map(|(_, _, s)| s.as_ref()?.template)
            .collect();
        assert!(templates.len() >= 3, "{templates:?}");
        for threads in [1, 2, 3, 4] {
            for chunk in [1, 7, 64, 333, 4096, 1 << 20] {
                let got = in_bulk(&spec, &log, threads, chunk);
                assert_eq!(
                    got.len(),
                    want.len(),
                    "{threads} threads, chunks of {chunk}"
                );
                for (got, want) in got.iter().zip(&want) {
                    assert_eq!(got, want, "{threads} threads, chunks of {chunk}");
                }
            }
        }
    }

    #[test]
    fn a_fresh_date_order_differs_and_is_corrected() {
        // The premise of the test above: from a fresh start a plain line is read by another
        // template than after a `%Z` line.
        let mut scanner = Scanner::new(&sshd_like(1), 2026).unwrap();
        let plain = "Nov 21 11:00:00 h sshd[1]: Accepted password for bob";
        let fresh = scanner.line(plain, &utc()).template;
        scanner.line("UTC Nov 21 11:00:00 h sshd[1]: x", &utc());
        let after = scanner.line(plain, &utc()).template;
        assert_ne!(fresh, after);
    }

    #[test]
    fn a_worker_that_fails_stops_the_reading_instead_of_hanging_it() {
        fn skip_or_fail(line: &str) -> bool {
            assert!(!line.contains("\u{fc}rgen"), "a worker fails");
            skipped(line)
        }
        let (done, wait) = mpsc::channel();
        std::thread::spawn(move || {
            let log = log();
            let outcome = std::panic::catch_unwind(|| {
                in_bulk_skipping(&sshd_like(1), &log, 2, 64, skip_or_fail)
            });
            let _ = done.send(outcome.is_err());
        });
        let failed = wait
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the reading ends");
        assert!(failed, "the failure reaches the caller");
    }

    #[test]
    fn multi_line_filters_are_read_alike_too() {
        let log = log();
        let mut spec = sshd_like(3);
        spec.prefregex = None;
        spec.failregex = vec![
            r"sshd\[(?P<pid>\d+)\]: Connection from <HOST>\n(?:.*\n)?.*sshd\[(?P=pid)\]: Failed"
                .into(),
        ];
        let want = one_by_one(&spec, &log);
        assert!(
            want.iter()
                .filter_map(|(_, _, s)| s.as_ref())
                .any(|s| !s.failures.is_empty()),
            "the log has multi-line failures"
        );
        for (threads, chunk) in [(2, 50), (3, 1000)] {
            assert_eq!(in_bulk(&spec, &log, threads, chunk), want);
        }
    }
}
