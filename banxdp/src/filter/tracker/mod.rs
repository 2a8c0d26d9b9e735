//! Failures across the lines of one connection, as fail2ban tracks them with `<F-MLFID>`:
//! lines sharing a failure id (say, sshd's `host sshd[pid]: `) merge their fields, so the
//! address seen on one line is the address of a failure found on a later one;
//! `<F-NOFAIL>` lines are remembered without counting; `<F-MLFGAINED>` (an accepted login)
//! cancels what is pending; `<F-MLFFORGET>` (a disconnect) ends the connection. The number of
//! lines that made up a failure is its `attempts`.
//!
//! Like fail2ban, a filter remembers at most 100 connections, each for five minutes.
//!
//! This is fail2ban's `Filter._mergeFailure` and `findFailure` (failure ids and multi-line
//! buffers). Pure: the state is this value; lines and the present go in, failures come out.

mod connections;

use connections::{Cache, Slot};

use crate::filter::{
    Filter, Host, literals,
    matcher::{host_of, merge_alternates},
    pattern::{self, Hit, Name, Span, Value},
};

/// Named groups in the order they were first set, as a Python dict keeps them: a handful of
/// entries, searched faster in a row than through a hash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Groups(Vec<(Name, Value)>);

/// Names are interned ([`pattern::intern`]), and compared by address ([`pattern::same`]).
impl Groups {
    fn new(fields: Vec<(Name, Value)>) -> Self {
        debug_assert!(fields.iter().all(|(k, _)| pattern::is_interned(k)));
        Self(fields)
    }

    fn get(&self, key: Name) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| pattern::same(k, key))
            .map(|(_, v)| v)
    }

    /// Sets `key`, in its place if it is there already.
    fn insert(&mut self, key: Name, value: Value) {
        match self.0.iter_mut().find(|(k, _)| pattern::same(k, key)) {
            Some((_, old)) => *old = value,
            None => self.0.push((key, value)),
        }
    }

    fn remove(&mut self, key: Name) -> Option<Value> {
        let at = self.0.iter().position(|(k, _)| pattern::same(k, key))?;
        Some(self.0.remove(at).1)
    }
}

/// What is known of one connection (or of one failure, without an id).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct State {
    groups: Groups,
    /// The users the connection tried, sorted (a handful at most: a vector).
    users: Vec<Value>,
    /// Lines that make up the failure so far.
    matches: usize,
    /// Lines remembered from `<F-NOFAIL>` matches, which join the next failure.
    nofail_matches: usize,
    pending: bool,
}

impl State {
    fn truthy(&self, key: Name) -> bool {
        self.groups.get(key).is_some_and(|v| !v.is_empty())
    }

    /// Removes `key`, saying whether its value was non-empty.
    fn pop_truthy(&mut self, key: Name) -> bool {
        self.groups.remove(key).is_some_and(|v| !v.is_empty())
    }

    /// Adds the user to the connection's set; the set's size, when the pattern has a user.
    fn update_users(&mut self, user: Option<&str>) -> usize {
        if let Some(user) = user.filter(|u| !u.is_empty()) {
            if let Err(at) = self.users.binary_search_by(|u| u.as_str().cmp(user)) {
                self.users.insert(at, Value::from(user));
            }
        }
        self.users.len()
    }
}

/// What a line gave: its failures, and whether an ignoreregex cancelled a match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    pub failures: Vec<Failure>,
    /// Matches whose connection has no address yet (failures once one appears), each as
    /// its failregex's index and whether it was `<F-NOFAIL>`. Listed only when every
    /// failregex is tried, as fail2ban-regex counts them; the daemon's search stops at them.
    pub pending: Vec<(usize, bool)>,
    pub ignored: bool,
    /// Earlier lines of a multi-line buffer that this line's match (or ignoreregex) took out
    /// of it: lines counted as missed when read, which turned out part of a match.
    pub released: usize,
}

