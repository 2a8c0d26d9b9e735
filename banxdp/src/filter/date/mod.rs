//! Time stamps in log lines, found and read as fail2ban finds and reads them: `datepattern`
//! with fail2ban's `%` tokens (strptime's, plus `%k`, `%l`, `%Ex…` variants, `%z`/`%Z`),
//! `{^LN-BEG}` to anchor at the line's start, the named patterns `EPOCH`, `LEPOCH`, `TAI64N`
//! and `ISO8601`, and, without a `datepattern`, fail2ban's default templates (each tried
//! anchored at the line's start first, then anywhere).
//!
//! Pure: the present time is passed in (for dates without a year or day), and so is the
//! zone for dates without one (`logtimezone`, or the machine's local time).
//!
//! Simplification against fail2ban: without a `datepattern`, the first template that matches
//! wins; fail2ban also reorders templates by how often and where they matched before.

pub mod syslog;

use std::fmt::Write as _;

use crate::filter::engine::ascii::same_bytes;

use crate::filter::pattern::translate;

/// Weekday and month names, as the C locale spells them.
const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// fail2ban's default templates, in its order.
const DEFAULT_TEMPLATES: [&str; 18] = [
    r"%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?",
    SYSLOG,
    r"(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?",
    r"%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S",
    r"%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?",
    r"%m/%d/%ExY:%H:%M:%S",
    r"%m-%d-%ExY %k:%M:%S(?:\.%f)?",
    "EPOCH",
    r"{^LN-BEG}%H:%M:%S",
    r"^<%m/%d/%Exy@%H:%M:%S>",
    r"%Exy%Exm%Exd  ?%H:%M:%S",
    r"%b %d, %ExY %I:%M:%S %p",
    r"^%b-%d-%Exy %k:%M:%S",
    r"%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\s*%z)?",
    r"(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    "TAI64N",
    // Not in fail2ban's list, which detects these through the first template; kept last.
    "ISO8601",
];

/// Syslog's date: the template [`syslog::read`] reads at a line's start.
const SYSLOG: &str = r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?";

/// Alternatives longest first, so that `September` wins over `Sep`.
fn names(list: &[&str], abbreviated: bool) -> String {
    let mut all: Vec<String> = list
        .iter()
        .map(|n| {
            if abbreviated {
                n[..3].to_string()
            } else {
                (*n).to_string()
            }
        })
        .collect();
    all.sort_by_key(|n| std::cmp::Reverse(n.len()));
    all.join("|")
}

/// The century prefixes `%ExY` accepts around `year` (fail2ban's: last year's and three
/// years ahead, and those since 2000 in steps of three).
fn year_prefixes(year: i32) -> String {
    let mut set: Vec<String> = vec![
        (year - 1).to_string()[..3].to_string(),
        (year + 3).to_string()[..3].to_string(),
    ];
    let mut y = 2000;
    while y <= year {
        set.push(y.to_string()[..3].to_string());
        y += 3;
    }
    set.sort();
    set.dedup();
    format!("(?:{})", set.join("|"))
}

/// The regular expression of one token (`d`, `ExY`, ...), `None` when unknown.
fn token(name: &str, year: i32) -> Option<String> {
    let tz_abbr = r"[A-Z](?:[A-Z]{2,4})?";
    Some(match name {
        "a" => format!("(?P<a>{})", names(&DAYS, true)),
        "A" => format!("(?P<A>{})", names(&DAYS, false)),
        "b" => format!("(?P<b>{})", names(&MONTHS, true)),
        "B" => format!("(?P<B>{})", names(&MONTHS, false)),
        "d" => r"(?P<d>[1-2]\d|[0 ]?[1-9]|3[0-1])".into(),
        "m" => r"(?P<m>0?[1-9]|1[0-2])".into(),
        "Y" => r"(?P<Y>\d{4})".into(),
        "y" => r"(?P<y>\d\d)".into(),
        "H" => r"(?P<H>[0-1]?\d|2[0-3])".into(),
        "I" => r"(?P<I>1[0-2]|0[1-9]|[1-9])".into(),
        "k" => r" ?(?P<H>[0-2]?\d)".into(),
        "l" => r" ?(?P<I>1?\d)".into(),
        "M" => r"(?P<M>[0-5]?\d)".into(),
        "S" => r"(?P<S>[0-5]?\d|6[0-1])".into(),
        "f" => r"(?P<f>[0-9]{1,6})".into(),
        "p" => r"(?P<p>am|pm)".into(),
        "j" => r"(?P<j>36[0-6]|3[0-5]\d|[12]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])".into(),
        "z" => r"(?P<z>Z|UTC|GMT|[+-][01]\d(?::?\d{2})?)".into(),
        "Z" => r"(?P<Z>Z|[A-Z]{3,5})".into(),
        "ExZ" => format!("(?P<Z>{tz_abbr})"),
        "Exz" => format!(r"(?P<z>(?:{tz_abbr})?[+-][01]\d(?::?\d{{2}})?|{tz_abbr})"),
        "Exd" => r"(?P<d>[1-2]\d|0[1-9]|3[0-1])".into(),
        "Exm" => r"(?P<m>0[1-9]|1[0-2])".into(),
        "ExH" => r"(?P<H>[0-1]\d|2[0-3])".into(),
        "Exk" => r" ?(?P<H>[0-1]?\d|2[0-3])".into(),
        "Exl" => r" ?(?P<I>1[0-2]|\d)".into(),
        "ExM" => r"(?P<M>[0-5]\d)".into(),
        "ExS" => r"(?P<S>[0-5]\d|6[0-1])".into(),
        "ExY" => format!(r"(?P<Y>{}\d)", year_prefixes(year)),
        "Exy" => r"(?P<y>\d{2})".into(),
        _ => return None,
    })
}

/// A `datepattern` that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("date pattern `{pattern}`: {reason}")]
pub struct DateError {
    pub pattern: String,
    pub reason: String,
}

/// How a pattern's matched text becomes a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Fields,
    Epoch { millis: bool },
    Tai64n,
}

/// The engines whose answer is a date pattern's definition.
#[derive(Clone, Debug)]
struct Exact {
    /// The pattern with fail2ban's word-boundary look-aheads: the exact answer.
    regex: fancy_regex::Regex,
    /// The same pattern without the look-aheads, on the linear engine where it reads it;
    /// its match is the exact one whenever the boundaries hold where it starts and ends.
    fast: Option<regex::Regex>,
    /// Where the fast pattern's groups go, kept between lines.
    locations: std::cell::RefCell<Option<regex::CaptureLocations>>,
    /// The fast pattern's fields and their group numbers (see [`slot`]).
    slots: Vec<(usize, usize)>,
}

