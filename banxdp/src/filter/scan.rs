//! A filter at work on a log, line after line, as fail2ban's `processLine` runs it: the
//! date found and cut out of each line, the rest given to the filter with what earlier lines
//! left (failure ids, a multi-line buffer). A line without a date of its own takes the last
//! date seen, when that is less than a minute old. Pure: lines and a clock in, failures out.
//!
//! The daemon's entry point, one scanner per jail:
//!
//! ```
//! use banxdp::filter::{FilterSpec, Host, Scanner, date::{Clock, Zone}};
//!
//! let spec = FilterSpec {
//!     failregex: vec![r"^ denied <F-USER>\w+</F-USER> from <HOST>$".into()],
//!     ..FilterSpec::default()
//! };
//! let mut scanner = Scanner::new(&spec, 2026).unwrap();
//! let clock = Clock { now: 1_795_262_400, zone: Zone::Offset(0) };
//! let scanned = scanner.line("2026-11-21 11:59:00 denied bob from 192.0.2.7", &clock);
//! assert_eq!(scanned.time, Some(1_795_262_340));
//! let failure = &scanned.failures[0];
//! assert_eq!(failure.host, Host::Ip("192.0.2.7".parse().unwrap(), None));
//! assert_eq!(failure.field("user"), Some("bob"));
//! assert!(!failure.nofail);
//! ```
//!
//! `banxdp regex` reads the same way, with every failregex tried ([`Scanner::set_check_all`]),
//! and on several threads through `prepare`/`finish` (see `crate::source::bulk`).

use super::{
    Filter, FilterSpec,
    date::{Clock, DateDetector, DateError, DateMatch},
    matcher::FilterError,
    pattern::Span,
    tracker::{Checked, Failure, Found, Searched, Tracker},
};

/// A filter whose patterns or date patterns do not compile.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("datepattern: {0}")]
    Date(#[from] DateError),
}

/// What one line gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scanned {
    /// The line's time: its own date, else the last one (see the module's text).
    pub time: Option<i64>,
    /// Index of the date pattern that found the line's date.
    pub template: Option<usize>,
    /// The failures the line completes, each with its host (an `<F-NOFAIL>` match is one
    /// with `nofail` set: known, but no failure to count).
    pub failures: Vec<Failure>,
    /// Matches still without an address (with every failregex tried only): their
    /// failregex and whether each was `<F-NOFAIL>`.
    pub pending: Vec<(usize, bool)>,
    /// An ignoreregex cancelled a match.
    pub ignored: bool,
    /// Earlier lines of a multi-line buffer that this line's match took in.
    pub released: usize,
}

impl Scanned {
    fn new(time: Option<i64>, template: Option<usize>, checked: Checked) -> Self {
        let Checked {
            failures,
            pending,
            ignored,
            released,
        } = checked;
        Self {
            time,
            template,
            failures,
            pending,
            ignored,
            released,
        }
    }
}

/// A line read as far as it can be by itself (see [`Scanner::prepare`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// The date found, and the index of the pattern that found it.
    date: Option<(DateMatch, usize)>,
    stage: Stage,
}

impl Prepared {
    /// The date pattern that found the line's date.
    #[must_use]
    pub fn template(&self) -> Option<usize> {
        self.date.as_ref().map(|(_, index)| *index)
    }
}

/// How far a prepared line got.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Stage {
    /// A one-line filter's patterns were searched.
    Searched(Searched),
    /// A multi-line filter's patterns search the buffer, which only the finishing scanner
    /// has: the line without its date waits for it, kept in the [`Found`].
    Buffered(Span),
}

/// One filter's reading of one stream of lines (fail2ban keeps one per jail).
#[derive(Clone, Debug)]
pub struct Scanner {
    filter: Filter,
    dates: DateDetector,
    tracker: Tracker,
    last_date: Option<i64>,
    /// The date pattern that found the last date.
    last_template: Option<usize>,
    /// The current line without its date.
    text: String,
    /// Room for what [`Scanner::line`] finds.
    found: Found,
    /// Every failregex is tried, as fail2ban-regex's summary counts them; otherwise the
    /// first that matches decides, as in the daemon.
    check_all: bool,
}