/// A failure: who (`host`), by which failregex, with every named field of the lines that
/// made it up (merged by failure id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub regex: usize,
    pub host: Host,
    /// The host as the line wrote it.
    pub raw: Value,
    pub fields: Vec<(Name, Value)>,
    /// Lines that made up the failure.
    pub attempts: usize,
    /// Every user the connection tried, sorted.
    pub users: Vec<Value>,
    /// Known but not a failure (`<F-NOFAIL>`, or cancelled by `<F-MLFGAINED>`).
    pub nofail: bool,
}

impl Failure {
    /// The value of the field `name` (`user`, ...), if the patterns set it.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

const NOFAIL: u8 = 1;
const FORGET: u8 = 2;
const CACHED_NOFAIL: u8 = 4;
const GAINED: u8 = 8;

/// How many connections a filter remembers, and for how long (seconds), as fail2ban's
/// failure-id cache: when it is full, the oldest go first.
pub(super) const CONNECTIONS: usize = 100;
const CONNECTION_AGE: i64 = 5 * 60;

/// What a filter remembers between lines: connections by failure id, and the lines of a
/// multi-line buffer not yet part of a failure.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    connections: Cache<State>,
    /// Room for the groups of a line's matches, kept from line to line.
    pre_spans: Vec<(Name, Span)>,
    /// Room for where the failregexes' required strings are in a line.
    strings: Vec<(usize, usize, usize)>,
    spans: Vec<(Name, Span)>,
    buffer: Vec<String>,
    /// The present (seconds since the epoch), which ages connections.
    now: i64,
    /// Room for what [`Tracker::check`] finds in one line.
    found: Found,
}

impl Tracker {
    /// Sets the present, by which remembered connections age (fail2ban forgets one five
    /// minutes after it was first seen).
    pub fn set_now(&mut self, now: i64) {
        self.now = now;
    }

    /// Where the connection `mlfid` is, unless it is too old (then it is forgotten).
    fn connection_index(&mut self, mlfid: &str) -> Option<Slot> {
        let slot = self.connections.find(mlfid)?;
        if self.connections.expires(slot) <= self.now {
            self.connections.remove(slot);
            return None;
        }
        Some(slot)
    }

    /// Remembers a new connection; a full cache first drops its oldest entries, up to and
    /// including the first that has not expired.
    fn remember(&mut self, mlfid: &str, state: State) -> Slot {
        if self.connections.len() >= CONNECTIONS {
            while let Some((_, expires)) = self.connections.pop_oldest() {
                if expires > self.now && self.connections.len() < CONNECTIONS {
                    break;
                }
            }
        }
        let expires = self.now.saturating_add(CONNECTION_AGE);
        self.connections.insert(mlfid, state, expires)
    }