impl Exact {
    /// Compiles `full` (the pattern with its look-aheads) and `core` (without).
    fn new(full: &str, core: &str) -> Result<Self, String> {
        let regex = fancy_regex::RegexBuilder::new(full)
            .backtrack_limit(crate::filter::pattern::BACKTRACK_LIMIT)
            .build()
            .map_err(|e| e.to_string())?;
        let fast = match translate(core) {
            (linear, crate::filter::pattern::Engine::Linear) => regex::Regex::new(&linear).ok(),
            _ => None,
        };
        Ok(Self {
            regex,
            slots: fast
                .as_ref()
                .map_or_else(Vec::new, |f| slots_of(f.capture_names())),
            locations: std::cell::RefCell::new(fast.as_ref().map(regex::Regex::capture_locations)),
            fast,
        })
    }
}

/// One compiled date pattern.
#[derive(Clone, Debug)]
pub struct DatePattern {
    pub name: String,
    /// The engines.
    exact: Exact,
    /// The last minute this pattern read.
    memo: std::cell::RefCell<Memo>,
    bound_begin: bool,
    bound_end: bool,
    /// Anchored at the line's start: its match there is taken without trying the others.
    pub line_anchored: bool,
    kind: Kind,
    /// For the syslog template at the line's start, which [`syslog::read`] reads first: the
    /// last minute it read (its own [`Memo`], cheaper to check).
    syslog: Option<std::cell::RefCell<SyslogMemo>>,
}

/// A line that [`syslog::read`] leaves to the engines.
struct Declined;

/// The last minute of a syslog date: the line's text up to the end of the minute and where
/// the day, hour and minute were in it, the clock it was read with, and the time of its
/// second 0 when every second of the minute is that plus the second (see [`Memo`]).
#[derive(Clone, Debug, Default)]
struct SyslogMemo {
    text: Vec<u8>,
    spans: [(usize, usize); 3],
    clock: Option<Clock>,
    minute: Option<i64>,
    /// The date read was of the fixed shape ([`syslog::FIXED`]): `text` is its first 12
    /// bytes, and a line beginning with them is read by [`syslog::fixed_second`].
    fixed: bool,
}

/// `**` at either end of a pattern turns that end's word boundary off, as in fail2ban: the
/// pattern without them, and which ends had them.
fn strip_stars(body: &str) -> (String, bool, bool) {
    let mut text = body.to_string();
    let opening = text.len() - text.trim_start_matches('(').len();
    let begin = text[opening..].starts_with("**");
    if begin {
        text.replace_range(opening..opening + 2, "");
    }
    let closing = text.len() - text.trim_end_matches(')').len();
    let inner = text.len() - closing;
    let end = text[..inner].ends_with("**") && !text[..inner].ends_with(r"\**");
    if end {
        text.replace_range(inner - 2..inner, "");
    }
    (text, begin, end)
}

/// A date pattern's name, as summaries list it: as written, without `**`.
fn display_name(pattern: &str) -> String {
    let pattern = pattern.trim();
    match pattern.strip_prefix("{^LN-BEG}") {
        Some(body) => format!("{{^LN-BEG}}{}", strip_stars(body).0),
        None => strip_stars(pattern).0,
    }
}

/// Named groups a date pattern may have.
const SLOTS: usize = 16;

/// The named groups a date pattern may have, in the order of a match's [`Fields`].
const SLOT_NAMES: [&str; SLOTS] = [
    "Y", "y", "m", "b", "B", "d", "H", "I", "p", "M", "S", "z", "Z", "f", "epoch", "tai",
];

/// Indexes into [`Fields`].
mod at {
    pub const Y: usize = 0;
    pub const Y2: usize = 1;
    pub const MONTH: usize = 2;
    pub const B: usize = 3;
    pub const B_FULL: usize = 4;
    pub const D: usize = 5;
    pub const H: usize = 6;
    pub const I: usize = 7;
    pub const P: usize = 8;
    pub const MINUTE: usize = 9;
    pub const S: usize = 10;
    pub const Z: usize = 11;
    pub const Z_NAME: usize = 12;
    pub const EPOCH: usize = 14;
    pub const TAI: usize = 15;
}

/// The text of each named group of a match, by its place in [`SLOT_NAMES`].
type Fields<'l> = [Option<&'l str>; SLOTS];

/// The place of a named group among a date pattern's fields.
fn slot(name: &str) -> Option<usize> {
    SLOT_NAMES.iter().position(|n| *n == name)
}

/// A match's fields, from the fields a pattern has (each with its group number) and where
/// each group lies.
fn fields_at<'l>(
    line: &'l str,
    slots: &[(usize, usize)],
    group: impl Fn(usize) -> Option<(usize, usize)>,
) -> Fields<'l> {
    let mut fields = [None; SLOTS];
    for &(at, index) in slots {
        fields[at] = group(index).map(|(s, e)| &line[s..e]);
    }
    fields
}

/// The fields a pattern has, each with its group number, from the group names in order.
fn slots_of<'n>(names: impl Iterator<Item = Option<&'n str>>) -> Vec<(usize, usize)> {
    names
        .enumerate()
        .filter_map(|(index, name)| Some((slot(name?)?, index)))
        .collect()
}

/// Python's `\w` for one character.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `(?=^|\b|\W)` at `at`: the line's start, or no word character on both sides.
fn begin_holds(line: &str, at: usize) -> bool {
    let before = line[..at].chars().next_back();
    let after = line[at..].chars().next();
    !(before.is_some_and(is_word) && after.is_some_and(is_word))
}

/// `(?=\b|\W|$)` at `at`: the line's end, a non-word character next, or a boundary.
fn end_holds(line: &str, at: usize) -> bool {
    begin_holds(line, at)
}

