//! A strategy of the pattern engine: PCRE2, compiled to machine code, running a pattern that
//! `pattern` has already translated for the `regex` crate and `fancy-regex`, on texts that
//! are all ASCII. Chosen by the pattern (whether PCRE2 reads it as the exact engines do) and
//! the text (ASCII, one line), never by which filter the pattern comes from.
//!
//! Finding a match's groups is what costs: the `regex` crate's capture engines take about a
//! microsecond on a line a prefregex spans, and `fancy-regex` several on a failregex with
//! conditionals and look-aheads (the stock sshd filter's `Failed ... for ...`), where PCRE2's
//! JIT takes a tenth of that: on the stock sshd filter a whole run is 6-7x faster with it.
//! It is used only where its answer is the same as the exact engines':
//!
//! - the text is ASCII and has no line break, so Unicode classes (`\w`, `\d`, `\s`, case
//!   folding) mean what their ASCII forms mean, and `$` has no final newline to stop before;
//! - the pattern is ASCII, without `\p` classes or `\v`, and without inline flags PCRE2
//!   reads otherwise (`x`, `u`, `U`);
//! - no part that holds a group and can match empty is repeated (`(a*)*`), where the
//!   engines keep different texts for the group;
//! - `.` is compiled to match any byte (`PCRE2_DOTALL`): on a text without a line break that
//!   is Python's `.`, and PCRE2 runs `.+` to the end at once rather than byte by byte;
//! - every search is bounded by `(*LIMIT_MATCH)`: a text that reaches the bound goes to the
//!   exact engine, which has its own (linear time, or `BACKTRACK_LIMIT`).
//!
//! Both engines read regular expressions with Perl's leftmost-first priorities, so on these
//! texts they pick the same match and the same groups; `tests/tests/corpus.rs` checks that on
//! every line of fail2ban's corpus, for every pattern of every filter.

use std::{cell::RefCell, ptr::NonNull, sync::Arc};

use fancy_regex::Expr;
use pcre2_sys::{
    PCRE2_DOTALL, PCRE2_INFO_CAPTURECOUNT, PCRE2_INFO_NAMECOUNT, PCRE2_INFO_NAMEENTRYSIZE,
    PCRE2_INFO_NAMETABLE, PCRE2_JIT_COMPLETE, PCRE2_UNSET, pcre2_code_8, pcre2_code_free_8,
    pcre2_compile_8, pcre2_get_ovector_pointer_8, pcre2_jit_compile_8, pcre2_jit_match_8,
    pcre2_match_data_8, pcre2_match_data_create_from_pattern_8, pcre2_match_data_free_8,
    pcre2_pattern_info_8,
};

/// The most match steps PCRE2 may take on one text before the exact engine takes over.
pub const MATCH_LIMIT: u32 = 100_000;

/// A pattern compiled by PCRE2 to machine code, with the place its groups go, reused from
/// text to text.
///
/// Searches call `pcre2_jit_match` directly: the general `pcre2_match` (which the `pcre2`
/// crate calls) spends about 120 instructions a call on checks and dispatch before it reaches
/// the same machine code, a tenth of a prefregex's whole search.
#[derive(Debug)]
pub struct Jit {
    code: Arc<Code>,
    data: RefCell<MatchData>,
}

/// A compiled pattern with its machine code; PCRE2 reads it and never writes it once
/// compiled, so threads may share it.
#[derive(Debug)]
struct Code {
    raw: NonNull<pcre2_code_8>,
    /// Group names by number (0 is the whole match).
    names: Vec<Option<String>>,
}

// SAFETY: a compiled pattern is immutable after `pcre2_jit_compile`; PCRE2 documents it as
// shareable between threads (each search writes only its own match data).
unsafe impl Send for Code {}
// SAFETY: as above.
unsafe impl Sync for Code {}

impl Drop for Code {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `pcre2_compile_8` and is freed once, here.
        unsafe { pcre2_code_free_8(self.raw.as_ptr()) }
    }
}