    /// Merges one match of `lines` lines into its connection (fail2ban's `_mergeFailure`).
    /// The state the failure is judged on is the connection's own, updated in place, unless
    /// the match ends the connection: then it is returned.
    fn merge(&mut self, mlfid: &str, mut fail: State, lines: usize) -> Merged {
        let known = pattern::known();
        let mut flags = 0;
        if fail.truthy(known.mlfgained) {
            flags |= GAINED | NOFAIL;
            if !fail.truthy(known.nofail) {
                let gained = fail
                    .groups
                    .get(known.mlfgained)
                    .cloned()
                    .unwrap_or_default();
                fail.groups.insert(known.nofail, gained);
            }
        } else if fail.truthy(known.nofail) {
            flags |= NOFAIL;
        }
        if fail.pop_truthy(known.mlfforget) {
            flags |= FORGET;
        }
        let mut owned = None;
        let mut index = None;
        let (state, users) = if let Some(at) = self.connection_index(mlfid) {
            let cached = self.connections.get_mut(at);
            let users = cached.update_users(fail.groups.get(known.user).map(Value::as_str));
            if cached.pop_truthy(known.nofail) {
                flags |= CACHED_NOFAIL;
            }
            if cached.pop_truthy(known.mlfgained) {
                flags |= CACHED_NOFAIL;
            }
            if flags & GAINED != 0 {
                cached.pending = false;
            }
            if flags & CACHED_NOFAIL == 0 && !cached.pending {
                cached.matches = 0;
            }
            for (k, v) in fail.groups.0 {
                cached.groups.insert(k, v);
            }
            let state = if flags & FORGET != 0 {
                owned.insert(self.connections.remove(at).0)
            } else {
                index = Some(at);
                self.connections.get_mut(at)
            };
            (state, users)
        } else if flags & FORGET == 0 {
            let users = fail.update_users(fail.groups.get(known.user).cloned().as_deref());
            let at = self.remember(mlfid, fail);
            index = Some(at);
            (self.connections.get_mut(at), users)
        } else {
            (owned.insert(fail), 0)
        };
        // Pending failures, or a second user on the connection, make it a failure after all.
        if std::mem::take(&mut state.pending) || users > 1 {
            state.groups.remove(known.nofail);
            state.groups.remove(known.mlfgained);
            flags &= !(GAINED | NOFAIL);
        }
        if flags & NOFAIL == 0 {
            state.matches += std::mem::take(&mut state.nofail_matches);
            if flags & GAINED == 0 {
                state.matches += lines;
            }
        } else if flags & (NOFAIL | FORGET) == NOFAIL {
            state.nofail_matches += lines;
        }
        match (owned, index) {
            (Some(state), _) => Merged::Owned(state),
            (None, Some(at)) => Merged::Cached(at),
            (None, None) => unreachable!("a merged state is owned or cached"),
        }
    }

    /// The failures of one line (its date already cut out), as fail2ban's `findFailure`
    /// finds them. With `check_all` every matching failregex counts (as fail2ban's tests run
    /// filters); otherwise the first decides, and a pending or no-fail line ends the search,
    /// as in the daemon.
    ///
    /// With `maxlines` above 1 the patterns search the last lines joined by newlines; the
    /// lines a failure spans (less those its `<SKIPLINES>` stepped over) leave the buffer,
    /// the others stay for the lines to come.
    pub fn check(&mut self, filter: &Filter, line: &str, check_all: bool) -> Checked {
        if filter.maxlines <= 1 {
            let mut found = std::mem::take(&mut self.found);
            found.clear();
            let searched = self.search(filter, line, check_all, &mut found);
            let checked = self.apply(&searched, &mut found, check_all);
            self.found = found;
            return checked;
        }
        // The lines buffered before, less the one this line pushes out of a full buffer.
        let full = self.buffer.len() >= filter.maxlines;
        let earlier = self.buffer[usize::from(full)..].to_vec();
        self.buffer.push(line.to_string());
        let excess = self.buffer.len().saturating_sub(filter.maxlines);
        self.buffer.drain(..excess);
        let org = self.buffer.clone();
        let mut checked = self.find_in_buffer(filter, &joined(&org), &org, check_all);
        checked.released = earlier.iter().filter(|l| !self.buffer.contains(l)).count();
        checked
    }

    /// What the patterns of a one-line filter (`maxlines` 1) find in `line`, apart from what
    /// earlier lines left: the first half of [`Tracker::check`], which depends on no state,
    /// so that lines may be searched out of order (on other threads) and applied in order.
    /// Only the room kept for groups is taken from `self`; what the search finds goes to
    /// `found`, to be read by [`Tracker::apply`].
    pub fn search(
        &mut self,
        filter: &Filter,
        line: &str,
        check_all: bool,
        found: &mut Found,
    ) -> Searched {
        debug_assert!(filter.maxlines <= 1);
        let mut out = Searched {
            ignored: false,
            hits: found.hits.len()..found.hits.len(),
        };
        let mut pre = std::mem::take(&mut self.pre_spans);
        let mut groups = std::mem::take(&mut self.spans);
        let mut strings = std::mem::take(&mut self.strings);
        match open(filter, line, &mut pre, &mut strings) {
            Gate::Ignored => out.ignored = true,
            Gate::Closed => {}
            Gate::Open(content, candidates) => {
                let span = content.unwrap_or((0, line.len()));
                let text = &line[span.0..span.1];
                for regex in literals::members(candidates, filter.failregex.len()) {
                    let re = &filter.failregex[regex];
                    if !matches!(re.search_spans(text, &mut groups), Ok(Some(_))) {
                        continue;
                    }
                    let fields = found.push_fields(&pre, line, &groups, text);
                    found.hits.push(Matched {
                        regex,
                        fields,
                        alternates: filter.alternates[regex],
                        ignored: filter.ignored(text),
                    });
                    out.hits.end += 1;
                    if !check_all {
                        break;
                    }
                }
            }
        }
        self.pre_spans = pre;
        self.spans = groups;
        self.strings = strings;
        out
    }