impl DatePattern {
    /// Compiles a `datepattern` (or a template); `year` is the present year, which bounds
    /// `%ExY`.
    pub fn new(pattern: &str, year: i32) -> Result<Self, DateError> {
        let error = |reason: String| DateError {
            pattern: pattern.to_string(),
            reason,
        };
        let mut body = pattern.trim();
        let line_begin = if let Some(rest) = body.strip_prefix("{^LN-BEG}") {
            body = rest;
            true
        } else {
            false
        };
        let (unbounded, unbound_begin, unbound_end) = strip_stars(body);
        let body = unbounded.as_str();
        let (regex, kind, case_insensitive) = match body.to_uppercase().as_str() {
            "EPOCH" => (
                r"(?P<epoch>\d{10,11})(?:\.\d{3,6})?".to_string(),
                Kind::Epoch { millis: false },
                false,
            ),
            "LEPOCH" => (
                r"(?P<epoch>\d{13,14})(?:\.\d{3,6})?".to_string(),
                Kind::Epoch { millis: true },
                false,
            ),
            "TAI64N" => (
                r"@(?P<tai>[0-9a-fA-F]{24})".to_string(),
                Kind::Tai64n,
                false,
            ),
            "ISO8601" => (
                expand(r"%Y-%m-%d[T ]%H:%M:%S(?:\.%f)?%z", year).map_err(error)?,
                Kind::Fields,
                false,
            ),
            _ => {
                let alpha = ["%a", "%A", "%b", "%B", "%p"]
                    .iter()
                    .any(|t| body.contains(t));
                (expand(body, year).map_err(error)?, Kind::Fields, alpha)
            }
        };
        let anchored = regex.starts_with('^');
        // The date is group 1, as in fail2ban: the pattern's own first plain group if it has
        // one, else the whole pattern. Boundary text around it (`^\W{0,2}`) is matched but not
        // cut out of the line.
        let regex = if has_plain_group(&regex) {
            regex
        } else if let Some(rest) = regex.strip_prefix('^') {
            format!("^({rest})")
        } else {
            format!("({regex})")
        };
        let mut core = String::new();
        if case_insensitive {
            core.push_str("(?i)");
        }
        let bound_begin = !(line_begin || anchored || unbound_begin);
        if line_begin {
            let _ = write!(core, r"^(?:\W{{0,2}})?(?:{regex})");
        } else {
            let _ = write!(core, "(?:{regex})");
        }
        let bound_end = !(unbound_end
            || regex.ends_with('$')
            || regex.ends_with(r"\b")
            || regex.ends_with(r"\s"));
        let full = format!(
            "{}{core}{}",
            if bound_begin { r"(?=^|\b|\W)" } else { "" },
            if bound_end { r"(?=\b|\W|$)" } else { "" }
        );
        let (translated, _) = translate(&full);
        let exact = Exact::new(&translated, &core).map_err(error)?;
        Ok(Self {
            name: display_name(pattern),
            exact,
            memo: std::cell::RefCell::default(),
            bound_begin,
            bound_end,
            line_anchored: line_begin || anchored,
            kind,
            syslog: (pattern.trim().strip_prefix("{^LN-BEG}") == Some(SYSLOG))
                .then(std::cell::RefCell::default),
        })
    }

    /// Where a date of this pattern is in `line`, and what time it says (`None` for a match
    /// that is no valid date, such as February 30).
    #[must_use]
    pub fn find(&self, line: &str, clock: &Clock) -> Option<DateMatch> {
        self.find_syslog(line, clock)
            .unwrap_or_else(|Declined| self.find_by_engines(line, clock))
    }

    /// [`DatePattern::find`] by [`syslog::read`], where it can tell.
    fn find_syslog(&self, line: &str, clock: &Clock) -> Result<Option<DateMatch>, Declined> {
        let memo = self.syslog.as_ref().ok_or(Declined)?;
        // The reader knows ASCII words only: the engines read Unicode's.
        if !line.is_ascii() {
            return Err(Declined);
        }
        // Most lines begin as the last one did, up to its minute: only the second is read.
        {
            let memo = memo.borrow();
            let bytes = line.as_bytes();
            if memo.fixed
                && memo.clock.as_ref() == Some(clock)
                && bytes
                    .get(..12)
                    .is_some_and(|start| same_bytes(start, &memo.text))
            {
                if let (Some(minute), Some(second)) = (memo.minute, syslog::fixed_second(bytes)) {
                    return Ok(Some(DateMatch {
                        start: 0,
                        end: syslog::FIXED.end,
                        time: Some(minute + i64::from(second.min(59))),
                    }));
                }
            }
        }
        let read = syslog::read(line.as_bytes()).ok_or(Declined)?;
        let spans = [read.day, read.hour, read.minute];
        let text = &line.as_bytes()[..read.minute.1];
        let mut memo = memo.borrow_mut();
        if memo.clock.as_ref() == Some(clock) && memo.spans == spans && same_bytes(&memo.text, text)
        {
            if let Some(minute) = memo.minute {
                let second = line.as_bytes()[read.second.0..read.second.1]
                    .iter()
                    .fold(0, |n, d| n * 10 + i64::from(d - b'0'));
                return Ok(Some(DateMatch {
                    start: 0,
                    end: read.end,
                    time: Some(minute + second.min(59)),
                }));
            }
        }
        let mut fields = [None; SLOTS];
        for (at, (start, end)) in [
            (at::B, read.month),
            (at::D, read.day),
            (at::H, read.hour),
            (at::MINUTE, read.minute),
            (at::S, read.second),
        ] {
            fields[at] = Some(&line[start..end]);
        }
        let found = self.interpret((0, read.end), &fields, clock);
        // The general memo now holds this minute.
        memo.text.clear();
        memo.text.extend_from_slice(text);
        memo.spans = spans;
        memo.clock = Some(*clock);
        memo.minute = self.memo.borrow().minute;
        memo.fixed = read == syslog::FIXED;
        Ok(found)
    }

    /// [`DatePattern::find`] by the engines.
    fn find_by_engines(&self, line: &str, clock: &Clock) -> Option<DateMatch> {
        let exact = &self.exact;
        if let (Some(fast), Some(locations)) = (&exact.fast, &mut *exact.locations.borrow_mut()) {
            // Without the look-aheads no match means none with them; a match whose ends
            // meet the boundaries is the one the exact pattern finds.
            fast.captures_read(locations, line)?;
            let all = locations.get(0)?;
            if (!self.bound_begin || begin_holds(line, all.0))
                && (!self.bound_end || end_holds(line, all.1))
            {
                let fields = fields_at(line, &exact.slots, |i| locations.get(i));
                return self.interpret(locations.get(1).unwrap_or(all), &fields, clock);
            }
        }
        let caps = exact.regex.captures(line).ok()??;
        let whole = caps.get(1).or_else(|| caps.get(0))?;
        let fields = SLOT_NAMES.map(|name| caps.name(name).map(|m| m.as_str()));
        self.interpret((whole.start(), whole.end()), &fields, clock)
    }