/// Where one search's groups go (PCRE2's ovector), one per clone of a [`Jit`].
#[derive(Debug)]
struct MatchData(NonNull<pcre2_match_data_8>);

// SAFETY: match data is plain memory that only its owner's searches write.
unsafe impl Send for MatchData {}

impl Drop for MatchData {
    fn drop(&mut self) {
        // SAFETY: made by `pcre2_match_data_create_from_pattern_8`, freed once, here.
        unsafe { pcre2_match_data_free_8(self.0.as_ptr()) }
    }
}

impl MatchData {
    fn for_code(code: &Code) -> Self {
        // SAFETY: `code` is a live compiled pattern; a null general context means malloc.
        let raw = unsafe {
            pcre2_match_data_create_from_pattern_8(code.raw.as_ptr(), std::ptr::null_mut())
        };
        Self(NonNull::new(raw).expect("PCRE2 could not allocate match data"))
    }
}

impl Clone for Jit {
    fn clone(&self) -> Self {
        Self {
            code: Arc::clone(&self.code),
            data: RefCell::new(MatchData::for_code(&self.code)),
        }
    }
}

/// A search that PCRE2 gave up: the match limit reached (`PCRE2_ERROR_MATCHLIMIT`), or its
/// machine stack exhausted; the code is PCRE2's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GaveUp(pub i32);

/// The groups of a match, by number: where each one is in the text, if it took part.
pub struct Locations<'a> {
    /// Start and end of each group that the match may have set.
    ovector: &'a [usize],
}

impl Locations<'_> {
    /// Group `index`'s span, `None` when it did not take part.
    #[must_use]
    pub fn get(&self, index: usize) -> Option<(usize, usize)> {
        let start = *self.ovector.get(2 * index)?;
        let end = *self.ovector.get(2 * index + 1)?;
        (start != PCRE2_UNSET && end != PCRE2_UNSET).then_some((start, end))
    }
}

/// Whether PCRE2 reads `pattern` (`regex`-crate syntax, as `pattern::translate` writes it)
/// as the exact engines do, on ASCII texts.
fn portable(pattern: &str) -> bool {
    // `\p` classes fold case differently; `\v` is a vertical tab to the `regex` crate and
    // Python, any vertical space to PCRE2.
    if !pattern.is_ascii() || [r"\p", r"\P", r"\v"].iter().any(|e| pattern.contains(e)) {
        return false;
    }
    // `\h` is a hex digit to `fancy-regex`, horizontal space to PCRE2; `(?R)` is CRLF mode to
    // the `regex` crate, recursion to PCRE2. Python has neither, so no filter does: refused
    // all the same rather than read two ways.
    if [r"\h", r"\H"].iter().any(|e| pattern.contains(e)) {
        return false;
    }
    // Inline flag groups, `(?i)` or `(?i-s:`: PCRE2 reads `i`, `m` and `s` as `regex` does.
    let mut rest = pattern;
    while let Some(at) = rest.find("(?") {
        let flags: String = rest[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphabetic() || *c == '-')
            .collect();
        if flags.contains(['x', 'u', 'U', 'R']) && !flags.starts_with('P') {
            return false;
        }
        rest = &rest[at + 2..];
    }
    true
}

/// Whether `expr` can match the empty string.
fn may_be_empty(expr: &Expr) -> bool {
    match expr {
        Expr::Any { .. } | Expr::GeneralNewline { .. } | Expr::Delegate { .. } => false,
        Expr::Literal { val, .. } => val.is_empty(),
        Expr::LiteralBytes { bytes } => bytes.is_empty(),
        Expr::Concat(children) => children.iter().all(may_be_empty),
        Expr::Alt(branches) => branches.iter().any(may_be_empty),
        Expr::Group(inner) => may_be_empty(inner),
        Expr::AtomicGroup(inner) => may_be_empty(inner),
        Expr::Repeat { child, lo, .. } => *lo == 0 || may_be_empty(child),
        Expr::Conditional {
            true_branch,
            false_branch,
            ..
        } => may_be_empty(true_branch) || may_be_empty(false_branch),
        _ => true,
    }
}

