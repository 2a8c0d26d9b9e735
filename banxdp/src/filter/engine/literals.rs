//! Literal prefilters: for a pattern, a set of strings one of which every match must
//! contain. A line holding none of them cannot match, so most log lines are turned away by
//! one Aho-Corasick scan before any regular expression runs. The analysis is conservative:
//! where it cannot promise a string (a class, a case-insensitive part, an optional part),
//! it promises nothing, and the pattern is always tried.

use aho_corasick::{AhoCorasick, Input, MatchKind};
use fancy_regex::Expr;

/// Strings one of which every match of `pattern` (Rust syntax, as compiled) contains;
/// `None` when no such set is known.
#[must_use]
pub fn required(pattern: &str) -> Option<Vec<String>> {
    let tree = Expr::parse_tree(pattern).ok()?;
    let mut set = of(&tree.expr)?;
    set.sort();
    set.dedup();
    Some(set)
}

/// Every set [`required`] chooses among at the top of `pattern` (see [`concat_sets`]).
fn required_sets(pattern: &str) -> Vec<Vec<String>> {
    let Ok(tree) = Expr::parse_tree(pattern) else {
        return Vec::new();
    };
    match &tree.expr {
        Expr::Concat(children) => concat_sets(children),
        expr => of(expr).into_iter().collect(),
    }
}

/// The shortest string of a set: how selective the set is.
fn strength(set: &[String]) -> usize {
    set.iter().map(String::len).min().unwrap_or(0)
}

fn of(expr: &Expr) -> Option<Vec<String>> {
    match expr {
        Expr::Literal { val, casei: false } if !val.is_empty() => Some(vec![val.clone()]),
        Expr::Group(inner) => of(inner),
        Expr::AtomicGroup(inner) => of(inner),
        Expr::Repeat { child, lo, .. } if *lo >= 1 => of(child),
        Expr::Alt(branches) => union(branches.iter()),
        Expr::Conditional {
            true_branch,
            false_branch,
            ..
        } => union([true_branch.as_ref(), false_branch.as_ref()].into_iter()),
        Expr::Concat(children) => concat(children),
        _ => None,
    }
}

fn union<'e>(branches: impl Iterator<Item = &'e Expr>) -> Option<Vec<String>> {
    let mut all = Vec::new();
    for branch in branches {
        all.extend(of(branch)?);
    }
    (!all.is_empty()).then_some(all)
}

/// A sequence: the most selective of its sets ([`concat_sets`]; the first, of equals).
fn concat(children: &[Expr]) -> Option<Vec<String>> {
    concat_sets(children)
        .into_iter()
        .fold(None, |best: Option<Vec<String>>, set| match best {
            Some(b) if strength(&set) <= strength(&b) => Some(b),
            _ => Some(set),
        })
}

/// The sets a sequence's every match holds a string of: each run of adjacent literals (one
/// longer string), and each other part's own set.
fn concat_sets(children: &[Expr]) -> Vec<Vec<String>> {
    let mut sets = Vec::new();
    let mut run = String::new();
    for child in children {
        if let Some(text) = literal_text(child) {
            run.push_str(&text);
            continue;
        }
        if !run.is_empty() {
            sets.push(vec![std::mem::take(&mut run)]);
        }
        sets.extend(of(child));
    }
    if !run.is_empty() {
        sets.push(vec![run]);
    }
    sets
}

/// The exact text an expression always matches, when it is a plain literal (possibly
/// grouped).
fn literal_text(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Literal { val, casei: false } => Some(val.clone()),
        Expr::Group(inner) => literal_text(inner),
        Expr::Concat(children) => children.iter().map(literal_text).collect(),
        _ => None,
    }
}

/// Most prefixes a set may hold before it is given up (each step multiplies them).
const MOST_PREFIXES: usize = 32;

/// For a pattern anchored at the start of the text (`^`, without multi-line mode), the
/// strings one of which every match begins with; `None` when no such set is known (or the
/// pattern is not anchored). Where a part of the pattern can be spelled only a few ways (a
/// literal, an alternation of literals, a class of a few plain characters), the prefixes run
/// on through it; they stop at the first part that cannot.
#[must_use]
pub fn anchored_prefixes(pattern: &str) -> Option<Vec<String>> {
    let tree = Expr::parse_tree(pattern).ok()?;
    let Expr::Concat(children) = &tree.expr else {
        return None;
    };
    let (first, rest) = children.split_first()?;
    if !matches!(first, Expr::Assertion(fancy_regex::Assertion::StartText)) {
        return None;
    }
    let mut set = prefixes_of_sequence(rest)?;
    set.sort();
    set.dedup();
    (!set.iter().any(String::is_empty)).then_some(set)
}

