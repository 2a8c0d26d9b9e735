//! fail2ban's regular expressions, compiled for Rust: Python `re` syntax translated, fail2ban's
//! tags (`<HOST>`, `<ADDR>`, `<F-USER>...</F-USER>`, ...) expanded, and each pattern given to
//! the `regex` crate (linear time) when it can take it, or to `fancy-regex` (back-references,
//! look-around, conditionals) with a backtracking limit, so that no pattern can hang the
//! daemon. Those are the exact engines, whose answer defines a pattern's; where the pattern
//! allows, PCRE2's JIT answers for them on ASCII lines (see `engine::jit`). Pure: patterns
//! in, compiled patterns out.

use std::{collections::HashMap, fmt::Write as _};

use super::jit::Jit;

/// Back-tracking steps a `fancy-regex` match may take before it gives up (and the line counts
/// as not matched, with an error logged by the caller).
pub const BACKTRACK_LIMIT: usize = 200_000;

/// IPv4 as fail2ban finds it (validated afterwards by parsing).
const IP4: &str = r"(?:\d{1,3}\.){3}\d{1,3}";
/// IPv6 as fail2ban finds it. fail2ban ends it with `(?:hex|(?<=:):)`; since every repetition
/// before it ends in `:`, the look-behind always holds, and `:` alone is the same pattern
/// without needing a backtracking engine.
const IP6: &str = r"(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:)";

fn ip4_group() -> String {
    format!(r"(?:::f{{4,6}}:)?(?P<ip4>{IP4})")
}
fn ip6_group() -> String {
    format!(r"(?P<ip6>{IP6})")
}
const DNS_GROUP: &str = r"(?P<dns>[\w\-.^_]*\w)";

fn addr_group() -> String {
    format!(r"\[?(?:{}|{})\]?", ip4_group(), ip6_group())
}

/// The regular expression for a fail2ban tag, or `None` when the tag is not one.
fn tag(name: &str, usedns: &str) -> Option<String> {
    Some(match name {
        "HOST" => {
            if usedns == "no" {
                addr_group()
            } else {
                format!("(?:{}|{DNS_GROUP})", addr_group())
            }
        }
        "IP4" | "F-IP4/" => ip4_group(),
        "IP6" | "F-IP6/" => ip6_group(),
        "ADDR" | "F-ADDR/" => addr_group(),
        "CIDR" | "F-CIDR/" => r"(?P<cidr>\d+)".into(),
        "SUBNET" | "F-SUBNET/" => {
            format!(
                r"\[?(?:{}|{})(?:/(?P<cidr>\d+))?\]?",
                ip4_group(),
                ip6_group()
            )
        }
        "DNS" | "F-DNS/" => DNS_GROUP.into(),
        "F-ID/" => r"(?P<fid>\S+)".into(),
        "F-PORT/" => r"(?P<fport>\w+)".into(),
        _ => return None,
    })
}