/// The sub-expressions of `expr`.
fn children(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::Concat(children) | Expr::Alt(children) => children.iter().collect(),
        Expr::Group(inner) => vec![inner],
        Expr::AtomicGroup(inner) | Expr::LookAround(inner, _) => vec![inner],
        Expr::Repeat { child, .. } => vec![child],
        Expr::Conditional {
            condition,
            true_branch,
            false_branch,
        } => vec![condition, true_branch, false_branch],
        _ => Vec::new(),
    }
}

/// Whether `expr` repeats a part that holds a group and can match empty (`(a*)*`): after an
/// empty last round PCRE2 and Python keep the group's empty text, the `regex` crate the
/// text of the round before.
fn repeats_an_empty_group(expr: &Expr) -> bool {
    fn has_group(expr: &Expr) -> bool {
        matches!(expr, Expr::Group(_)) || children(expr).into_iter().any(has_group)
    }
    let here = matches!(expr, Expr::Repeat { child, hi, .. }
        if *hi > 1 && may_be_empty(child) && has_group(child));
    here || children(expr).into_iter().any(repeats_an_empty_group)
}

impl Jit {
    /// Compiles `pattern` (`regex`-crate syntax), or `None` when PCRE2 does not read it as
    /// the exact engines do, or not at all.
    #[must_use]
    pub fn new(pattern: &str) -> Option<Self> {
        if !portable(pattern)
            || Expr::parse_tree(pattern).map_or(true, |tree| repeats_an_empty_group(&tree.expr))
        {
            return None;
        }
        // `.` may match a newline: the texts served have none, so this changes no answer,
        // and PCRE2 then runs a `.+` or `.*` to the end of the text in one step instead of
        // testing each byte for a newline (half the cost of a prefregex ending `(.+)$`).
        // `(*LF)`: a newline is `\n` alone, whatever default the library was built with, so
        // that `$` and `\Z` read a text as Python does (a `\r` is an ordinary byte).
        let pattern = format!("(*LF)(*LIMIT_MATCH={MATCH_LIMIT}){pattern}");
        let code = Code::compile(&pattern, PCRE2_DOTALL)?;
        let data = RefCell::new(MatchData::for_code(&code));
        Some(Self {
            code: Arc::new(code),
            data,
        })
    }

    /// Whether this engine gives the exact answer for `text`.
    #[must_use]
    pub fn serves(text: &str) -> bool {
        text.is_ascii() && memchr::memchr(b'\n', text.as_bytes()).is_none()
    }