/// The prefixes of a sequence of parts (see [`anchored_prefixes`]).
fn prefixes_of_sequence(parts: &[Expr]) -> Option<Vec<String>> {
    let mut set = vec![String::new()];
    for part in parts {
        if let Some(spellings) = spellings(part) {
            set = cross(&set, &spellings)?;
            continue;
        }
        return match prefixes(part) {
            Some(starts) => cross(&set, &starts),
            None => Some(set),
        };
    }
    Some(set)
}

/// Every way of writing `expr` when there are only a few: a literal, a class of a few plain
/// characters, an alternation or sequence of such.
fn spellings(expr: &Expr) -> Option<Vec<String>> {
    match expr {
        Expr::Literal { val, casei: false } => Some(vec![val.clone()]),
        Expr::Group(inner) => spellings(inner),
        Expr::Delegate {
            inner,
            casei: false,
        } => {
            let chars = inner.strip_prefix('[')?.strip_suffix(']')?;
            (!chars.is_empty() && chars.chars().all(|c| c.is_ascii_alphanumeric()))
                .then(|| chars.chars().map(String::from).collect())
        }
        Expr::Alt(branches) => {
            let mut all = Vec::new();
            for branch in branches {
                all.extend(spellings(branch)?);
            }
            (all.len() <= MOST_PREFIXES).then_some(all)
        }
        Expr::Concat(children) => children.iter().try_fold(vec![String::new()], |set, child| {
            cross(&set, &spellings(child)?)
        }),
        _ => None,
    }
}

/// The strings one of which every match of `expr` begins with, where it can be spelled in
/// more ways than [`spellings`] lists.
fn prefixes(expr: &Expr) -> Option<Vec<String>> {
    match expr {
        Expr::Group(inner) => prefixes(inner),
        Expr::Concat(children) => prefixes_of_sequence(children),
        Expr::Alt(branches) => {
            let mut all = Vec::new();
            for branch in branches {
                all.extend(spellings(branch).or_else(|| prefixes(branch))?);
            }
            (all.len() <= MOST_PREFIXES).then_some(all)
        }
        Expr::Repeat { child, lo, .. } if *lo >= 1 => spellings(child).or_else(|| prefixes(child)),
        _ => None,
    }
}

/// Every string of `heads` followed by every string of `tails`, if not too many.
fn cross(heads: &[String], tails: &[String]) -> Option<Vec<String>> {
    if heads.len() * tails.len() > MOST_PREFIXES {
        return None;
    }
    Some(
        heads
            .iter()
            .flat_map(|h| tails.iter().map(move |t| format!("{h}{t}")))
            .collect(),
    )
}

/// Which of several patterns anchored at the start of the text may match a text, by the
/// strings each must begin with ([`anchored_prefixes`]): found from the text's first byte,
/// with no scan.
#[derive(Clone, Debug)]
pub struct Anchored {
    /// The prefixes by their first byte.
    by_first_byte: Vec<Vec<Prefix>>,
    /// For each pattern, strings one of which its every match contains ([`required`]), where
    /// its prefixes do not already hold one: a text that starts right may still lack them
    /// (`pam_unix(sshd:session)` for `pam_[a-z]+\(sshd:auth\)`).
    inner: Vec<Option<Vec<Box<[u8]>>>>,
}

/// A prefix of a pattern, its first eight bytes kept as a number to compare with the text's
/// in one step: most texts differ from most prefixes there.
#[derive(Clone, Debug)]
struct Prefix {
    /// The first (up to) eight bytes, little-endian, and the mask of those it has.
    head: u64,
    mask: u64,
    /// The bytes after the eighth.
    rest: Box<[u8]>,
    len: usize,
    pattern: usize,
}

impl Prefix {
    fn new(prefix: &str, pattern: usize) -> Self {
        let bytes = prefix.as_bytes();
        let n = bytes.len().min(8);
        Self {
            head: head(bytes),
            mask: if n == 8 { u64::MAX } else { (1 << (8 * n)) - 1 },
            rest: bytes[n..].into(),
            len: bytes.len(),
            pattern,
        }
    }