/// Expands fail2ban's tags in `pattern`: address tags, `<SKIPLINES>`, and `<F-NAME>` ...
/// `</F-NAME>` pairs into named groups (`F-ID` is `fid`, `F-PORT` is `fport`, others
/// lower-cased). Anything else in angle brackets is left as written.
#[must_use]
pub fn expand_tags(pattern: &str, usedns: &str) -> String {
    let mut out = String::with_capacity(pattern.len() * 2);
    let mut open: HashMap<String, bool> = HashMap::new();
    let mut skiplines = 0;
    let mut rest = pattern;
    while let Some(at) = rest.find('<') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        // A tag is `<`, an optional `/`, word characters or `-`, an optional `/`, `>`.
        let body_len = rest[1..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '/'))
            .map_or(rest.len() - 1, |n| n);
        let is_tag = rest.as_bytes().get(body_len + 1) == Some(&b'>') && body_len > 0;
        if !is_tag {
            out.push('<');
            rest = &rest[1..];
            continue;
        }
        let whole = &rest[..body_len + 2];
        let name = &rest[1..=body_len];
        rest = &rest[body_len + 2..];
        if name == "SKIPLINES" {
            let _ = write!(out, r"\n(?P<skiplines{skiplines}>(?:(?:.*\n)*?))");
            skiplines += 1;
            continue;
        }
        if let Some(expansion) = tag(name, usedns) {
            out.push_str(&expansion);
            continue;
        }
        let custom = name
            .strip_prefix("F-")
            .map(|n| (false, n))
            .or_else(|| name.strip_prefix("/F-").map(|n| (true, n)))
            .filter(|(_, n)| {
                !n.is_empty()
                    && n.chars().all(|c| {
                        c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-'
                    })
            });
        match custom {
            Some((true, n)) if open.get(n).copied().unwrap_or(false) => out.push(')'),
            Some((false, n)) => {
                open.insert(n.to_string(), true);
                let group = match n.to_lowercase().as_str() {
                    "id" => "fid".to_string(),
                    "port" => "fport".to_string(),
                    other => other.replace('-', "_"),
                };
                let _ = write!(out, "(?P<{group}>");
            }
            _ => out.push_str(whole),
        }
    }
    out.push_str(rest);
    out
}

/// Which engine a translated pattern needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The `regex` crate: linear time.
    Linear,
    /// `fancy-regex`: back-references, look-around or conditionals.
    Backtracking,
}

/// Translates Python `re` syntax to what the Rust engines read, and says which engine the
/// result needs. `(?(name)yes|no)` is written `(?(<name>)yes|no)` for fancy-regex (which reads
/// a bare name as a pattern to look ahead for); `{,n}` becomes `{0,n}`; `\Z` becomes `\z`.
#[must_use]
pub fn translate(pattern: &str) -> (String, Engine) {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut engine = Engine::Linear;
    let bytes = pattern.as_bytes();
    let mut i = 0;
    let mut in_class = false;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\\' && i + 1 < bytes.len() {
            let next = bytes[i + 1];
            match next {
                b'Z' if !in_class => out.push_str(r"\z"),
                // Literal in Python; word-boundary assertions in Rust.
                b'<' | b'>' => out.push(char::from(next)),
                b'1'..=b'9' if !in_class => {
                    engine = Engine::Backtracking;
                    out.push('\\');
                    out.push(char::from(next));
                }
                _ => {
                    // Keep the escape and the character after it (which may be multi-byte).
                    let ch = pattern[i + 1..].chars().next().expect("in bounds");
                    out.push('\\');
                    out.push(ch);
                    i += 1 + ch.len_utf8();
                    continue;
                }
            }
            i += 2;
            continue;
        }
        if in_class {
            match c {
                b']' => in_class = false,
                // Literal in Python; a nested class or a set operator in Rust.
                b'[' => {
                    out.push_str(r"\[");
                    i += 1;
                    continue;
                }
                b'&' | b'~' if bytes.get(i + 1) == Some(&c) => {
                    out.push('\\');
                }
                _ => {}
            }
            let ch = pattern[i..].chars().next().expect("in bounds");
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        match c {
            b'[' => {
                in_class = true;
                out.push('[');
                i += 1;
                // `]` right after `[` or `[^` is a literal.
                if bytes.get(i) == Some(&b'^') {
                    out.push('^');
                    i += 1;
                }
                if bytes.get(i) == Some(&b']') {
                    out.push_str(r"\]");
                    i += 1;
                }
                continue;
            }
            b'(' if pattern[i..].starts_with("(?(") => {
                engine = Engine::Backtracking;
                i = conditional(pattern, i, &mut out);
                continue;
            }
            b'(' if pattern[i..].starts_with("(?=")
                || pattern[i..].starts_with("(?!")
                || pattern[i..].starts_with("(?<=")
                || pattern[i..].starts_with("(?<!")
                || pattern[i..].starts_with("(?P=") =>
            {
                engine = Engine::Backtracking;
                out.push('(');
                i += 1;
                continue;
            }
            b'{' if pattern[i..].starts_with("{,") => {
                out.push_str("{0,");
                i += 2;
                continue;
            }
            _ => {}
        }
        let ch = pattern[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    (out, engine)
}

/// Writes the Python conditional `(?(name)` starting at `at` in fancy-regex's spelling
/// (`(?(<name>)`, or `(?(1)` for a group number); returns where reading goes on.
fn conditional(pattern: &str, at: usize, out: &mut String) -> usize {
    let start = at + 3;
    if let Some(end) = pattern[start..].find(')').map(|p| start + p) {
        let cond = &pattern[start..end];
        if !cond.is_empty() && cond.chars().all(|c| c.is_alphanumeric() || c == '_') {
            if cond.chars().all(|c| c.is_ascii_digit()) {
                let _ = write!(out, "(?({cond})");
            } else {
                let _ = write!(out, "(?(<{cond}>)");
            }
            return end + 1;
        }
    }
    out.push_str("(?(");
    start
}

/// A compiled pattern: the exact engine, and the strategies that give its answers faster
/// where they can.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The pattern as compiled (Rust syntax).
    translated: String,
    exact: Exact,
    /// PCRE2's JIT, where it reads the pattern as the exact engine does (for ASCII texts).
    jit: Option<Jit>,
    /// The name of each group by number.
    names: Vec<Option<Name>>,
    /// Room for a linear search's groups, kept from search to search (so that a search
    /// allocates nothing); a scanner is used by one thread at a time.
    locations: std::cell::RefCell<Option<regex::CaptureLocations>>,
    /// For a linear pattern that ends in the rest of the text (`(?P<content>.+)$`), its
    /// head, searched instead (see [`super::rest`]).
    rest: Option<super::rest::Rest>,
}