    /// Merges what [`Tracker::search`] found in a line with what earlier lines left: the
    /// second half of [`Tracker::check`]. Lines must come in their order, each applied once:
    /// the line's fields are taken out of `found`.
    pub fn apply(&mut self, searched: &Searched, found: &mut Found, check_all: bool) -> Checked {
        let mut out = Checked {
            ignored: searched.ignored,
            ..Checked::default()
        };
        for at in searched.hits.clone() {
            let hit = found.hits[at].clone();
            if hit.ignored {
                out.ignored = true;
                if !check_all {
                    break;
                }
                continue;
            }
            let fields = found.take_fields(hit.fields.clone());
            let stop = self.record(hit.regex, fields, hit.alternates, 1, check_all, &mut out);
            if stop || !check_all {
                break;
            }
        }
        out
    }

    /// fail2ban's `findFailure` on a multi-line buffer, `text` (the lines of `org` joined).
    fn find_in_buffer(
        &mut self,
        filter: &Filter,
        text: &str,
        org: &[String],
        check_all: bool,
    ) -> Checked {
        let mut out = Checked::default();
        let line = text;
        let mut pre = std::mem::take(&mut self.pre_spans);
        let mut found = std::mem::take(&mut self.spans);
        let gate = open(filter, line, &mut pre, &mut Vec::new());
        let Gate::Open(content, _) = gate else {
            out.ignored = matches!(gate, Gate::Ignored);
            self.pre_spans = pre;
            self.spans = found;
            return out;
        };
        let mut text = match content {
            Some((start, end)) => {
                // The failregexes see the content only; so does the buffer from now on.
                self.buffer = vec![line[start..end].to_string()];
                line[start..end].to_string()
            }
            None => line.to_string(),
        };
        let mut candidates = filter.candidates(&text);
        for (regex, re) in filter.failregex.iter().enumerate() {
            if !literals::has(candidates, regex) {
                continue;
            }
            let Ok(Some(span)) = re.search_spans(&text, &mut found) else {
                continue;
            };
            let mut kept = Found::default();
            let range = kept.push_fields(&pre, line, &found, &text);
            let fields = kept.take_fields(range);
            // An ignoreregex sees the lines the match spans; what it spans leaves the buffer.
            let hit = Hit::new(&text, span, &found);
            let (matched, unmatched) = split_lines(&text, &hit, org);
            let ignored = filter.ignored(&joined(&matched));
            let lines = matched.len();
            text = joined(&unmatched);
            candidates = filter.candidates(&text);
            self.buffer = unmatched;
            if ignored {
                out.ignored = true;
                if !check_all {
                    break;
                }
                continue;
            }
            let alternates = filter.alternates[regex];
            let stop = self.record(regex, fields, alternates, lines, check_all, &mut out);
            if stop || !check_all {
                break;
            }
        }
        self.pre_spans = pre;
        self.spans = found;
        out
    }