    /// Whether `text`, whose [`head`] is `first`, starts with the prefix.
    fn starts(&self, text: &[u8], first: u64) -> bool {
        first & self.mask == self.head
            && text.len() >= self.len
            && (self.rest.is_empty() || super::ascii::same_bytes(&text[8..self.len], &self.rest))
    }
}

/// Whether `needle` (not empty) occurs in `text`: found by its first byte, then compared. The
/// texts are short (a line's content), where setting up a vectorised search costs more.
fn contains(text: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let mut at = 0;
    while let Some(found) = memchr::memchr(first, &text[at..]) {
        let start = at + found + 1;
        if text
            .get(start..start + rest.len())
            .is_some_and(|tail| super::ascii::same_bytes(tail, rest))
        {
            return true;
        }
        at = start;
    }
    false
}

/// The shortest strings [`Anchored`] looks for beyond a pattern's prefixes.
const INNER_LEAST: usize = 8;

/// The first (up to) eight bytes of `text` as a little-endian number, zeros after its end.
fn head(text: &[u8]) -> u64 {
    if let Some(word) = text.first_chunk::<8>() {
        return u64::from_le_bytes(*word);
    }
    text.iter()
        .rev()
        .fold(0, |word, &byte| (word << 8) | u64::from(byte))
}

impl Anchored {
    /// For the patterns (Rust syntax, as compiled), when every one is anchored with known
    /// prefixes and there are at most [`MASKED`] of them; else `None`.
    #[must_use]
    pub fn new<'p>(patterns: impl Iterator<Item = &'p str>) -> Option<Self> {
        let mut by_first_byte = vec![Vec::new(); 256];
        let mut inner = Vec::new();
        for (index, pattern) in patterns.enumerate() {
            if index >= MASKED {
                return None;
            }
            let prefixes = anchored_prefixes(pattern)?;
            for prefix in &prefixes {
                let first = usize::from(*prefix.as_bytes().first()?);
                by_first_byte[first].push(Prefix::new(prefix, index));
            }
            // Strings every prefix holds one of tell nothing the prefixes do not; of the
            // others, the most selective set, if it is selective enough to be worth a look
            // (short strings, ` from `, are in most lines that start right).
            let told = |set: &[String]| {
                prefixes
                    .iter()
                    .all(|p| set.iter().any(|s| p.contains(s.as_str())))
            };
            inner.push(
                required_sets(pattern)
                    .into_iter()
                    .filter(|set| !told(set) && strength(set) >= INNER_LEAST)
                    .max_by_key(|set| strength(set))
                    .map(|set| set.into_iter().map(|s| s.into_bytes().into()).collect()),
            );
        }
        Some(Self {
            by_first_byte,
            inner,
        })
    }

    /// The patterns that may match `text` (a bit mask, see [`has`]).
    #[must_use]
    pub fn candidates(&self, text: &str) -> u128 {
        let text = text.as_bytes();
        let Some(&first) = text.first() else {
            return 0;
        };
        let word = head(text);
        self.by_first_byte[usize::from(first)]
            .iter()
            .filter(|prefix| {
                prefix.starts(text, word)
                    && self.inner[prefix.pattern]
                        .as_ref()
                        .is_none_or(|set| set.iter().any(|s| contains(text, s)))
            })
            .fold(0, |mask, prefix| mask | bit(prefix.pattern))
    }
}

/// Which of several patterns may match a text, by their required strings.
///
/// One automaton, leftmost-first (so that the crate can use its vectorised search), finds
/// where the next string starts; every string that starts there is then compared in place.
/// Each search goes on from the place after, so every place where a string starts is visited
/// and every string present is found, at the cost of one search per string present.
#[derive(Clone, Debug)]
pub struct Prefilter {
    any: Option<AhoCorasick>,
    /// The same strings on the vectorised searcher alone, without the automaton's layers
    /// around it, where it takes them: each string's start costs one call of it.
    packed: Option<aho_corasick::packed::Searcher>,
    /// The strings, and for each the pattern it belongs to.
    strings: Vec<String>,
    owner: Vec<usize>,
    /// The strings by their first byte.
    by_first_byte: Vec<Vec<usize>>,
    /// The patterns that have strings.
    with_strings: u128,
    /// Patterns without required strings: always candidates.
    always: u128,
    count: usize,
}

/// Patterns past this many are always candidates (a bit mask holds the rest).
pub const MASKED: usize = 128;