/// How old the last date may be for a line without one to take it, in seconds.
const LAST_DATE_AGE: i64 = 60;

impl Scanner {
    /// Compiles `spec`; `year` is the present year, which bounds `%ExY` in date patterns.
    pub fn new(spec: &FilterSpec, year: i32) -> Result<Self, ScanError> {
        let filter = Filter::new(spec)?;
        let dates = match &spec.datepattern {
            Some(pattern) => DateDetector::from_datepattern(pattern, year)?,
            None => DateDetector::default_templates(year),
        };
        Ok(Self::with_parts(filter, dates))
    }

    #[must_use]
    pub fn with_parts(filter: Filter, dates: DateDetector) -> Self {
        Self {
            filter,
            dates,
            tracker: Tracker::default(),
            last_date: None,
            last_template: None,
            text: String::new(),
            found: Found::default(),
            check_all: false,
        }
    }

    /// Tries every failregex on each line, as fail2ban-regex's summary counts them (and
    /// fail2ban's tests run filters), instead of the first that matches.
    pub fn set_check_all(&mut self, check_all: bool) {
        self.check_all = check_all;
    }

    #[must_use]
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    #[must_use]
    pub fn dates(&self) -> &DateDetector {
        &self.dates
    }

    /// Reads one line of a log, `clock` giving the present (which dates without a year and
    /// the age of remembered connections are read by).
    pub fn line(&mut self, line: &str, clock: &Clock) -> Scanned {
        let mut found = std::mem::take(&mut self.found);
        found.clear();
        let prepared = self.prepare(line, clock, &mut found);
        let scanned = self.finish(&prepared, &mut found, clock);
        self.found = found;
        scanned
    }

    /// The first half of [`Scanner::line`]: what the line says by itself. Its date is found
    /// (which depends only on the date pattern that found the last line's, see
    /// [`Scanner::date_order`]) and cut out, and a one-line filter's patterns searched. Lines
    /// prepared by copies of this scanner, each from its own point of the log, are finished
    /// by one, in order. What it finds goes to `found`, which [`Scanner::finish`] reads.
    pub fn prepare(&mut self, line: &str, clock: &Clock, found: &mut Found) -> Prepared {
        let check_all = self.check_all;
        let date = self.dates.find_after(line, clock, self.last_template);
        // The line without its date: a part of it when the date starts it.
        let mut joined = std::mem::take(&mut self.text);
        joined.clear();
        let text = match &date {
            Some((m, _)) if m.start == 0 => &line[m.end..],
            Some((m, _)) => {
                joined.push_str(&line[..m.start]);
                joined.push_str(&line[m.end..]);
                &joined
            }
            None => line,
        };
        if let Some((_, index)) = &date {
            self.last_template = Some(*index);
        }
        let stage = if self.filter.maxlines() <= 1 {
            Stage::Searched(self.tracker.search(&self.filter, text, check_all, found))
        } else {
            Stage::Buffered(found.push_text(text))
        };
        self.text = joined;
        Prepared { date, stage }
    }

    /// The second half of [`Scanner::line`]: a prepared line, merged with what earlier lines
    /// left (the last date, connections, the multi-line buffer). Each prepared line is
    /// finished once: its fields are taken out of `found`.
    pub fn finish(&mut self, prepared: &Prepared, found: &mut Found, clock: &Clock) -> Scanned {
        let check_all = self.check_all;
        let recent = self.last_date.filter(|d| *d > clock.now - LAST_DATE_AGE);
        let (time, template) = match prepared.date {
            Some((m, index)) => {
                self.last_template = Some(index);
                if let Some(time) = m.time {
                    self.last_date = Some(time);
                    (Some(time), Some(index))
                } else {
                    // A pattern that allows no date: the last one, else now.
                    (recent.or(Some(clock.now)), Some(index))
                }
            }
            None => (recent, None),
        };
        self.tracker.set_now(clock.now);
        let checked = match &prepared.stage {
            Stage::Searched(searched) => self.tracker.apply(searched, found, check_all),
            Stage::Buffered(text) => self
                .tracker
                .check(&self.filter, found.text(*text), check_all),
        };
        Scanned::new(time, template, checked)
    }