    /// Merges a failregex's match of `lines` lines into its connection (if it has a failure
    /// id), and adds the failure it makes, if any, to `out`; whether the search ends there.
    fn record(
        &mut self,
        regex: usize,
        mut fields: Vec<(Name, Value)>,
        alternates: bool,
        lines: usize,
        check_all: bool,
        out: &mut Checked,
    ) -> bool {
        if alternates {
            merge_alternates(&mut fields);
        }
        let known = pattern::known();
        let fail = State {
            groups: Groups::new(fields),
            ..State::default()
        };
        let mlfid = fail.groups.get(known.mlfid).cloned();
        let mut merged = match &mlfid {
            Some(id) => self.merge(id, fail, lines),
            None => Merged::Owned(State {
                matches: lines,
                ..fail
            }),
        };
        let state = match &mut merged {
            Merged::Owned(state) => state,
            Merged::Cached(at) => self.connections.get_mut(*at),
        };
        let nofail = state.truthy(known.nofail);
        if nofail && !check_all && mlfid.is_some() {
            return true;
        }
        let Some((host, raw)) = host_of(&state.groups.0) else {
            // No address yet: the connection's failure is pending until one appears.
            state.pending = true;
            if check_all {
                out.pending.push((regex, nofail));
            }
            return !check_all;
        };
        // A state of its own goes into the failure; a connection's is copied.
        let (fields, users, attempts) = match merged {
            Merged::Owned(state) => (state.groups.0, state.users, state.matches),
            Merged::Cached(at) => {
                let state = self.connections.get_mut(at);
                (state.groups.0.clone(), state.users.clone(), state.matches)
            }
        };
        out.failures.push(Failure {
            regex,
            host,
            raw,
            fields,
            attempts,
            users,
            nofail,
        });
        false
    }
}

/// What a one-line filter's patterns found in a line (see [`Tracker::search`]), kept in a
/// [`Found`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Searched {
    /// An ignoreregex matched before any failregex was tried.
    ignored: bool,
    /// The failregexes that matched, in order (without `check_all`, the first only): where
    /// they are in [`Found::hits`].
    hits: std::ops::Range<usize>,
}

/// What searches found in the lines of a stretch of log, kept in three buffers for all of
/// them, so that a search allocates nothing of its own (but for a field longer than a value
/// keeps inline, 24 bytes): the buffers grow to the stretch's needs and are cleared, or sent
/// to the thread that applies them, in one piece. The fields are values already, made by the
/// thread that searched, and the thread that applies them takes them out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    hits: Vec<Matched>,
    /// Every field: its name and its value (taken out when applied).
    fields: Vec<(Name, Value)>,
    /// Texts kept for later (a multi-line filter's lines), one after another.
    text: String,
}

/// One failregex's match: its fields (the prefregex's, less those the failregex sets
/// again), and whether an ignoreregex cancels it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Matched {
    regex: usize,
    /// Where its fields are in [`Found::fields`].
    fields: std::ops::Range<usize>,
    /// Whether the filter has `alt_` groups to merge (see `matcher::merge_alternates`).
    alternates: bool,
    ignored: bool,
}

impl Found {
    /// Forgets everything, keeping the room.
    pub fn clear(&mut self) {
        self.hits.clear();
        self.fields.clear();
        self.text.clear();
    }

    /// Keeps `text`, and says where it is.
    pub fn push_text(&mut self, text: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(text);
        (start, self.text.len())
    }

    /// The text kept at `span`.
    #[must_use]
    pub fn text(&self, (start, end): Span) -> &str {
        &self.text[start..end]
    }

    /// Keeps a match's fields: the prefregex's groups (`pre`, in `line`), less those the
    /// failregex sets again, then the failregex's (`groups`, in `text`).
    fn push_fields(
        &mut self,
        pre: &[(Name, Span)],
        line: &str,
        groups: &[(Name, Span)],
        text: &str,
    ) -> std::ops::Range<usize> {
        let first = self.fields.len();
        for (name, (s, e)) in pre {
            if !groups.iter().any(|(n, _)| pattern::same(n, name)) {
                self.fields.push((*name, Value::from(&line[*s..*e])));
            }
        }
        for (name, (s, e)) in groups {
            self.fields.push((*name, Value::from(&text[*s..*e])));
        }
        first..self.fields.len()
    }