impl Prefilter {
    /// A prefilter for the patterns (Rust syntax, as compiled).
    #[must_use]
    pub fn new<'p>(patterns: impl Iterator<Item = &'p str>) -> Self {
        let mut strings = Vec::new();
        let mut owner = Vec::new();
        let mut always = 0_u128;
        let mut count = 0;
        for (index, pattern) in patterns.enumerate() {
            count += 1;
            match required(pattern).filter(|_| index < MASKED) {
                Some(set) => {
                    owner.extend(std::iter::repeat_n(index, set.len()));
                    strings.extend(set);
                }
                None => always |= bit(index),
            }
        }
        let mut by_first_byte = vec![Vec::new(); 256];
        for (index, string) in strings.iter().enumerate() {
            if let Some(&first) = string.as_bytes().first() {
                by_first_byte[usize::from(first)].push(index);
            }
        }
        let with_strings = owner.iter().fold(0, |mask, &pattern| mask | bit(pattern));
        let any = (!strings.is_empty())
            .then(|| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(&strings)
                    .ok()
            })
            .flatten();
        if any.is_none() {
            always = u128::MAX;
        }
        let packed = any
            .as_ref()
            .and_then(|_| aho_corasick::packed::Searcher::new(strings.iter()));
        Self {
            any,
            packed,
            strings,
            owner,
            by_first_byte,
            with_strings,
            always,
            count,
        }
    }

    /// The patterns that may match `text`, as a bit mask (bit `i` for pattern `i`; patterns
    /// from [`MASKED`] on are always in).
    #[must_use]
    pub fn candidates(&self, text: &str) -> u128 {
        let mut mask = self.always;
        let all = mask | self.with_strings;
        self.each_string(text, |_, string| {
            mask |= bit(self.owner[string]);
            mask != all
        });
        mask
    }

    /// Every string present in `text`, as (start, end, pattern) in `hits`, which is cleared
    /// first; and whether any pattern may match `text` (as [`Prefilter::any`]). One scan
    /// serves both the question whether to go on with a line, and, through
    /// [`Prefilter::candidates_within`], which patterns may match a part of it.
    pub fn find_all(&self, text: &str, hits: &mut Vec<(usize, usize, usize)>) -> bool {
        hits.clear();
        self.each_string(text, |start, string| {
            let end = start + self.strings[string].len();
            hits.push((start, end, self.owner[string]));
            true
        });
        self.may_always() || !hits.is_empty()
    }

    /// The patterns that may match the part `start..end` of a text whose strings
    /// [`Prefilter::find_all`] found: [`Prefilter::candidates`] of that part.
    #[must_use]
    pub fn candidates_within(
        &self,
        hits: &[(usize, usize, usize)],
        (start, end): (usize, usize),
    ) -> u128 {
        hits.iter()
            .filter(|(s, e, _)| *s >= start && *e <= end)
            .fold(self.always, |mask, (_, _, pattern)| mask | bit(*pattern))
    }

    /// Calls `found(start, string)` for every string present in `text`, in the order of
    /// their starts, while it returns true.
    fn each_string(&self, text: &str, mut found: impl FnMut(usize, usize) -> bool) {
        let Some(scanner) = &self.any else {
            return;
        };
        let bytes = text.as_bytes();
        let mut from = 0;
        while from < bytes.len() {
            let next = match &self.packed {
                Some(packed) => packed.find_in(bytes, aho_corasick::Span::from(from..bytes.len())),
                None => scanner.find(Input::new(text).span(from..bytes.len())),
            };
            let Some(next) = next else {
                return;
            };
            let at = next.start();
            for &index in &self.by_first_byte[usize::from(bytes[at])] {
                if bytes[at..].starts_with(self.strings[index].as_bytes()) && !found(at, index) {
                    return;
                }
            }
            from = at + 1;
        }
    }

    /// Whether some pattern is a candidate whatever the text.
    fn may_always(&self) -> bool {
        self.count > 0 && (self.always != 0 || self.count > MASKED)
    }

    /// Whether any pattern may match `text`.
    #[must_use]
    pub fn any(&self, text: &str) -> bool {
        if self.count == 0 {
            return false;
        }
        if self.may_always() {
            return true;
        }
        self.any
            .as_ref()
            .is_none_or(|scanner| scanner.is_match(text))
    }
}

/// The bit of pattern `index` in a candidate mask.
#[must_use]
pub fn bit(index: usize) -> u128 {
    if index < MASKED { 1 << index } else { 0 }
}