/// The engine that runs a pattern: linear time where it can.
#[derive(Clone, Debug)]
enum Exact {
    Linear(regex::Regex),
    Backtracking(fancy_regex::Regex),
}

/// A pattern that does not compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{pattern}` does not compile: {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

/// A group's name. Names are interned: each distinct name is stored once for the life of the
/// process (they come from the configuration, so there are few), and copying one costs
/// nothing on the lines that match.
pub type Name = &'static str;

/// The one copy of `name`.
pub fn intern(name: &str) -> Name {
    static NAMES: std::sync::Mutex<std::collections::BTreeSet<Name>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut names = NAMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: Name = Box::leak(name.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// Whether `name` is the one copy [`intern`] keeps: every name a pattern gives is, and so is
/// every name of [`known`].
#[must_use]
pub fn is_interned(name: Name) -> bool {
    std::ptr::eq(intern(name), name)
}

/// The group names the engine itself reads, interned: since a pattern's names are interned
/// too, one is the other exactly when their addresses are equal, and comparing them is one
/// comparison, not a comparison of texts (see [`same`]).
#[derive(Debug)]
pub struct Known {
    pub mlfid: Name,
    pub nofail: Name,
    pub mlfgained: Name,
    pub mlfforget: Name,
    pub user: Name,
    pub cidr: Name,
    pub ip4: Name,
    pub ip6: Name,
    pub dns: Name,
    pub fid: Name,
}

/// See [`Known`].
#[must_use]
pub fn known() -> &'static Known {
    static KNOWN: std::sync::LazyLock<Known> = std::sync::LazyLock::new(|| Known {
        mlfid: intern("mlfid"),
        nofail: intern("nofail"),
        mlfgained: intern("mlfgained"),
        mlfforget: intern("mlfforget"),
        user: intern("user"),
        cidr: intern("cidr"),
        ip4: intern("ip4"),
        ip6: intern("ip6"),
        dns: intern("dns"),
        fid: intern("fid"),
    });
    &KNOWN
}

/// Whether two interned names are the same name: by their addresses.
#[must_use]
pub fn same(a: Name, b: Name) -> bool {
    debug_assert!(is_interned(a) && is_interned(b), "`{a}`, `{b}` interned");
    std::ptr::eq(a, b)
}

/// Where a match or a group lies in the text searched: start and end.
pub type Span = (usize, usize);

/// A field's value: most are short (addresses, user names, process ids) and are kept inline,
/// so that copying a failure's fields from line to line allocates nothing.
pub type Value = compact_str::CompactString;

/// A match: where it lies in the text searched, and its named groups that took part.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hit {
    pub start: usize,
    pub end: usize,
    pub groups: Vec<(Name, String)>,
}

