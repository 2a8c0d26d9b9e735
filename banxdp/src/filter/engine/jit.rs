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
//! - every search is bounded by `(*LIMIT_MATCH)`: a text that reaches the bound goes to the
//!   exact engine, which has its own (linear time, or `BACKTRACK_LIMIT`).
//!
//! Both engines read regular expressions with Perl's leftmost-first priorities, so on these
//! texts they pick the same match and the same groups; `tests/tests/corpus.rs` checks that on
//! every line of fail2ban's corpus, for every pattern of every filter.

use std::cell::RefCell;

use fancy_regex::Expr;
use pcre2::bytes::{CaptureLocations, Regex, RegexBuilder};

/// The most match steps PCRE2 may take on one text before the exact engine takes over.
pub const MATCH_LIMIT: u32 = 100_000;

/// A pattern compiled by PCRE2, with the place its groups go, reused from text to text.
#[derive(Clone, Debug)]
pub struct Jit {
    regex: Regex,
    locations: RefCell<CaptureLocations>,
}

/// Whether PCRE2 reads `pattern` (`regex`-crate syntax, as `pattern::translate` writes it)
/// as the exact engines do, on ASCII texts.
fn portable(pattern: &str) -> bool {
    // `\p` classes fold case differently; `\v` is a vertical tab to the `regex` crate and
    // Python, any vertical space to PCRE2.
    if !pattern.is_ascii() || [r"\p", r"\P", r"\v"].iter().any(|e| pattern.contains(e)) {
        return false;
    }
    // Inline flag groups, `(?i)` or `(?i-s:`: PCRE2 reads `i`, `m` and `s` as `regex` does.
    let mut rest = pattern;
    while let Some(at) = rest.find("(?") {
        let flags: String = rest[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphabetic() || *c == '-')
            .collect();
        if flags.contains(['x', 'u', 'U']) && !flags.starts_with('P') {
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
        let regex = RegexBuilder::new()
            .jit_if_available(true)
            .build(&format!("(*LIMIT_MATCH={MATCH_LIMIT}){pattern}"))
            .ok()?;
        let locations = RefCell::new(regex.capture_locations());
        Some(Self { regex, locations })
    }

    /// Whether this engine gives the exact answer for `text`.
    #[must_use]
    pub fn serves(text: &str) -> bool {
        text.is_ascii() && memchr::memchr(b'\n', text.as_bytes()).is_none()
    }

    /// Searches `text` (which [`Jit::serves`]) and hands the groups of the first match to
    /// `read`; `Err` when the search reached [`MATCH_LIMIT`] (or PCRE2 failed otherwise).
    pub fn search<R>(
        &self,
        text: &str,
        read: impl FnOnce(&CaptureLocations) -> R,
    ) -> Result<Option<R>, pcre2::Error> {
        let mut locations = self.locations.borrow_mut();
        Ok(self
            .regex
            .captures_read(&mut locations, text.as_bytes())?
            .map(|_| read(&locations)))
    }

    /// Group names by number; PCRE2 numbers groups as the `regex` crate and `fancy-regex` do,
    /// by their opening parentheses.
    #[must_use]
    pub fn names(&self) -> &[Option<String>] {
        self.regex.capture_names()
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
}