    /// The fields kept at `range`, as a failure carries them, taken out.
    fn take_fields(&mut self, range: std::ops::Range<usize>) -> Vec<(Name, Value)> {
        self.fields[range]
            .iter_mut()
            .map(|(name, value)| (*name, std::mem::take(value)))
            .collect()
    }
}

/// How far fail2ban's first steps let a text through.
enum Gate {
    /// An ignoreregex matched the whole text (tried first when there are few of them).
    Ignored,
    /// No failregex can match: no required string is there, or the prefregex failed.
    Closed,
    /// The failregexes search on: in the prefregex's content (a non-empty span), or in
    /// the whole text (`None`); those of the mask (see `literals::has`) may match.
    Open(Option<Span>, u128),
}

/// fail2ban's steps before the failregexes, on `text`: an early ignoreregex check, the
/// literal prefilter (which keeps where the failregexes' strings are in `strings`), the
/// prefregex, whose other groups go to `pre`.
fn open(
    filter: &Filter,
    text: &str,
    pre: &mut Vec<(Name, Span)>,
    strings: &mut Vec<(usize, usize, usize)>,
) -> Gate {
    pre.clear();
    // With few ignoreregexes fail2ban tries them on the whole text first.
    if !filter.ignoreregex.is_empty()
        && filter.ignoreregex.len() + 2 < filter.failregex.len()
        && filter.ignored(text)
    {
        return Gate::Ignored;
    }
    // Failregexes that all start with known strings: the first bytes of the text they
    // search say which may match. Before a prefregex, one scan for any of their strings
    // (which stops at the first) turns most lines away.
    if let Some(anchored) = &filter.anchored {
        if filter.prefregex.is_some() && !filter.may_match(text) {
            return Gate::Closed;
        }
        let Some(content) = prefregex_content(filter, text, pre) else {
            return Gate::Closed;
        };
        let (start, end) = content.unwrap_or((0, text.len()));
        let mask = anchored.candidates(&text[start..end]);
        return if mask == 0 {
            Gate::Closed
        } else {
            Gate::Open(content, mask)
        };
    }
    if !filter.may_match_keeping(text, strings) {
        return Gate::Closed;
    }
    let Some(content) = prefregex_content(filter, text, pre) else {
        return Gate::Closed;
    };
    let span = content.unwrap_or((0, text.len()));
    Gate::Open(content, filter.candidates_within(strings, span))
}

/// The prefregex's content in `text` (`Some(None)`: no prefregex, or an empty content, so
/// the whole text), its other groups in `pre`; `None` when the prefregex does not match.
#[expect(
    clippy::option_option,
    reason = "no match, no content, and a content differ"
)]
fn prefregex_content(
    filter: &Filter,
    text: &str,
    pre: &mut Vec<(Name, Span)>,
) -> Option<Option<Span>> {
    let Some(pref) = &filter.prefregex else {
        return Some(None);
    };
    if !matches!(pref.search_spans(text, pre), Ok(Some(_))) {
        return None;
    }
    let content = pre.iter().position(|(name, _)| *name == "content");
    Some(content.map(|at| pre.remove(at).1).filter(|(s, e)| s < e))
}

/// Where a merged failure's state is: its own (no id, or a connection just ended), or a
/// remembered connection's, by index.
enum Merged {
    Owned(State),
    Cached(Slot),
}