impl Hit {
    /// The match at `span` in `text`, its groups copied out.
    pub(in crate::filter) fn new(text: &str, (start, end): Span, groups: &[(Name, Span)]) -> Self {
        Self {
            start,
            end,
            groups: groups
                .iter()
                .map(|(name, (s, e))| (*name, text[*s..*e].to_string()))
                .collect(),
        }
    }
}

impl Compiled {
    /// Compiles a fail2ban pattern (tags expanded, Python syntax translated).
    pub fn new(pattern: &str, usedns: &str) -> Result<Self, PatternError> {
        Self::with_lines(pattern, usedns, false)
    }

    /// As [`Compiled::new`]; `multiline` makes `^` and `$` match at every line of a
    /// multi-line buffer, as Python's `re.MULTILINE` does for fail2ban's `maxlines`.
    pub fn with_lines(pattern: &str, usedns: &str, multiline: bool) -> Result<Self, PatternError> {
        let (mut translated, engine) = translate(&expand_tags(pattern, usedns));
        if multiline {
            translated.insert_str(0, "(?m)");
        }
        let error = |reason: String| PatternError {
            pattern: pattern.to_string(),
            reason,
        };
        let exact = Exact::new(&translated, engine).map_err(error)?;
        let names = exact.names();
        // PCRE2 numbers and names groups as the exact engines do; checked all the same.
        let jit = Jit::new(&translated).filter(|jit| {
            jit.names()
                .iter()
                .map(|n| n.as_deref().map(intern))
                .eq(names.iter().copied())
        });
        let (locations, rest) = match &exact {
            Exact::Linear(re) => (
                Some(re.capture_locations()),
                super::rest::Rest::of(&translated, re.captures_len()),
            ),
            Exact::Backtracking(_) => (None, None),
        };
        Ok(Self {
            translated,
            exact,
            jit,
            names,
            locations: std::cell::RefCell::new(locations),
            rest,
        })
    }

    /// The first match in `text` (leftmost-first, as Python's `search`), `Err` when the
    /// backtracking limit was reached.
    pub fn search(&self, text: &str) -> Result<Option<Hit>, String> {
        let mut groups = Vec::new();
        let found = self.search_spans(text, &mut groups)?;
        Ok(found.map(|span| Hit::new(text, span, &groups)))
    }

    /// As [`Compiled::search`], without copying: the match's span, and in `groups` (emptied
    /// first) the span of each named group that took part.
    pub fn search_spans(
        &self,
        text: &str,
        groups: &mut Vec<(Name, Span)>,
    ) -> Result<Option<Span>, String> {
        groups.clear();
        if let Some(jit) = self.jit.as_ref().filter(|_| Jit::serves(text)) {
            let found = jit.search(text, |locations| {
                for (index, name) in self.names.iter().enumerate() {
                    if let (Some(name), Some(span)) = (name, locations.get(index)) {
                        groups.push((*name, span));
                    }
                }
                locations.get(0).expect("group 0 takes part")
            });
            // Past its match limit the exact engine decides.
            if let Ok(found) = found {
                return Ok(found);
            }
            groups.clear();
        }
        if let Some(found) = self
            .rest
            .as_ref()
            .and_then(|rest| rest.search(text, &self.names, groups))
        {
            return Ok(found);
        }
        self.search_spans_exact(text, groups)
    }

