//! Cutting a byte stream into lines: the pure core of following a file. No I/O.
//!
//! A [`Splitter`] is fed the bytes of a file in the order they were written, in chunks of any
//! size, and hands out each complete line (without its `\n`, and without a `\r` before it).
//! A last line without its newline is held until the newline arrives, so a writer caught
//! half-way through a line never produces two half lines. Memory is bounded: a line longer
//! than the bound ([`MAX_LINE`] by default; fail2ban has none) is handed out cut at the bound,
//! marked as cut, and the rest of it, up to its newline, is skipped rather than held.

/// The longest line handed to the filters, in bytes: 64 KiB. A longer line is cut here (at a
/// UTF-8 character boundary) with a warning and the rest of it skipped. Real log lines are a
/// few hundred bytes; sshd and nginx cap theirs far below this.
pub const MAX_LINE: usize = 64 * 1024;

/// Cuts a stream into lines, holding at most `max` bytes of an unfinished line.
#[derive(Debug)]
pub struct Splitter {
    partial: Vec<u8>,
    skipping: bool,
    max: usize,
}

impl Default for Splitter {
    fn default() -> Self {
        Self::new(MAX_LINE)
    }
}

impl Splitter {
    /// A splitter that cuts lines longer than `max` bytes (at least 4, room for one character).
    #[must_use]
    pub fn new(max: usize) -> Self {
        Self {
            partial: Vec::new(),
            skipping: false,
            max: max.max(4),
        }
    }

    /// Bytes fed but not yet settled: the start of a line still waiting for its newline. The
    /// position to resume from after a restart is the bytes fed minus these.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Skips the bytes up to the next newline: following starts in the middle of a line
    /// (`tail` on a file whose last line is unfinished), whose start was never read.
    pub fn skip_to_newline(&mut self) {
        self.partial.clear();
        self.skipping = true;
    }

    /// Forgets any held partial line and skip state (the file was truncated or replaced).
    pub fn reset(&mut self) {
        self.partial.clear();
        self.skipping = false;
    }

    /// Feeds the next bytes of the stream; calls `line(bytes, cut)` for each line completed,
    /// `cut` being true for a line cut at the bound.
    pub fn feed(&mut self, mut chunk: &[u8], mut line: impl FnMut(&[u8], bool)) {
        while !chunk.is_empty() {
            let newline = memchr::memchr(b'\n', chunk);
            let (segment, rest) = match newline {
                Some(at) => (&chunk[..at], &chunk[at + 1..]),
                None => (chunk, &[][..]),
            };
            chunk = rest;
            if self.skipping {
                self.skipping = newline.is_none();
                continue;
            }
            let held = self.partial.len();
            if held + segment.len() > self.max {
                self.partial.extend_from_slice(&segment[..self.max - held]);
                let cut = char_boundary(&self.partial);
                line(&self.partial[..cut], true);
                self.partial.clear();
                self.skipping = newline.is_none();
            } else if newline.is_none() {
                self.partial.extend_from_slice(segment);
            } else if held == 0 {
                line(strip_cr(segment), false);
            } else {
                self.partial.extend_from_slice(segment);
                line(strip_cr(&self.partial), false);
                self.partial.clear();
            }
        }
    }

    /// Hands out a held partial line as complete: the file it came from was rotated away and
    /// will get no more bytes.
    pub fn flush(&mut self, mut line: impl FnMut(&[u8], bool)) {
        if !self.partial.is_empty() {
            line(strip_cr(&self.partial), false);
        }
        self.reset();
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Where to cut `bytes` (a line's first bytes) so as not to split a UTF-8 sequence: before
/// its last character if that one is incomplete. Other encodings are unaffected, but for a
/// step of at most three bytes.
fn char_boundary(bytes: &[u8]) -> usize {
    let len = bytes.len();
    let Some(start) = (len.saturating_sub(4)..len)
        .rev()
        .find(|&i| bytes[i] & 0xC0 != 0x80)
    else {
        return len;
    };
    let need = match bytes[start] {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    };
    if start + need > len { start } else { len }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> (Vec<(String, bool)>, usize) {
        let mut splitter = Splitter::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.feed(chunk, |l, cut| {
                out.push((String::from_utf8_lossy(l).into_owned(), cut));
            });
        }
        (out, splitter.pending())
    }

    fn plain(lines: &[&str]) -> Vec<(String, bool)> {
        lines.iter().map(|l| ((*l).to_owned(), false)).collect()
    }

    #[test]
    fn a_partial_last_line_waits_for_its_newline_whatever_the_chunks() {
        let text = b"one\ntwo\r\nthree\n\nfour";
        for size in 1..=text.len() {
            let chunks: Vec<&[u8]> = text.chunks(size).collect();
            let (lines, pending) = split(MAX_LINE, &chunks);
            assert_eq!(
                lines,
                plain(&["one", "two", "three", ""]),
                "chunks of {size}"
            );
            assert_eq!(pending, 4, "`four` is held, chunks of {size}");
        }
    }

    #[test]
    fn a_long_line_is_cut_at_the_bound_and_the_rest_skipped_to_its_newline() {
        let long = format!("{}\nnext\n", "x".repeat(25));
        for size in [1, 3, 7, 100] {
            let chunks: Vec<&[u8]> = long.as_bytes().chunks(size).collect();
            let (lines, pending) = split(10, &chunks);
            assert_eq!(
                lines,
                vec![("x".repeat(10), true), ("next".to_owned(), false)],
                "chunks of {size}"
            );
            assert_eq!(pending, 0);
        }
        // Exactly at the bound is not cut.
        let (lines, _) = split(10, &[b"0123456789\n"]);
        assert_eq!(lines, plain(&["0123456789"]));
        // While skipping, nothing is held.
        let (lines, pending) = split(10, &[&[b'y'; 1000][..], &[b'y'; 1000][..]]);
        assert_eq!((lines.len(), pending), (1, 0));
    }

    #[test]
    fn a_cut_never_splits_a_utf8_character() {
        // "é" is two bytes: a bound of 10 falls inside the fifth one.
        let text = format!("{}\n", "é".repeat(8));
        let (lines, _) = split(9, &[text.as_bytes()]);
        assert_eq!(lines, vec![("é".repeat(4), true)]);
        let (lines, _) = split(8, &[text.as_bytes()]);
        assert_eq!(lines, vec![("é".repeat(4), true)]);
        let (lines, _) = split(6, &["€€€\n".as_bytes()]);
        assert_eq!(lines, vec![("€€".to_owned(), true)]);
        let (lines, _) = split(7, &["€€€\n".as_bytes()]);
        assert_eq!(lines, vec![("€€".to_owned(), true)]);
    }

    #[test]
    fn flush_hands_out_the_held_line_and_reset_forgets_it() {
        let mut splitter = Splitter::default();
        let mut out = Vec::new();
        splitter.feed(b"a\nb", |l, _| out.push(l.to_vec()));
        splitter.flush(|l, _| out.push(l.to_vec()));
        assert_eq!(out, vec![b"a".to_vec(), b"b".to_vec()]);
        splitter.feed(b"c", |_, _| unreachable!());
        splitter.reset();
        assert_eq!(splitter.pending(), 0);
    }
}