    /// The date pattern that found the last date, which is tried first on the next line:
    /// the one state that [`Scanner::prepare`] depends on.
    #[must_use]
    pub fn date_order(&self) -> Option<usize> {
        self.last_template
    }

    /// Sets what [`Scanner::date_order`] returns.
    pub fn set_date_order(&mut self, last: Option<usize>) {
        self.last_template = last;
    }

    /// Reads one line whose time is known apart from its text (the journal's).
    /// Connections age by these times, which for a journal read as it is written are the
    /// present.
    pub fn timed_line(&mut self, line: &str, time: i64) -> Scanned {
        self.last_date = Some(time);
        self.tracker.set_now(time);
        let checked = self.tracker.check(&self.filter, line, self.check_all);
        Scanned::new(Some(time), None, checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{
        Host,
        date::fixed::{NOW, utc as clock},
    };

    fn hosts(scanned: &Scanned) -> Vec<String> {
        scanned
            .failures
            .iter()
            .filter_map(|f| match &f.host {
                Host::Ip(a, _) => Some(a.to_string()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_failure_spanning_lines_is_found_on_its_last_line_and_leaves_the_buffer() {
        let spec = FilterSpec {
            failregex: vec![
                r"^ \[c(?P<c>\d+)\] denied<SKIPLINES> \[c(?P=c)\] closed <HOST>$".into(),
            ],
            maxlines: 5,
            ..FilterSpec::default()
        };
        let mut scanner = Scanner::new(&spec, 2026).unwrap();
        let log = [
            "2026-11-21 11:59:50 [c1] denied",
            "2026-11-21 11:59:51 [c2] denied",
            "2026-11-21 11:59:52 [c9] unrelated",
            "2026-11-21 11:59:53 [c1] closed 192.0.2.1",
            "2026-11-21 11:59:54 [c2] closed 192.0.2.2",
            // c1's lines left the buffer with its failure: this finds nothing to pair with.
            "2026-11-21 11:59:55 [c1] closed 192.0.2.3",
        ];
        let found: Vec<(Vec<String>, Option<i64>)> = log
            .iter()
            .map(|l| {
                let s = scanner.line(l, &clock());
                (hosts(&s), s.time)
            })
            .collect();
        let none: Vec<String> = Vec::new();
        assert_eq!(found[0].0, none);
        assert_eq!(found[3], (vec!["192.0.2.1".to_string()], Some(NOW - 7)));
        assert_eq!(
            found[4].0,
            ["192.0.2.2"],
            "the skipped line stayed buffered"
        );
        assert_eq!(found[5].0, none);
        // The failure's lines are its attempts; the skipped lines are not.
        let mut scanner = Scanner::new(&spec, 2026).unwrap();
        let last = log[..4]
            .iter()
            .map(|l| scanner.line(l, &clock()))
            .last()
            .unwrap();
        assert_eq!(last.failures[0].attempts, 2);
    }

    #[test]
    fn a_line_without_a_date_takes_the_last_recent_one() {
        let spec = FilterSpec {
            failregex: vec![r"^WARNING: denied <HOST>$".into()],
            maxlines: 1,
            datepattern: Some("^%Y-%m-%d %H:%M:%S\n^WARNING:()**".into()),
            ..FilterSpec::default()
        };
        let mut scanner = Scanner::new(&spec, 2026).unwrap();
        scanner.line("2026-11-21 11:59:30 starting", &clock());
        let recent = scanner.line("WARNING: denied 192.0.2.7", &clock());
        assert_eq!(
            (hosts(&recent), recent.time),
            (vec!["192.0.2.7".into()], Some(NOW - 30))
        );
        // A date older than a minute is not carried: the line happens now.
        scanner.line("2026-11-21 11:58:00 starting", &clock());
        let late = scanner.line("WARNING: denied 192.0.2.7", &clock());
        assert_eq!(late.time, Some(NOW));
    }
}