    /// The time a match says, from its span and its named groups.
    fn interpret(
        &self,
        (start, end): (usize, usize),
        fields: &Fields<'_>,
        clock: &Clock,
    ) -> Option<DateMatch> {
        if start == end {
            // The pattern allows a line without a date (`^WARNING:()**`).
            return Some(DateMatch {
                start,
                end,
                time: None,
            });
        }
        let time = match self.kind {
            Kind::Epoch { millis } => {
                let n: i64 = fields[at::EPOCH]?.parse().ok()?;
                if millis { n / 1000 } else { n }
            }
            // fail2ban reads the 15 hex digits after the leading `4` (the label's 2^62) as
            // seconds, with no TAI-UTC offset.
            Kind::Tai64n => i64::from_str_radix(fields[at::TAI]?.get(1..16)?, 16).ok()?,
            Kind::Fields => self.memo.borrow_mut().time(fields, clock)?,
        };
        Some(DateMatch {
            start,
            end,
            time: Some(time),
        })
    }
}

/// Whether `regex` has a capturing group that is not named (`(` not followed by `?`).
fn has_plain_group(regex: &str) -> bool {
    let bytes = regex.as_bytes();
    let mut escaped = false;
    for (i, b) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' => escaped = true,
            b'(' if bytes.get(i + 1) != Some(&b'?') => return true,
            _ => {}
        }
    }
    false
}

/// Replaces `%` tokens with their regular expressions.
fn expand(pattern: &str, year: i32) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len() * 4);
    let mut rest = pattern;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(r) = rest.strip_prefix('%') {
            out.push('%');
            rest = r;
            continue;
        }
        let len = if rest.starts_with("Ex") { 3 } else { 1 };
        let name = rest.get(..len).ok_or_else(|| "ends with `%`".to_string())?;
        let expansion = token(name, year).ok_or_else(|| format!("unknown token `%{name}`"))?;
        out.push_str(&expansion);
        rest = &rest[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A date found in a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateMatch {
    pub start: usize,
    pub end: usize,
    /// Seconds since the epoch; `None` when the pattern matched and took no text, which
    /// means the line has no date of its own.
    pub time: Option<i64>,
}

impl DateMatch {
    /// The line without the date, as the filter's patterns see it.
    #[must_use]
    pub fn strip(&self, line: &str) -> String {
        let mut out = String::with_capacity(line.len());
        out.push_str(&line[..self.start]);
        out.push_str(&line[self.end..]);
        out
    }
}

/// The zone of dates that do not give one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    /// The machine's local time (`TZ`, else /etc/localtime).
    Local,
    /// A fixed offset east of UTC, in minutes (`logtimezone = UTC+0200`).
    Offset(i32),
}

/// The present, and the zone for dates without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// Seconds since the epoch.
    pub now: i64,
    pub zone: Zone,
}