    /// As [`Compiled::search`], by the exact engine alone (what the faster strategies are
    /// checked against).
    pub fn search_exact(&self, text: &str) -> Result<Option<Hit>, String> {
        let mut groups = Vec::new();
        let found = self.search_spans_exact(text, &mut groups)?;
        Ok(found.map(|span| Hit::new(text, span, &groups)))
    }

    /// The exact engine's search; `groups` is empty.
    fn search_spans_exact(
        &self,
        text: &str,
        groups: &mut Vec<(Name, Span)>,
    ) -> Result<Option<Span>, String> {
        let mut read = |get: &dyn Fn(usize) -> Option<Span>| {
            for (index, name) in self.names.iter().enumerate() {
                if let (Some(name), Some(span)) = (name, get(index)) {
                    groups.push((*name, span));
                }
            }
            get(0).expect("group 0 takes part")
        };
        match &self.exact {
            Exact::Linear(re) => {
                let mut locations = self.locations.borrow_mut();
                let locations = locations.get_or_insert_with(|| re.capture_locations());
                Ok(re
                    .captures_read(locations, text)
                    .map(|_| read(&|i| locations.get(i))))
            }
            Exact::Backtracking(re) => re
                .captures(text)
                .map(|found| found.map(|caps| read(&|i| caps.get(i).map(|m| (m.start(), m.end())))))
                .map_err(|e| e.to_string()),
        }
    }

    /// The name of each group, by number.
    #[must_use]
    pub fn names(&self) -> &[Option<Name>] {
        &self.names
    }

    /// Whether PCRE2's JIT serves this pattern (on the texts `Jit::serves` takes).
    #[must_use]
    pub fn has_jit(&self) -> bool {
        self.jit.is_some()
    }

    /// The named groups of the first match in `text`; see [`Compiled::search`].
    pub fn captures(&self, text: &str) -> Result<Option<Vec<(Name, String)>>, String> {
        self.search(text).map(|hit| hit.map(|h| h.groups))
    }

    /// The pattern as compiled (Rust syntax).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.translated
    }

    /// Which engine runs it.
    #[must_use]
    pub fn engine(&self) -> Engine {
        match self.exact {
            Exact::Linear(_) => Engine::Linear,
            Exact::Backtracking(_) => Engine::Backtracking,
        }
    }
}

impl Exact {
    /// `pattern` (Rust syntax) compiled by the engine `translate` chose: the `regex` crate
    /// where it reads the pattern, else the backtracking engine.
    fn new(pattern: &str, engine: Engine) -> Result<Self, String> {
        match engine {
            Engine::Linear => regex::Regex::new(pattern).map(Exact::Linear).or_else(|e| {
                // Some Python syntax only the backtracking engine reads.
                fancy(pattern).map_err(|f| format!("{e}; {f}"))
            }),
            Engine::Backtracking => fancy(pattern),
        }
    }

    /// The name of each group, by number.
    fn names(&self) -> Vec<Option<Name>> {
        match self {
            Exact::Linear(re) => re.capture_names().map(|n| n.map(intern)).collect(),
            Exact::Backtracking(re) => re.capture_names().map(|n| n.map(intern)).collect(),
        }
    }
}