/// The patterns in `mask`, of `count`, in order (those from [`MASKED`] on always).
pub fn members(mask: u128, count: usize) -> impl Iterator<Item = usize> {
    let mut bits = if count >= MASKED {
        mask
    } else {
        mask & ((1 << count) - 1)
    };
    std::iter::from_fn(move || {
        (bits != 0).then(|| {
            let index = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            index
        })
    })
    .chain(MASKED..count.max(MASKED))
}

/// Whether pattern `index` is in `mask`.
#[must_use]
pub fn has(mask: u128, index: usize) -> bool {
    index >= MASKED || mask & (1 << index) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::generated;

    fn req(p: &str) -> Option<Vec<String>> {
        required(p)
    }

    #[test]
    fn sequences_give_their_longest_run_and_alternations_their_union() {
        assert_eq!(
            req(r"^Failed \S+ for (?P<user>\S+) from x"),
            Some(vec!["Failed ".into()])
        );
        assert_eq!(
            req(r"^[iI](?:llegal|nvalid) user from (?P<u>.*)$"),
            Some(vec![" user from ".into()])
        );
        assert_eq!(
            req(r"^(?:authentication|auth) failure"),
            Some(vec![" failure".into()])
        );
        assert_eq!(
            req(r"(?:GET|POST) x"),
            Some(vec!["GET".into(), "POST".into()])
        );
    }

    #[test]
    fn what_a_match_may_lack_is_not_required() {
        assert_eq!(req(r"(?:Failed )?\d"), None);
        assert_eq!(req(r"(?i)failed"), None);
        assert_eq!(req(r"a|\d+"), None);
        assert_eq!(req(r"[ab]+"), None);
        // Look-arounds and back-references promise nothing; the rest still counts.
        assert_eq!(
            req(r"(?P<c>\d+) denied (?!x)(?P=c)"),
            Some(vec![" denied ".into()])
        );
    }

    #[test]
    fn candidates_mark_the_patterns_whose_strings_are_present() {
        let patterns = [r"^Failed \S+", r"Invalid user", r"\d+"];
        let filter = Prefilter::new(patterns.iter().copied());
        assert_eq!(filter.candidates("Failed password"), 0b101);
        assert_eq!(filter.candidates("Invalid user x Failed y"), 0b111);
        assert!(filter.any("nothing"), "the third pattern has no strings");
        let strict = Prefilter::new(patterns[..2].iter().copied());
        assert!(!strict.any("Accepted publickey"));
        assert!(strict.any("x Invalid user"));
    }

    #[test]
    fn anchored_prefixes_are_spelled_out_or_not_known() {
        let prefixes = |p| anchored_prefixes(p);
        assert_eq!(
            prefixes(r"^[iI](?:llegal|nvalid) user (?P<user>.*?) from"),
            Some(vec![
                "Illegal user ".into(),
                "Invalid user ".into(),
                "illegal user ".into(),
                "invalid user ".into(),
            ])
        );
        assert_eq!(prefixes(r"^pam_[a-z]+\(sshd"), Some(vec!["pam_".into()]));
        assert_eq!(prefixes(r"^(?:ab)+c"), Some(vec!["ab".into()]));
        // Not anchored, anchored on lines, an empty start, a class or case that is not
        // spelled out: nothing is known.
        for pattern in [
            r"x^y",
            r"(?m)^a",
            r"^(?:a|)b",
            r"^a*b",
            r"^\S+ a",
            r"^(?i)abc",
            r"^[a-z]b",
        ] {
            assert_eq!(prefixes(pattern), None, "{pattern}");
        }
    }

    #[test]
    fn anchored_candidates_include_every_pattern_that_matches() {
        let patterns = [
            r"^[aA]uthentication (?:failure|error|failed) for (?P<user>.*) from \S+",
            r"^[iI](?:llegal|nvalid) user (?P<user>.*?) from",
            r"^(?P<nofail>(?P<f>Connection (?:closed|reset)|Disconnected)) (?:by|from)",
            r"^(?P<nofail>pam_[a-z]+\(sshd:auth\):)",
            r"^Failed (?:(?P<nofail>publickey)|\S+) for",
            r"^(?:ab)+c",
            r"^x(?:y|yz)z",
        ];
        let anchored = Anchored::new(patterns.iter().copied()).unwrap();
        // A text that starts as a pattern does, without the string its matches hold further
        // on, is no candidate.
        assert!(has(anchored.candidates("pam_unix(sshd:auth): x"), 3));
        assert!(!has(anchored.candidates("pam_unix(sshd:session): x"), 3));
        let compiled: Vec<fancy_regex::Regex> = patterns
            .iter()
            .map(|p| fancy_regex::Regex::new(p).unwrap())
            .collect();
        let pieces: [&[&str]; 3] = [
            &[
                "Authentication ",
                "authentication ",
                "Invalid user ",
                "illegal user ",
                "Connection closed ",
                "Connection reset ",
                "Disconnected ",
                "pam_unix(sshd:auth):",
                "pam_unix(sshd:session):",
                "pam_x(sshd:auth)",
                "Failed ",
                "Failed publickey ",
                "ab",
                "abab",
                "x",
                "xy",
                "",
                " ",
            ],
            &[
                "failure for ",
                "from ",
                "by ",
                "for ",
                "c",
                "z",
                "yz",
                "zz",
                "",
            ],
            &["a from b", "root", "from x", "", "c"],
        ];
        let (mut matched, mut lines) = (0, 0);
        for line in generated::lines(&pieces, 0x1234_5678_9abc_def1).take(20_000) {
            let mask = anchored.candidates(&line);
            for (index, re) in compiled.iter().enumerate() {
                if re.is_match(&line).unwrap() {
                    matched += 1;
                    assert!(has(mask, index), "{} on {line:?}", patterns[index]);
                }
            }
            lines += 1;
        }
        assert!(matched > 2_000, "{matched} matches in {lines} lines");
    }

    #[test]
    fn members_are_the_patterns_in_the_mask_in_order() {
        let mut seed: u128 = 0x9e37_79b9_7f4a_7c15_0123_4567_89ab_cdef;
        for count in [0, 1, 5, 64, 127, 128, 129, 200] {
            for _ in 0..50 {
                seed = seed.wrapping_mul(0x2545_f491_4f6c_dd1d).wrapping_add(1);
                let mask = seed ^ (seed >> 37);
                let want: Vec<usize> = (0..count).filter(|&i| has(mask, i)).collect();
                assert_eq!(members(mask, count).collect::<Vec<_>>(), want, "{count}");
            }
        }
    }

    #[test]
    fn patterns_past_the_mask_are_always_candidates() {
        let mut patterns: Vec<String> = (0..MASKED).map(|i| format!("word{i} ")).collect();
        patterns.push("late".into());
        let filter = Prefilter::new(patterns.iter().map(String::as_str));
        assert!(filter.any("nothing of theirs"));
        assert!(filter.find_all("nothing of theirs", &mut Vec::new()));
        assert!(has(filter.candidates("nothing"), MASKED));
        assert!(!has(filter.candidates("nothing"), 0));
    }

    #[test]
    fn strings_inside_overlapping_or_sharing_a_start_are_all_found() {
        // Strings that share a start, hold one another, or overlap at their ends; each
        // pattern's bit must be set exactly when one of its strings is in the text.
        let patterns = [
            "^Failed publickey for invalid user",
            "^Failed ",
            "nvalid",
            "(?:user x|ab)",
            "bc",
            "abcd",
            "cab",
        ];
        let filter = Prefilter::new(patterns.iter().copied());
        let strings: Vec<Vec<String>> = patterns.iter().map(|p| required(p).unwrap()).collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let pieces = [
            "Failed ",
            "publickey ",
            "for ",
            "invalid ",
            "user ",
            "x",
            "a",
            "b",
            "c",
            "d",
            " ",
        ];
        for _ in 0..5000 {
            let mut text = String::new();
            for _ in 0..8 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push_str(pieces[usize::try_from(seed % 11).unwrap()]);
            }
            let want = strings.iter().enumerate().fold(0, |mask, (i, set)| {
                if set.iter().any(|s| text.contains(s.as_str())) {
                    mask | bit(i)
                } else {
                    mask
                }
            });
            assert_eq!(filter.candidates(&text), want, "{text:?}");
            // The strings found once in the whole text give each part's candidates.
            let mut hits = Vec::new();
            assert_eq!(filter.find_all(&text, &mut hits), want != 0);
            let start = usize::try_from(seed % 7).unwrap().min(text.len());
            let end = text.len()
                - usize::try_from((seed >> 8) % 7)
                    .unwrap()
                    .min(text.len() - start);
            assert_eq!(
                filter.candidates_within(&hits, (start, end)),
                filter.candidates(&text[start..end]),
                "{text:?} {start}..{end}"
            );
        }
        assert_eq!(
            filter.candidates("Failed publickey for invalid user x"),
            0b1111
        );
    }
}