/// Days from 1970-01-01 to `y-m-d` (proleptic Gregorian).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `y-m-d` of a day count since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).expect("1..=31");
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).expect("1..=12");
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Hours east of UTC of common zone abbreviations (ambiguous ones, such as IST, are left
/// out and read as UTC).
const ZONES: &[(&str, i32)] = &[
    ("Z", 0),
    ("UTC", 0),
    ("GMT", 0),
    ("UT", 0),
    ("WET", 0),
    ("WEST", 1),
    ("BST", 1),
    ("CET", 1),
    ("CEST", 2),
    ("MET", 1),
    ("MEST", 2),
    ("EET", 2),
    ("EEST", 3),
    ("MSK", 3),
    ("SAST", 2),
    ("EAT", 3),
    ("GST", 4),
    ("PKT", 5),
    ("ICT", 7),
    ("WIB", 7),
    ("HKT", 8),
    ("SGT", 8),
    ("AWST", 8),
    ("JST", 9),
    ("KST", 9),
    ("ACST", 9),
    ("AEST", 10),
    ("AEDT", 11),
    ("NZST", 12),
    ("NZDT", 13),
    ("HST", -10),
    ("AKST", -9),
    ("AKDT", -8),
    ("PST", -8),
    ("PDT", -7),
    ("MST", -7),
    ("MDT", -6),
    ("CST", -6),
    ("CDT", -5),
    ("EST", -5),
    ("EDT", -4),
    ("AST", -4),
    ("ADT", -3),
    ("NST", -3),
    ("BRT", -3),
    ("ART", -3),
];

/// Offset in minutes of a zone: an abbreviation, `+hh[:]mm`, or both (`EST-05:00`).
fn zone_offset(text: &str) -> Option<i32> {
    let letters = text.len()
        - text
            .trim_start_matches(|c: char| c.is_ascii_alphabetic())
            .len();
    let (abbr, text) = text.split_at(letters);
    let base = if abbr.is_empty() {
        0
    } else {
        ZONES
            .iter()
            .find(|(n, _)| *n == abbr)
            .map_or(0, |(_, h)| h * 60)
    };
    if text.is_empty() {
        return Some(base);
    }
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = text[1..].chars().filter(char::is_ascii_digit).collect();
    let hours: i32 = digits.get(..2)?.parse().ok()?;
    let minutes: i32 = digits.get(2..4).map_or(Some(0), |m| m.parse().ok())?;
    Some(base + sign * (hours * 60 + minutes))
}

/// A wall-clock time, fields as written.
#[derive(Clone, Copy)]
struct Wall {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

/// Seconds since the epoch of a wall-clock time in `zone`.
fn to_epoch(wall: Wall, zone: Zone) -> Option<i64> {
    let seconds = days_from_civil(wall.year, wall.month, wall.day) * 86_400
        + i64::from(wall.hour * 3600 + wall.minute * 60 + wall.second);
    match zone {
        Zone::Offset(minutes) => Some(seconds - i64::from(minutes) * 60),
        Zone::Local => {
            // Zones change their offset on the hour: one `mktime` per local hour is enough,
            // and a log's lines come hour after hour. (`mktime` also re-reads the zone file
            // on every call where `TZ` is unset.)
            thread_local! {
                static HOUR: std::cell::Cell<Option<(i64, i64)>> = const { std::cell::Cell::new(None) };
            }
            let hour = seconds.div_euclid(3600);
            let within = seconds.rem_euclid(3600);
            if let Some((cached, start)) = HOUR.get() {
                if cached == hour {
                    return Some(start + within);
                }
            }
            // SAFETY: `tm` is plain data filled before the call; mktime only reads and
            // normalises it.
            let mut tm: libc::tm = unsafe { std::mem::zeroed() };
            tm.tm_year = i32::try_from(wall.year - 1900).ok()?;
            tm.tm_mon = i32::try_from(wall.month).ok()? - 1;
            tm.tm_mday = i32::try_from(wall.day).ok()?;
            tm.tm_hour = i32::try_from(wall.hour).ok()?;
            tm.tm_isdst = -1;
            // SAFETY: a valid, initialised `tm`.
            let start = unsafe { libc::mktime(&raw mut tm) };
            if start == -1 {
                return None;
            }
            HOUR.set(Some((hour, start)));
            Some(start + within)
        }
    }
}

/// The last minute a date pattern read: a log's lines come minute after minute, and within
/// one minute only the seconds change, which add to the time, unless the minute straddles a
/// point where a date without a year or day moves back a year or a day (checked by reading
/// second 0 and second 59: the rule is monotonic, so if both agree, every second does). The
/// same holds of its hour, checked by reading its first and last seconds, so that a new
/// minute of a known hour is read without the general parser too.
#[derive(Clone, Debug, Default)]
struct Memo {
    /// Every field but the seconds that the last date read had: its slot, and where its
    /// text is in `text`.
    key: Vec<(usize, (usize, usize))>,
    text: String,
    /// The clock it was read with.
    clock: Option<Clock>,
    /// The time of its second 0, when every second of the minute is that plus the second.
    minute: Option<i64>,
    /// The time of its hour's first second, when every second of the hour is that plus its
    /// minutes and seconds.
    hour: Option<i64>,
}

impl Memo {
    /// As [`fields_to_time`], reading a minute (or an hour) once.
    fn time(&mut self, fields: &Fields<'_>, clock: &Clock) -> Option<i64> {
        // (Two digits, mostly: read without the general parser.)
        let second = fields[at::S].and_then(|v| match *v.as_bytes() {
            [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
                Some(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
            }
            _ => v.trim().parse::<u32>().ok(),
        });
        let second = i64::from(second.unwrap_or(0).min(59));
        let others = fields
            .iter()
            .enumerate()
            .filter(|(at, f)| *at != at::S && f.is_some())
            .count();
        // Whether every field but the seconds is the last date's, and every one but the
        // seconds and the minute.
        let known = self.clock.as_ref() == Some(clock) && others == self.key.len();
        let (mut same_minute, mut same_hour) = (known, known);
        for &(at, (s, e)) in &self.key {
            if fields[at] != Some(&self.text[s..e]) {
                same_minute = false;
                if at != at::MINUTE {
                    same_hour = false;
                    break;
                }
            }
        }
        if same_minute {
            if let Some(minute) = self.minute {
                return Some(minute + second);
            }
            return fields_to_time(fields, clock);
        }
        self.text.clear();
        self.key.clear();
        for (at, field) in fields.iter().enumerate() {
            if let Some(field) = field.filter(|_| at != at::S) {
                self.text.push_str(field);
                self.key
                    .push((at, (self.text.len() - field.len(), self.text.len())));
            }
        }
        self.clock = Some(*clock);
        let minute_of_hour = fields[at::MINUTE]
            .and_then(|m| m.trim().parse::<i64>().ok())
            .filter(|m| (0..60).contains(m));
        if !same_hour {
            self.hour = minute_of_hour.and_then(|_| {
                let mut edges = *fields;
                (edges[at::MINUTE], edges[at::S]) = (Some("0"), Some("0"));
                let first = fields_to_time(&edges, clock)?;
                (edges[at::MINUTE], edges[at::S]) = (Some("59"), Some("59"));
                let last = fields_to_time(&edges, clock)?;
                (last == first + 3599).then_some(first)
            });
        }
        self.minute = if let (Some(hour), Some(minute)) = (self.hour, minute_of_hour) {
            Some(hour + 60 * minute)
        } else {
            let mut edges = *fields;
            edges[at::S] = Some("0");
            let first = fields_to_time(&edges, clock);
            edges[at::S] = Some("59");
            let last = fields_to_time(&edges, clock);
            match (first, last) {
                (Some(first), Some(last)) if last == first + 59 => Some(first),
                _ => None,
            }
        };
        match self.minute {
            Some(minute) => Some(minute + second),
            None => fields_to_time(fields, clock),
        }
    }
}

/// The time the fields of a match say (fail2ban's `reGroupDictStrptime`): a missing year is
/// this year (last year if that would be more than a day ahead), a missing day is today
/// (yesterday if that would be ahead).
fn fields_to_time(fields: &Fields<'_>, clock: &Clock) -> Option<i64> {
    let field = |at: usize| fields[at];
    let num = |at: usize| field(at).and_then(|v| v.trim().parse::<u32>().ok());
    let now_days = clock.now.div_euclid(86_400);
    let (now_year, now_month, now_day) = civil_from_days(now_days);
    let mut year = match (field(at::Y), field(at::Y2)) {
        (Some(y), _) => Some(y.parse::<i64>().ok()?),
        (None, Some(y)) => {
            let y: i64 = y.parse().ok()?;
            Some(if y <= 2000 { y + 2000 } else { y })
        }
        _ => None,
    };
    let assume_year = year.is_none();
    let month = num(at::MONTH).or_else(|| {
        let name = field(at::B).or_else(|| field(at::B_FULL))?;
        MONTHS
            .iter()
            .position(|m| {
                name.get(..3)
                    .is_some_and(|n| m[..3].eq_ignore_ascii_case(n))
            })
            .map(|i| u32::try_from(i + 1).expect("12"))
    });
    let day = num(at::D);
    let mut hour = num(at::H).unwrap_or(0);
    if let Some(h12) = num(at::I) {
        let pm = field(at::P).is_some_and(|p| p.eq_ignore_ascii_case("pm"));
        hour = match (h12, pm) {
            (12, false) => 0,
            (h, true) if h != 12 => h + 12,
            (h, _) => h,
        };
    }
    let minute = num(at::MINUTE).unwrap_or(0);
    let second = num(at::S).unwrap_or(0).min(59);
    let zone = match field(at::Z).or_else(|| field(at::Z_NAME)) {
        Some(z) => Zone::Offset(zone_offset(z).unwrap_or(0)),
        None => clock.zone,
    };
    let y = *year.get_or_insert(now_year);
    let (month, day, assume_today) = match (month, day) {
        (Some(m), Some(d)) => (m, d, false),
        (None, None) => (now_month, now_day, true),
        _ => return None,
    };
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(y, month)
        || hour > 23
        || minute > 59
    {
        return None;
    }
    let mut wall = Wall {
        year: y,
        month,
        day,
        hour,
        minute,
        second,
    };
    let mut time = to_epoch(wall, zone)?;
    if assume_today && time > clock.now {
        time -= 86_400;
    }
    if assume_year && time > clock.now + 86_400 {
        let last = y - 1;
        if day > days_in_month(last, month) {
            return None;
        }
        wall.year = last;
        time = to_epoch(wall, zone)?;
    }
    Some(time)
}

/// A date pattern, compiled when first needed: a log in one format never compiles most of
/// fail2ban's default templates.
#[derive(Clone, Debug)]
struct Template {
    name: String,
    source: String,
    year: i32,
    compiled: std::cell::OnceCell<DatePattern>,
}

impl Template {
    /// A pattern known to compile (a default template).
    fn lazy(source: String, year: i32) -> Self {
        Self {
            name: display_name(&source),
            source,
            year,
            compiled: std::cell::OnceCell::new(),
        }
    }

    fn compiled(pattern: DatePattern, year: i32) -> Self {
        Self {
            name: pattern.name.clone(),
            source: pattern.name.clone(),
            year,
            compiled: std::cell::OnceCell::from(pattern),
        }
    }

    fn get(&self) -> &DatePattern {
        self.compiled.get_or_init(|| {
            DatePattern::new(&self.source, self.year).expect("built-in templates compile")
        })
    }
}

/// Finds dates in lines: one `datepattern`, or fail2ban's default templates.
#[derive(Clone, Debug)]
pub struct DateDetector {
    patterns: Vec<Template>,
}

impl DateDetector {
    /// fail2ban's default templates, each anchored at the line's start first, then anywhere.
    #[must_use]
    pub fn default_templates(year: i32) -> Self {
        let mut anchored = Vec::new();
        let mut anywhere = Vec::new();
        for template in DEFAULT_TEMPLATES {
            if !template.starts_with('^')
                && !template.starts_with("{^LN-BEG}")
                && !matches!(template, "EPOCH" | "TAI64N" | "ISO8601")
            {
                anchored.push(Template::lazy(format!("{{^LN-BEG}}{template}"), year));
            }
            anywhere.push(Template::lazy((*template).to_string(), year));
        }
        anchored.extend(anywhere);
        Self { patterns: anchored }
    }

    /// A jail's `datepattern`: one pattern, or several on separate lines; `{^LN-BEG}` alone
    /// means the default templates, anchored at the line's start.
    pub fn from_datepattern(datepattern: &str, year: i32) -> Result<Self, DateError> {
        let mut patterns = Vec::new();
        let add = |patterns: &mut Vec<Template>, pattern: &str| -> Result<(), DateError> {
            patterns.push(Template::compiled(DatePattern::new(pattern, year)?, year));
            Ok(())
        };
        let mut defaults = Vec::new();
        for line in datepattern
            .split('\n')
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            if line.contains("{DATE}") {
                // Each default template in the place of `{DATE}`, without its own anchor.
                for template in DEFAULT_TEMPLATES {
                    if matches!(template, "EPOCH" | "TAI64N" | "ISO8601") {
                        continue;
                    }
                    let unbound = template.trim_start_matches("{^LN-BEG}");
                    add(&mut patterns, &line.replace("{DATE}", unbound))?;
                }
            } else if line == "{^LN-BEG}" {
                defaults.push(patterns.len());
            } else {
                add(&mut patterns, line)?;
            }
        }
        // `{^LN-BEG}`: the anchored default templates, in its place.
        for at in defaults.into_iter().rev() {
            let anchored = Self::default_templates(year)
                .patterns
                .into_iter()
                .filter(|p| p.name.starts_with("{^LN-BEG}") || p.name.starts_with('^'));
            patterns.splice(at..at, anchored);
        }
        Ok(Self { patterns })
    }

    /// The first date any pattern finds in `line`, with the pattern's name.
    #[must_use]
    pub fn find(&self, line: &str, clock: &Clock) -> Option<(DateMatch, &str)> {
        self.find_index(line, clock)
            .map(|(m, index)| (m, self.patterns[index].name.as_str()))
    }

    /// The first date any pattern finds in `line`, with the pattern's index.
    #[must_use]
    pub fn find_index(&self, line: &str, clock: &Clock) -> Option<(DateMatch, usize)> {
        self.find_after(line, clock, None)
    }

    /// As [`DateDetector::find_index`], trying first the pattern that found the last line's
    /// date (`last`): as in fail2ban, a line-anchored pattern that matches again is taken
    /// without trying the others, so a log in one format pays for one pattern per line.
    #[must_use]
    pub fn find_after(
        &self,
        line: &str,
        clock: &Clock,
        last: Option<usize>,
    ) -> Option<(DateMatch, usize)> {
        if let Some(index) = last {
            if let Some(pattern) = self
                .patterns
                .get(index)
                .map(Template::get)
                .filter(|p| p.line_anchored)
            {
                if let Some(found) = pattern.find(line, clock) {
                    return Some((found, index));
                }
            }
        }
        self.patterns
            .iter()
            .enumerate()
            .find_map(|(index, p)| p.get().find(line, clock).map(|m| (m, index)))
    }

    /// The name of the pattern at `index`.
    #[must_use]
    pub fn name(&self, index: usize) -> &str {
        &self.patterns[index].name
    }
}

/// The present the filter module's tests share.
#[cfg(test)]
pub(crate) mod fixed {
    use super::{Clock, Zone};

    /// 2026-11-21 12:00:00 UTC.
    pub const NOW: i64 = 1_795_262_400;

    /// [`NOW`], with dates without a zone read as UTC.
    pub fn utc() -> Clock {
        Clock {
            now: NOW,
            zone: Zone::Offset(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{fixed::*, *};

    /// Counts the syslog reader's `read` of `line` as answered or declined (in `counts`); an
    /// answer must be the engines'.
    fn count_and_check(
        pattern: &DatePattern,
        line: &str,
        read: &Result<Option<DateMatch>, Declined>,
        counts: &mut (usize, usize),
    ) {
        match read {
            Ok(found) => {
                counts.0 += 1;
                let engines = pattern.find_by_engines(line, &utc());
                assert_eq!(*found, engines, "{line:?}");
            }
            Err(Declined) => counts.1 += 1,
        }
    }

    #[test]
    fn the_syslog_reader_agrees_with_the_engines_wherever_it_answers() {
        let pattern = DatePattern::new(&format!("{{^LN-BEG}}{SYSLOG}"), 2026).unwrap();
        assert!(pattern.syslog.is_some());
        // Pieces near the syslog shape, to reach every choice of the expression: what may
        // come before the month, the month, day, hour, minute and second in every width the
        // expression allows or almost allows, and what may follow.
        let pieces: [&[&str]; 12] = [
            &["", "", "", "", "", "", "[", " ", "<1>", "Mon ", "sun "],
            &["Oct", "oct", "NOV", "Feb", "Dec", "Oct", "Oxt", "Mon", "Ju"],
            &[" ", " ", " ", " ", " ", "  ", ""],
            &[
                "1", " 1", " 1", "01", "21", "21", "29", "31", "30", "32", "3", "0", "00", " ",
                "9", "4x",
            ],
            &[" ", " ", " ", " ", " ", "  ", "   ", ""],
            &[
                "0", "00", "09", "19", "23", "23", "24", "29", "3", "30", "", "7",
            ],
            &[":", ":", ":", ":", ":", "::", " "],
            &["0", "00", "05", "59", "59", "60", "6", "5", ""],
            &[":", ":", ":", ":", ":", ""],
            &["7", "07", "59", "59", "60", "61", "62", "6", "", "00"],
            &[
                "", "", "", "", " ", " ", ".", ".5", ".123456", ".1234567", " 2026", " 2026x",
                " 1999", " x", "x", "1", "_", ":", "-", "\t", " \u{fc}", "9",
            ],
            &["", " host sshd[1]: x", "  y", "z"],
        ];
        let clock = utc();
        let mut counts = (0, 0);
        for line in crate::filter::generated::lines(&pieces, 0x2545_f491_4f6c_dd1d).take(100_000) {
            let read = pattern.find_syslog(&line, &clock);
            count_and_check(&pattern, &line, &read, &mut counts);
        }
        let (answered, declined) = counts;
        assert!(
            answered > 2_000 && declined > 2_000,
            "{answered} {declined}"
        );
    }

    #[test]
    fn a_line_read_from_the_last_minute_is_read_as_from_scratch() {
        let pattern = DatePattern::new(&format!("{{^LN-BEG}}{SYSLOG}"), 2026).unwrap();
        // The last line's date (of the fixed shape, or not), then a line that begins as it
        // does up to its minute, with every kind of second and ending after that.
        let pieces: [&[&str]; 4] = [
            &[
                "Oct  1 00:00",
                "Nov 21 11:59",
                "Oct 01 23:05",
                "Feb 29 09:00",
                "Oct  1 0:00",
                "Oct 1  00:00",
            ],
            &[":", ":", ":", ":", "::", " ", ""],
            &["7", "07", "59", "60", "61", "6", "", "00", "5x", "09"],
            &[
                "", " x", " x", ".5", ".1234567", " 2026", " 1999", "x", "_", ":", "-", "9", "\t",
                " \u{fc}",
            ],
        ];
        let clock = utc();
        let mut counts = (0, 0);
        // A pattern that has read nothing, copied for each line (compiling one per line
        // would take most of the test's time).
        let unused = DatePattern::new(&format!("{{^LN-BEG}}{SYSLOG}"), 2026).unwrap();
        for line in crate::filter::generated::lines(&pieces, 0x9e37_79b9_7f4a_7c15).take(20_000) {
            let last = format!("{}:00 host", &line[..line.len().min(12)]);
            let fresh = unused.clone();
            let _ = pattern.find_syslog(&last, &clock);
            let again = pattern.find_syslog(&line, &clock);
            assert_eq!(
                again.as_ref().ok(),
                fresh.find_syslog(&line, &clock).as_ref().ok(),
                "{line:?} after {last:?}"
            );
            count_and_check(&pattern, &line, &again, &mut counts);
        }
        let (answered, declined) = counts;
        assert!(
            answered > 3_000 && declined > 3_000,
            "{answered} {declined}"
        );
    }

    fn detect(line: &str) -> Option<(i64, String)> {
        let detector = DateDetector::default_templates(2026);
        detector
            .find(line, &utc())
            .and_then(|(m, _)| Some((m.time?, m.strip(line))))
    }

    #[test]
    fn every_default_template_compiles_and_keeps_its_name() {
        let detector = DateDetector::default_templates(2026);
        for template in &detector.patterns {
            let pattern = template.get();
            assert_eq!(pattern.name, template.name);
        }
    }

    #[test]
    fn calendar_arithmetic_round_trips() {
        for days in [-1, 0, 59, 60, 11_016, 20_413, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2026, 11, 21) * 86_400 + 12 * 3600, NOW);
    }

    #[test]
    fn default_templates_read_common_log_dates() {
        // syslog, no year: this year.
        let (t, rest) = detect("Nov 21 07:00:01 host sshd[1]: x").unwrap();
        assert_eq!(t, NOW - 5 * 3600 + 1);
        assert_eq!(rest, " host sshd[1]: x");
        // ISO 8601 with zone.
        let (t, _) = detect("2026-11-21T10:00:00+02:00 x").unwrap();
        assert_eq!(t, NOW - 4 * 3600);
        let (t, _) = detect("2026-11-21 12:00:00 x").unwrap();
        assert_eq!(t, NOW);
        // Apache.
        let (t, rest) =
            detect(r#"198.51.100.7 - - [21/Nov/2026:12:00:00 +0000] "GET / HTTP/1.1""#).unwrap();
        assert_eq!(t, NOW);
        assert_eq!(rest, r#"198.51.100.7 - - [] "GET / HTTP/1.1""#);
        // Brackets before a date at the line's start stay in the line.
        let (_, rest) = detect("[Thu Jul 11 01:21:41 2013] [error] x").unwrap();
        assert_eq!(rest, "[] [error] x");
        // Epoch.
        let (t, _) = detect("1795262400 x").unwrap();
        assert_eq!(t, NOW);
    }

    #[test]
    fn dates_are_read_alike_on_lines_outside_ascii() {
        // A character outside ASCII sends a syslog line past the syslog reader.
        for line in [
            "Nov 21 07:00:01 host sshd[1]: x",
            "Sat Nov 21 07:00:01.123 2026 host x",
            "2026-11-21T10:00:00+02:00 x",
            "2026-11-21 12:00:00,123 x",
            r#"198.51.100.7 - - [21/Nov/2026:12:00:00 +0000] "GET / HTTP/1.1""#,
            "[Thu Jul 11 01:21:41 2013] [error] x",
            "1795262400 x",
            "@4000000068f0f2d91c0e3a34 x",
            "21-Nov-2026 12:00:00 x",
        ] {
            let exact =
                detect(&format!("{line} \u{e9}")).map(|(t, rest)| (t, rest.replace(" \u{e9}", "")));
            assert!(exact.is_some(), "{line}");
            assert_eq!(detect(line), exact, "{line}");
        }
    }

    #[test]
    fn a_date_ahead_without_a_year_is_last_year() {
        let (t, _) = detect("Dec 25 10:00:00 host x").unwrap();
        assert_eq!(t, days_from_civil(2025, 12, 25) * 86_400 + 10 * 3600);
        // Within a day ahead still counts as this year (zones differ).
        let (t, _) = detect("Nov 22 06:00:00 host x").unwrap();
        assert_eq!(t, days_from_civil(2026, 11, 22) * 86_400 + 6 * 3600);
    }

    #[test]
    fn a_minute_read_once_gives_each_second_its_own_time() {
        let detector = DateDetector::default_templates(2026);
        let read = |line: &str| detector.find(line, &utc()).and_then(|(m, _)| m.time);
        let this_year = days_from_civil(2026, 11, 22) * 86_400 + 12 * 3600;
        let last_year = days_from_civil(2025, 11, 22) * 86_400 + 12 * 3600;
        // A day ahead to the second is this year; a second later, last year: the minute
        // straddles the edge, and each second must still land on its own side.
        for second in 0..60 {
            let time = read(&format!("Nov 22 12:00:{second:02} host x"));
            let want = if second == 0 { this_year } else { last_year } + second;
            assert_eq!(time, Some(want), "second {second}");
        }
        // An ordinary minute, seconds in any order, and a new minute after it.
        for second in [5, 59, 0, 31] {
            let time = read(&format!("Nov 21 07:01:{second:02} host x"));
            assert_eq!(time, Some(NOW - 5 * 3600 + 60 + second));
        }
        assert_eq!(read("Nov 21 07:02:03 host x"), Some(NOW - 5 * 3600 + 123));
        assert_eq!(
            read("Nov 20 07:02:03 host x"),
            Some(NOW - 86_400 - 5 * 3600 + 123)
        );
    }

    #[test]
    fn minutes_read_from_a_known_hour_are_read_as_from_scratch() {
        // The hours about a day ahead of the clock, where dates move back a year: the hour
        // 12 straddles the edge (Nov 22 12:00:00 is this year, a second later last year),
        // the others do not. Minutes and seconds in random order, as a log's need not be.
        let detector = DateDetector::default_templates(2026);
        let mut next = crate::filter::generated::xorshift(0x2545_f491_4f6c_dd1d);
        let mut straddling = 0;
        // Every template compiled (a line without a date tries them all) and nothing read,
        // copied for each line: compiling per line would take most of the test's time.
        let unused = DateDetector::default_templates(2026);
        assert!(unused.find("x", &utc()).is_none());
        for _ in 0..5_000 {
            let hour = [10, 11, 12, 12, 13][usize::try_from(next() % 5).unwrap()];
            let (minute, second) = (next() % 60, next() % 60);
            let line = format!("Nov 22 {hour:02}:{minute:02}:{second:02} host x");
            let fresh = unused.clone();
            let want = fresh.find(&line, &utc()).and_then(|(m, _)| m.time);
            assert_eq!(
                detector.find(&line, &utc()).and_then(|(m, _)| m.time),
                want,
                "{line}"
            );
            straddling += usize::from(hour == 12 && want.is_some_and(|t| t < NOW));
        }
        assert!(straddling > 100, "{straddling}");
    }

    #[test]
    fn custom_patterns_and_line_begin() {
        let clock = utc();
        let p = DatePattern::new("{^LN-BEG}%ExY-%Exm-%Exd %ExH:%ExM:%ExS", 2026).unwrap();
        assert_eq!(
            p.find("2026-11-21 12:00:00 x", &clock).unwrap().time,
            Some(NOW)
        );
        // Anchored: not in the middle of a line.
        assert!(p.find("prefix text 2026-11-21 12:00:00", &clock).is_none());
        let p = DatePattern::new("%d/%b/%Y %H:%M", 2026).unwrap();
        assert_eq!(
            p.find("at 21/NOV/2026 12:00 x", &clock).unwrap().time,
            Some(NOW)
        );
        assert!(DatePattern::new("%Q", 2026).is_err());
        // February 30th is no date.
        let p = DatePattern::new("%Y-%m-%d %H:%M:%S", 2026).unwrap();
        assert!(p.find("2026-02-30 12:00:00", &clock).is_none());
    }

    #[test]
    fn boundaries_keep_dates_out_of_words() {
        let clock = utc();
        let p = DatePattern::new("%H:%M:%S", 2026).unwrap();
        assert!(p.find("id12:00:00", &clock).is_none());
        assert!(p.find("at 12:00:00 x", &clock).is_some());
    }

    #[test]
    fn date_placeholders_and_named_zones() {
        let clock = utc();
        let d = DateDetector::from_datepattern(r"^[^\[]*\[({DATE})", 2026).unwrap();
        let line = r#"198.51.100.7 - - [21/Nov/2026:12:00:00 +0000] "GET /""#;
        let (m, _) = d.find(line, &clock).unwrap();
        assert_eq!(m.time, Some(NOW));
        assert_eq!(m.strip(line), r#"198.51.100.7 - - [] "GET /""#);
        let p = DatePattern::new("^\\[%Z %b %d %H:%M:%S\\]", 2026).unwrap();
        assert_eq!(
            p.find("[PDT Nov 21 05:00:00] x", &clock).unwrap().time,
            Some(NOW)
        );
        assert_eq!(zone_offset("EST-05:00"), Some(-600));
        assert_eq!(zone_offset("+0130"), Some(90));
    }

    #[test]
    fn tai64n_and_twelve_hour_clocks() {
        let clock = utc();
        let p = DatePattern::new("TAI64N", 2026).unwrap();
        let tai = format!("@{:016x}00000000 x", NOW + (1_i64 << 62));
        assert_eq!(p.find(&tai, &clock).unwrap().time, Some(NOW));
        let p = DatePattern::new("%b %d, %Y %I:%M:%S %p", 2026).unwrap();
        assert_eq!(
            p.find("Nov 21, 2026 12:00:00 PM x", &clock).unwrap().time,
            Some(NOW)
        );
        assert_eq!(
            p.find("Nov 21, 2026 12:00:00 AM x", &clock).unwrap().time,
            Some(NOW - 12 * 3600)
        );
    }
}