/// A multi-line buffer as its patterns see it: the lines, each ending in a newline.
fn joined(lines: &[String]) -> String {
    let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The lines of `org` a match in `searched` (`org` joined, or what replaced it) spans, less
/// those its `<SKIPLINES>` groups stepped over; and the others, in fail2ban's order: the
/// lines before, the skipped ones, the lines after.
fn split_lines(searched: &str, hit: &Hit, org: &[String]) -> (Vec<String>, Vec<String>) {
    if org.len() <= 1 {
        return (org.to_vec(), Vec::new());
    }
    let bytes = searched.as_bytes();
    let upto = (hit.start + 1).min(bytes.len());
    let line_start = memchr::memrchr(b'\n', &bytes[..upto]).map_or(0, |p| p + 1);
    let from = hit.end.saturating_sub(1).min(bytes.len());
    let line_end = memchr::memchr(b'\n', &bytes[from..]).map_or(bytes.len(), |p| from + p + 1);
    let newlines = |end: usize| memchr::memchr_iter(b'\n', &bytes[..end]).count();
    let first = newlines(line_start).min(org.len());
    let last = newlines(line_end).clamp(first, org.len());
    let mut matched = org[first..last].to_vec();
    let mut unmatched = org[..first].to_vec();
    let mut skipped_text = String::new();
    for n in 0.. {
        let name = format!("skiplines{n}");
        let Some((_, value)) = hit.groups.iter().find(|(g, _)| *g == name) else {
            break;
        };
        skipped_text.push_str(value);
    }
    let mut n = 0;
    for skipped in skipped_text.lines() {
        if let Some(m) = matched[n..].iter().position(|l| l == skipped) {
            unmatched.push(matched.remove(n + m));
            n += m;
        }
    }
    unmatched.extend_from_slice(&org[last..]);
    (matched, unmatched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::FilterSpec;

    fn sshd_like() -> Filter {
        Filter::new(&FilterSpec {
            prefregex: Some(r"^<F-MLFID>\S+ sshd\[\d+\]: </F-MLFID><F-CONTENT>.+</F-CONTENT>$".into()),
            failregex: vec![
                r"^<F-NOFAIL>Connection from</F-NOFAIL> <HOST>".into(),
                r"^Failed password for <F-USER>\S+</F-USER>$".into(),
                r"^<F-MLFFORGET><F-MLFGAINED>Accepted password</F-MLFGAINED></F-MLFFORGET> for <F-USER>\S+</F-USER>$".into(),
            ],
            usedns: "no".into(),
            ..FilterSpec::default()
        })
        .unwrap()
    }

    #[test]
    fn an_address_from_an_earlier_line_makes_a_later_one_a_failure() {
        let filter = sshd_like();
        let mut tracker = Tracker::default();
        let first = tracker
            .check(&filter, "h sshd[7]: Connection from 192.0.2.9", true)
            .failures;
        assert!(first[0].nofail, "a connection is no failure");
        let second = tracker
            .check(&filter, "h sshd[7]: Failed password for root", true)
            .failures;
        assert_eq!(second[0].raw.as_str(), "192.0.2.9");
        assert!(!second[0].nofail);
        // The failure carries the lines since the last one: the connection and itself.
        assert_eq!(second[0].attempts, 2);
        let third = tracker
            .check(&filter, "h sshd[7]: Failed password for root", true)
            .failures;
        assert_eq!(third[0].attempts, 1, "earlier lines were reported already");
        assert_eq!(third[0].raw.as_str(), "192.0.2.9");
        // Another connection knows nothing of this address.
        let other = tracker.check(&filter, "h sshd[8]: Failed password for root", true);
        assert_eq!((other.failures.len(), other.pending.len()), (0, 1));
    }

    #[test]
    fn the_oldest_connection_is_found_without_a_scan() {
        // Connections remembered, found (expiring), forgotten and crowded out at random:
        // what is kept must be what fail2ban's cache keeps, modelled here in the plainest
        // way, by the order of arrival.
        let mut next = crate::filter::generated::xorshift(0x2545_f491_4f6c_dd1d);
        let mut tracker = Tracker::default();
        // (id, order, expires), in order of arrival.
        let mut model: Vec<(String, u64, i64)> = Vec::new();
        let mut order = 0;
        for step in 0..50_000 {
            if next().is_multiple_of(8) {
                tracker.now += i64::try_from(next() % 30).unwrap();
            }
            let now = tracker.now;
            let id = format!("c{}", next() % 300);
            let found = tracker.connection_index(&id);
            let known = model.iter().position(|(k, ..)| *k == id);
            match known {
                Some(at) if model[at].2 <= now => {
                    model.remove(at);
                    assert_eq!(found, None, "step {step}: {id} expired");
                }
                Some(_) => {
                    let at = found.expect("remembered");
                    if next().is_multiple_of(3) {
                        tracker.connections.remove(at);
                        model.retain(|(k, ..)| *k != id);
                    }
                }
                None => {
                    assert_eq!(found, None, "step {step}: {id} unknown");
                    if model.len() >= CONNECTIONS {
                        while !model.is_empty() {
                            let (_, _, expires) = model.remove(0);
                            if expires > now && model.len() < CONNECTIONS {
                                break;
                            }
                        }
                    }
                    tracker.remember(&id, State::default());
                    model.push((id, order, now + CONNECTION_AGE));
                    order += 1;
                }
            }
            let mut kept: Vec<(String, u64)> = tracker
                .connections
                .ids()
                .map(|(k, o)| (k.to_string(), o))
                .collect();
            kept.sort_by_key(|(_, o)| *o);
            let expected: Vec<(String, u64)> =
                model.iter().map(|(k, o, _)| (k.clone(), *o)).collect();
            assert_eq!(kept, expected, "step {step}");
            assert!(tracker.connections.queued() <= 4 * CONNECTIONS + 1);
        }
        assert_eq!(order, tracker.connections.arrived());
        assert!(order > 5_000, "{order} connections remembered");
        // Short connections in a cache that never fills: the queue does not grow with them.
        let mut tracker = Tracker::default();
        for n in 0..10_000 {
            let id = format!("s{}", n % 50);
            let at = tracker.remember(&id, State::default());
            tracker.connections.remove(at);
            assert!(tracker.connections.queued() <= 4 * CONNECTIONS + 1);
        }
    }

    #[test]
    fn connections_are_forgotten_when_old_or_crowded_out() {
        let filter = sshd_like();
        let failure_on = |tracker: &mut Tracker, pid: usize| {
            tracker
                .check(
                    &filter,
                    &format!("h sshd[{pid}]: Failed password for root"),
                    true,
                )
                .failures
                .first()
                .map(|f| f.raw.to_string())
        };
        let mut tracker = Tracker::default();
        tracker.set_now(1_000);
        tracker.check(&filter, "h sshd[1]: Connection from 192.0.2.1", true);
        tracker.set_now(1_000 + CONNECTION_AGE - 1);
        assert_eq!(failure_on(&mut tracker, 1).as_deref(), Some("192.0.2.1"));
        tracker.set_now(1_000 + CONNECTION_AGE);
        assert_eq!(
            failure_on(&mut tracker, 1),
            None,
            "five minutes on, it is gone"
        );
        // A hundred newer connections push out the oldest, and only it.
        let mut tracker = Tracker::default();
        for pid in 0..=CONNECTIONS {
            let line = format!("h sshd[{pid}]: Connection from 192.0.2.{}", pid % 250);
            tracker.check(&filter, &line, true);
        }
        assert_eq!(tracker.connections.len(), CONNECTIONS);
        assert_eq!(failure_on(&mut tracker, 1).as_deref(), Some("192.0.2.1"));
        // (The pending failure this remembers crowds out the next oldest in turn.)
        assert_eq!(failure_on(&mut tracker, 0), None);
    }

    #[test]
    fn an_accepted_login_is_no_failure() {
        let filter = sshd_like();
        let mut tracker = Tracker::default();
        tracker.check(&filter, "h sshd[7]: Connection from 192.0.2.9", true);
        let accepted = tracker
            .check(&filter, "h sshd[7]: Accepted password for alice", true)
            .failures;
        assert!(accepted[0].nofail);
        // The connection is forgotten: a new one on the same id starts afresh.
        let later = tracker.check(&filter, "h sshd[7]: Failed password for alice", true);
        assert_eq!((later.failures.len(), later.pending.len()), (0, 1));
    }
}