fn fancy(pattern: &str) -> Result<Exact, String> {
    fancy_regex::RegexBuilder::new(pattern)
        .backtrack_limit(BACKTRACK_LIMIT)
        .build()
        .map(Exact::Backtracking)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(pattern: &str, text: &str) -> Option<Vec<(Name, String)>> {
        Compiled::new(pattern, "yes")
            .unwrap()
            .captures(text)
            .unwrap()
    }

    fn get<'a>(found: &'a [(Name, String)], name: &str) -> Option<&'a str> {
        found
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn host_tags_capture_ipv4_ipv6_and_names() {
        let found = groups("from <HOST> port", "x from 198.51.100.7 port 22").unwrap();
        assert_eq!(get(&found, "ip4"), Some("198.51.100.7"));
        let found = groups("from <HOST> port", "x from 2001:db8::7 port 22").unwrap();
        assert_eq!(get(&found, "ip6"), Some("2001:db8::7"));
        let found = groups("from <HOST> port", "x from [2001:db8::7] port 22").unwrap();
        assert_eq!(get(&found, "ip6"), Some("2001:db8::7"));
        let found = groups("from <HOST> port", "x from ::ffff:198.51.100.7 port 22").unwrap();
        assert_eq!(get(&found, "ip4"), Some("198.51.100.7"));
        let found = groups("from <HOST> port", "x from mail.example.org port 22").unwrap();
        assert_eq!(get(&found, "dns"), Some("mail.example.org"));
        // usedns = no: names are not hosts.
        assert!(
            Compiled::new("from <HOST> port", "no")
                .unwrap()
                .captures("from mail.example.org port")
                .unwrap()
                .is_none()
        );
        let found = groups("net <SUBNET>$", "net 203.0.113.0/24").unwrap();
        assert_eq!(
            (get(&found, "ip4"), get(&found, "cidr")),
            (Some("203.0.113.0"), Some("24"))
        );
    }

    #[test]
    fn custom_tags_become_named_groups() {
        let found = groups(
            "user <F-USER>\\S+</F-USER> id <F-ID/> <F-ALT_USER>\\w+</F-ALT_USER>",
            "user bob id 42 x",
        )
        .unwrap();
        assert_eq!(get(&found, "user"), Some("bob"));
        assert_eq!(get(&found, "fid"), Some("42"));
        assert_eq!(get(&found, "alt_user"), Some("x"));
        // An unknown tag stays literal.
        assert!(groups("a <b> c", "a <b> c").is_some());
        assert_eq!(expand_tags("</F-NOPE>", "yes"), "</F-NOPE>");
    }

    #[test]
    fn python_syntax_is_translated_and_routed_to_the_right_engine() {
        assert_eq!(translate(r"a{,3}\Z").0, r"a{0,3}\z");
        assert_eq!(
            translate(r"(?P<a>x)?(?(a)y|z)"),
            ("(?P<a>x)?(?(<a>)y|z)".into(), Engine::Backtracking)
        );
        assert_eq!(translate(r"(?P<w>\w+) (?P=w)").1, Engine::Backtracking);
        assert_eq!(translate(r"^(?:(?! from ).)*$").1, Engine::Backtracking);
        assert_eq!(translate(r"^[]a]+\d$").0, r"^[\]a]+\d$");
        assert_eq!(translate(r"from [^[]*\[").0, r"from [^\[]*\[");
        assert_eq!(translate(r"[a&&b]").0, r"[a\&&b]");
        assert_eq!(translate(r"\<\S+@\S+\>").0, r"<\S+@\S+>");
        assert!(groups(r"^(?:\<\S+@\S+\> )*relay", "<a@b.c> relay").is_some());
        assert!(groups(r"^x [^[]*\[(?P<v>\d+)\]$", "x abc[42]").is_some());
        assert_eq!(
            translate(r"^Failed \S+ from (?P<ip4>\d+)").1,
            Engine::Linear
        );
        // Python's conditional: the group, not a pattern, decides.
        assert!(groups(r"(?P<a>x)?(?(a)y|z)", "xy").is_some());
        assert!(groups(r"^(?P<a>x)?(?(a)y|z)$", "z").is_some());
        assert!(groups(r"^(?P<a>x)?(?(a)y|z)$", "xz").is_none());
    }

    #[test]
    fn unicode_words_are_read_as_python_reads_them() {
        let re = Compiled::new(r"^(?P<a>\w+) from <HOST>$", "yes").unwrap();
        assert!(re.captures("bob from 192.0.2.1").unwrap().is_some());
        let found = re.captures("bøb from 192.0.2.1").unwrap().unwrap();
        assert_eq!(get(&found, "a"), Some("bøb"));
    }

    #[test]
    fn the_jit_and_the_exact_engines_agree_on_random_lines() {
        // Patterns with what tells engines apart: greedy and lazy repetition, alternation
        // order, optional and nested groups, empty matches, anchors, case, classes,
        // back-references, look-around, conditionals, and a last group taking the rest.
        let patterns = [
            r"^(?P<a>\w+?)(?P<b>\d*)(?P<c>.*)$",
            r"(?P<x>a|ab)(?P<y>c|bcd)(?P<z>d*)",
            r"(?i)(?P<u>user|us) (?P<h>\S+?)(?: port (?P<p>\d+))?\s*$",
            r"^(?:(?P<o>x)|(?P<t>xy))+?(?P<r>[^ ]*)",
            r"(?P<e>a*)*(?P<f>b?)",
            r"\b(?P<w>[A-Z][a-z]*)\b(?P<rest>.{0,3})",
            r"^(?P<k>[a-c])(?P=k)+(?P<tail>.*)",
            r"(?P<n>\d+)(?=\s|$)(?P<s>\s*)",
            r"(?<![0-9])(?P<v>\d{2,3})(?![0-9])",
            r"^(?P<inv>invalid )?(?P<who>(?(inv)\S+|[^ ]+ ?))(?P<end>from)?",
            r"(?P<q>\[[^\]]*\])|(?P<r2>\([^)]*\))",
            r"^<HOST> (?P<msg>.+)$",
            r"(?:(?P<g1>a)|b)+(?P<g2>\w?)",
            r"(?:a(?P<g3>b)?)+(?P<g4>[^a]*)",
            r"(?P<g5>a|ab)*?c(?P<g6>.*)",
        ];
        let alphabet: Vec<char> = "aAbBcxyz019 []()-.:_Ufrom".chars().collect();
        let mut next = crate::filter::generated::xorshift(0x2545_f491_4f6c_dd1d);
        let compiled: Vec<Compiled> = patterns
            .iter()
            .map(|p| Compiled::new(p, "yes").unwrap())
            .collect();
        let jit = compiled.iter().filter(|c| c.has_jit()).count();
        assert_eq!(jit, patterns.len() - 1, "all but `(a*)*` take the JIT");
        let mut compared = 0;
        for _ in 0..3000 {
            let len = usize::try_from(next() % 24).unwrap();
            let mut text: String = (0..len)
                .map(|_| alphabet[usize::try_from(next()).unwrap() % alphabet.len()])
                .collect();
            if next().is_multiple_of(4) {
                text.push_str(" from 192.0.2.7");
            }
            for re in &compiled {
                let (fast, exact) = (re.search(&text), re.search_exact(&text));
                assert_eq!(fast, exact, "{} on {text:?}", re.as_str());
                compared += 1;
            }
        }
        assert_eq!(compared, 3000 * patterns.len());
    }

    #[test]
    fn lines_outside_ascii_go_to_the_exact_engine() {
        let re = Compiled::new(r"^(?P<a>\w+) from <HOST>$", "yes").unwrap();
        assert!(re.has_jit());
        let found = re.captures("bob from 192.0.2.1").unwrap().unwrap();
        assert_eq!(get(&found, "a"), Some("bob"));
        // PCRE2 without Unicode would not take `ø` for a word character.
        let found = re.captures("bøb from 192.0.2.1").unwrap().unwrap();
        assert_eq!(get(&found, "a"), Some("bøb"));
    }

    #[test]
    fn a_catastrophic_pattern_gives_up_instead_of_hanging() {
        // Two ways to match each `a`, with a look-ahead so that the linear engine cannot take
        // the loop over: 2^40 paths before failing on the `X`.
        let re = Compiled::new(r"^(?:(?=a)a|a)+$", "yes").unwrap();
        assert_eq!(re.engine(), Engine::Backtracking);
        let text = format!("{}X", "a".repeat(40));
        assert!(re.has_jit());
        assert!(
            re.captures(&text).is_err(),
            "the match limit, then the backtracking limit, stops it"
        );
    }
}