    /// Searches `text` (which [`Jit::serves`]) and hands the groups of the first match to
    /// `read`; `Err` when PCRE2 gave up (past [`MATCH_LIMIT`], or out of machine stack).
    pub fn search<R>(
        &self,
        text: &str,
        read: impl FnOnce(&Locations<'_>) -> R,
    ) -> Result<Option<R>, GaveUp> {
        let data = self.data.borrow_mut();
        // An empty `&str` may point anywhere (a dangling, aligned address): PCRE2 gets a
        // real one, as the `pcre2` crate makes sure too.
        let subject: &[u8] = if text.is_empty() {
            b"\0"
        } else {
            text.as_bytes()
        };
        // SAFETY: the code was JIT-compiled (`Code::compile` refuses it otherwise), the
        // subject is `text`'s bytes with their length, and the match data was made for this
        // code; a null match context means PCRE2's defaults (the pattern's own match limit
        // and a 32 KiB machine stack).
        let found = unsafe {
            pcre2_jit_match_8(
                self.code.raw.as_ptr(),
                subject.as_ptr(),
                text.len(),
                0,
                0,
                data.0.as_ptr(),
                std::ptr::null_mut(),
            )
        };
        match found {
            // The number of pairs set, the highest group that took part plus one (0 would mean
            // an ovector too small, which one made from the pattern never is).
            pairs if pairs > 0 => {
                let pairs = usize::try_from(pairs).expect("positive");
                // SAFETY: the ovector holds a pair for every group of the pattern, and a
                // successful match set the first `pairs` of them.
                let ovector = unsafe {
                    std::slice::from_raw_parts(
                        pcre2_get_ovector_pointer_8(data.0.as_ptr()),
                        2 * pairs,
                    )
                };
                Ok(Some(read(&Locations { ovector })))
            }
            pcre2_sys::PCRE2_ERROR_NOMATCH => Ok(None),
            error => Err(GaveUp(error)),
        }
    }

    /// Group names by number; PCRE2 numbers groups as the `regex` crate and `fancy-regex` do,
    /// by their opening parentheses.
    #[must_use]
    pub fn names(&self) -> &[Option<String>] {
        &self.code.names
    }
}

impl Code {
    /// `pattern` compiled with `options` and then to machine code; `None` when either fails.
    fn compile(pattern: &str, options: u32) -> Option<Self> {
        let (mut error, mut offset) = (0, 0);
        // SAFETY: the pattern's bytes with their length; null context means defaults.
        let raw = unsafe {
            pcre2_compile_8(
                pattern.as_ptr(),
                pattern.len(),
                options,
                &raw mut error,
                &raw mut offset,
                std::ptr::null_mut(),
            )
        };
        let mut code = Self {
            raw: NonNull::new(raw)?,
            names: Vec::new(),
        };
        // SAFETY: a live compiled pattern.
        if unsafe { pcre2_jit_compile_8(code.raw.as_ptr(), PCRE2_JIT_COMPLETE) } != 0 {
            return None;
        }
        code.names = code.read_names()?;
        Some(code)
    }

    /// One of `pcre2_pattern_info`'s numbers.
    fn info(&self, what: u32) -> Option<u32> {
        let mut value: u32 = 0;
        // SAFETY: these items are `uint32_t`s, written to `value`.
        let rc = unsafe { pcre2_pattern_info_8(self.raw.as_ptr(), what, (&raw mut value).cast()) };
        (rc == 0).then_some(value)
    }

    /// Group names by number, from PCRE2's name table: entries of `NAMEENTRYSIZE` bytes,
    /// each the group's number (two bytes, most significant first) and its name, ended by
    /// a zero byte.
    fn read_names(&self) -> Option<Vec<Option<String>>> {
        let groups = usize::try_from(self.info(PCRE2_INFO_CAPTURECOUNT)?).ok()?;
        let count = usize::try_from(self.info(PCRE2_INFO_NAMECOUNT)?).ok()?;
        let size = usize::try_from(self.info(PCRE2_INFO_NAMEENTRYSIZE)?).ok()?;
        let mut names = vec![None; groups + 1];
        if count == 0 {
            return Some(names);
        }
        let mut table: *const u8 = std::ptr::null();
        // SAFETY: NAMETABLE is a pointer into the compiled pattern, written to `table`.
        let rc = unsafe {
            pcre2_pattern_info_8(
                self.raw.as_ptr(),
                PCRE2_INFO_NAMETABLE,
                (&raw mut table).cast(),
            )
        };
        if rc != 0 || table.is_null() {
            return None;
        }
        // SAFETY: the table is `count` entries of `size` bytes, living as long as the code.
        let table = unsafe { std::slice::from_raw_parts(table, count * size) };
        for entry in table.chunks_exact(size) {
            let number = usize::from(u16::from_be_bytes([entry[0], entry[1]]));
            let name = entry[2..].split(|&b| b == 0).next()?;
            *names.get_mut(number)? = Some(String::from_utf8(name.to_vec()).ok()?);
        }
        Some(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_patterns_read_alike_are_taken() {
        assert!(Jit::new(r"^(?i)failed (?P<user>\S+) from \d+$").is_some());
        assert!(Jit::new(r"(?x) a b").is_none());
        assert!(Jit::new(r"\p{Lu}+").is_none());
        assert!(Jit::new("ü").is_none());
        assert!(Jit::new(r"a\vb").is_none());
        assert!(Jit::new(r"a\hb").is_none());
        assert!(Jit::new(r"(?R)a$").is_none());
        assert!(Jit::new(r"(?P<e>a*)*b").is_none());
        assert!(Jit::new(r"(?:x|(?P<e>a)?)+b").is_none());
        assert!(Jit::new(r"(?P<e>a+)*b(?:c?)*").is_some());
        // Conditionals and look-arounds, in the spelling `pattern::translate` gives them.
        assert!(Jit::new(r"(?P<a>x)?(?(<a>)y|z)(?! from )").is_some());
        assert!(Jit::serves("Failed password for root"));
        assert!(!Jit::serves("Failed password for jürgen"));
        assert!(!Jit::serves("two\nlines"));
    }

    #[test]
    fn a_search_past_the_limit_is_an_error_not_a_hang() {
        // Two ways to match each `a`: 2^40 paths before failing on the `X`.
        let jit = Jit::new(r"^(?:(?=a)a|a)+$").unwrap();
        let text = format!("{}X", "a".repeat(40));
        assert!(jit.search(&text, |_| ()).is_err());
        let found = jit.search("aaa", |l| l.get(0)).unwrap();
        assert_eq!(found, Some(Some((0, 3))));
    }

    #[test]
    fn groups_are_named_and_numbered_as_written() {
        let jit = Jit::new(r"^(?P<user>\S+) (\d+)(?: (?P<host>\S+))?(?P<rest>x)?$").unwrap();
        let names: Vec<Option<&str>> = jit.names().iter().map(Option::as_deref).collect();
        assert_eq!(
            names,
            [None, Some("user"), None, Some("host"), Some("rest")]
        );
        let spans = jit
            .search("root 22 example", |l| {
                (0..6).map(|i| l.get(i)).collect::<Vec<_>>()
            })
            .unwrap()
            .unwrap();
        assert_eq!(
            spans,
            [
                Some((0, 15)),
                Some((0, 4)),
                Some((5, 7)),
                Some((8, 15)),
                None,
                None
            ]
        );
        // A group that took part in one search and not in the next is unset again.
        let host = jit.search("root 22", |l| l.get(3)).unwrap().unwrap();
        assert_eq!(host, None);
        assert_eq!(jit.search("root", |l| l.get(0)).unwrap(), None);
    }

    #[test]
    fn clones_share_the_code_and_search_on_other_threads() {
        let jit = Jit::new(r"from (?P<host>\d+\.\d+)").unwrap();
        let texts = ["from 1.2", "x from 33.44 y", "nothing"];
        std::thread::scope(|scope| {
            for text in texts {
                let jit = jit.clone();
                scope.spawn(move || {
                    let host = jit.search(text, |l| l.get(1)).unwrap().flatten();
                    let expected = text.find("from ").map(|at| {
                        let start = at + 5;
                        (
                            start,
                            start + text[start..].find(' ').unwrap_or(text.len() - start),
                        )
                    });
                    assert_eq!(host, expected, "{text}");
                });
            }
        });
    }

    #[test]
    fn a_dot_takes_every_byte_of_a_one_line_text_as_python_does() {
        // Python's `.` refuses only `\n`, which a text served here never holds; a carriage
        // return is any other byte.
        let jit = Jit::new(r"^a(?P<rest>.+)$").unwrap();
        let rest = jit.search("a\rb\tc", |l| l.get(1)).unwrap().unwrap();
        assert_eq!(rest, Some((1, 5)));
        // `$` stops before a final `\n` only, as Python's does: not before a `\r`.
        let end = Jit::new(r"^(?P<all>a.)$").unwrap();
        assert_eq!(end.search("ab\r", |l| l.get(1)).unwrap(), None);
        assert_eq!(end.search("a\r", |l| l.get(1)).unwrap(), Some(Some((0, 2))));
        // An empty text is searched like any other.
        let empty = Jit::new(r"^(?P<none>x?)$").unwrap();
        assert_eq!(empty.search("", |l| l.get(1)).unwrap(), Some(Some((0, 0))));
    }
}
