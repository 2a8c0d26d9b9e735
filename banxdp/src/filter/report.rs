//! What `banxdp regex` reports: every line of a log run through a scanner (date detector
//! and filter), counted (lines, matched, ignored, missed, hits per pattern and per date
//! template) and each failure listed with its line number, time, host and fields. Pure:
//! lines, filter and clock in, report out.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::ser::SerializeMap as _;

use super::{
    Host, Scanned, Scanner,
    date::Clock,
    pattern::{Name, Value},
    tracker::Failure,
};

/// One failure found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// 1-based number of the line.
    pub line: usize,
    /// Seconds since the epoch, when the line had a date.
    pub time: Option<i64>,
    pub host: Host,
    /// The host as the line wrote it (for `--raw`).
    pub written: Value,
    pub regex: usize,
    pub fields: Vec<(Name, Value)>,
}

/// Counts and failures of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub lines: usize,
    pub matched: usize,
    pub ignored: usize,
    pub missed: usize,
    /// Hits per failregex index (every failregex that matched, in `Mode::AllRegex`).
    pub regex_hits: Vec<usize>,
    /// Hits per date template, by the template's index: its name and count (an empty name
    /// for a template that found nothing).
    pub date_hits: Vec<(String, usize)>,
    pub found: Vec<Found>,
}

/// Turns a host name into addresses (`usedns = yes` or `warn`); empty when it resolves to
/// nothing. `None` keeps names as they are (`usedns = raw`).
pub type Resolver<'r> = Option<&'r dyn Fn(&str) -> Vec<std::net::IpAddr>>;

/// How `run` reads a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// As the daemon (and `fail2ban-regex -o`): the first failregex that matches decides.
    Daemon,
    /// As `fail2ban-regex`'s summary: every failregex is tried and counted.
    AllRegex,
}

/// Runs every line through the scanner, as fail2ban-regex does: comment lines (`#`) and
/// empty lines are skipped; a line with an `<F-NOFAIL>` match, or whose match an
/// ignoreregex cancelled, counts as ignored; earlier lines that a multi-line match takes in
/// count as matched. A host name becomes a failure per address it resolves to; one that
/// resolves to nothing is no failure, as in fail2ban.
pub fn run<'a>(
    lines: impl Iterator<Item = &'a str>,
    scanner: &mut Scanner,
    clock: &Clock,
    resolve: Resolver<'_>,
    mode: Mode,
) -> Report {
    scanner.set_check_all(mode == Mode::AllRegex);
    let mut report = Report::default();
    let mut found = Vec::new();
    for (index, line) in lines.enumerate() {
        count_line(
            &mut report,
            index,
            line,
            scanner,
            clock,
            resolve,
            &mut |f: &Found| found.push(f.clone()),
        );
    }
    report.found = found;
    report
}

/// Reads one line (0-based `index`) into the counts, handing its failures to `sink` as they
/// are found: one step of [`run`], for callers that stream a log of any size (the scanner
/// set to the [`Mode`] wanted).
pub fn count_line(
    report: &mut Report,
    index: usize,
    line: &str,
    scanner: &mut Scanner,
    clock: &Clock,
    resolve: Resolver<'_>,
    sink: &mut dyn FnMut(&Found),
) {
    if skipped(line) {
        return;
    }
    let read = scanner.line(line, clock);
    count_scanned(report, index, read, scanner, resolve, sink);
}

/// Whether fail2ban-regex passes over `line`: an empty line or a comment.
#[must_use]
pub fn skipped(line: &str) -> bool {
    line.is_empty() || line.starts_with('#')
}

/// Counts what `scanner` found in the line at `index` (see [`count_line`]).
pub fn count_scanned(
    report: &mut Report,
    index: usize,
    mut read: Scanned,
    scanner: &Scanner,
    resolve: Resolver<'_>,
    sink: &mut dyn FnMut(&Found),
) {
    report.lines += 1;
    if let Some(template) = read.template {
        if report.date_hits.len() <= template {
            report.date_hits.resize(template + 1, (String::new(), 0));
        }
        let (name, hits) = &mut report.date_hits[template];
        if *hits == 0 {
            *name = scanner.dates().name(template).to_string();
        }
        *hits += 1;
    }
    // Earlier lines that turn out part of this line's match were counted as missed.
    let released = read.released.min(report.missed);
    report.missed -= released;
    report.matched += released;
    let ignored = read.ignored
        || read.failures.iter().any(|f| f.nofail)
        || read.pending.iter().any(|(_, nofail)| *nofail);
    // A pending failure counts as a match, as in fail2ban-regex.
    let mut failed = false;
    for &(regex, nofail) in &read.pending {
        count_hit(report, regex);
        failed |= !nofail;
    }
    failed |= list_failures(report, index, read.time, &mut read.failures, resolve, sink);
    if ignored {
        report.ignored += 1;
    } else if failed {
        report.matched += 1;
    } else {
        report.missed += 1;
    }
}

/// One more hit of the failregex `regex`.
fn count_hit(report: &mut Report, regex: usize) {
    if report.regex_hits.len() <= regex {
        report.regex_hits.resize(regex + 1, 0);
    }
    report.regex_hits[regex] += 1;
}

/// Counts each of a line's failures, and hands those with an address to `sink`; whether
/// any is a failure.
fn list_failures(
    report: &mut Report,
    index: usize,
    time: Option<i64>,
    failures: &mut [Failure],
    resolve: Resolver<'_>,
    sink: &mut dyn FnMut(&Found),
) -> bool {
    let mut failed = false;
    for failure in failures {
        count_hit(report, failure.regex);
        if failure.nofail {
            continue;
        }
        let resolved: Vec<Host>;
        let hosts = match (&failure.host, resolve) {
            (Host::Name(name), Some(resolve)) => {
                resolved = resolve(name)
                    .into_iter()
                    .map(|a| Host::Ip(a, None))
                    .collect();
                &resolved[..]
            }
            (host, _) => std::slice::from_ref(host),
        };
        // A name that resolves to nothing is no failure.
        failed |= !hosts.is_empty();
        let Some((first, more)) = hosts.split_first() else {
            continue;
        };
        // Every address of a name gets the failure's fields.
        let mut found = Found {
            line: index + 1,
            time,
            host: first.clone(),
            written: failure.raw.clone(),
            regex: failure.regex,
            fields: std::mem::take(&mut failure.fields),
        };
        sink(&found);
        for host in more {
            found.host = host.clone();
            sink(&found);
        }
        failure.fields = found.fields;
    }
    failed
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
#[must_use]
pub fn iso8601(time: i64) -> String {
    Iso8601::of(time).as_str().to_string()
}

/// A time as [`iso8601`] writes it, in place: a failure's time is written for every line
/// of `--json`, where `write!`'s padded numbers cost more than the rest of the object.
struct Iso8601([u8; 20]);

impl Iso8601 {
    fn of(time: i64) -> Self {
        let (days, secs) = (time.div_euclid(86_400), time.rem_euclid(86_400));
        let (year, month, day) = super::date::civil_from_days(days);
        let mut text = *b"0000-00-00T00:00:00Z";
        // Years outside 0..=9999 are clamped: ISO 8601 needs an agreement for them, and no
        // log line has one.
        let year = u32::try_from(year.clamp(0, 9999)).unwrap_or(0);
        let secs = u32::try_from(secs).unwrap_or(0);
        let mut put = |at: usize, width: usize, mut value: u32| {
            for place in (at..at + width).rev() {
                text[place] = b'0' + u8::try_from(value % 10).unwrap_or(0);
                value /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, secs / 3600);
        put(14, 2, secs % 3600 / 60);
        put(17, 2, secs % 60);
        Self(text)
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("digits and separators")
    }
}

/// The seconds since the epoch of a time [`iso8601`] wrote (`YYYY-MM-DDTHH:MM:SSZ`).
#[must_use]
pub fn parse_iso8601(text: &str) -> Option<i64> {
    let n = |range: std::ops::Range<usize>| text.get(range)?.parse::<u32>().ok();
    if text.len() != 20 || !text.ends_with('Z') {
        return None;
    }
    let days = super::date::days_from_civil(i64::from(n(0..4)?), n(5..7)?, n(8..10)?);
    Some(days * 86_400 + i64::from(n(11..13)? * 3600 + n(14..16)? * 60 + n(17..19)?))
}

/// Whether a field named `name` is written out: not an internal group (`_conn_`,
/// `skiplines0`), nor one named as a key the object has already.
fn listed(name: &str) -> bool {
    !name.starts_with('_')
        && !name.starts_with("skiplines")
        && !matches!(name, "line" | "time" | "host" | "regex")
}

/// A failure as `banxdp regex --json` writes it (see [`json_line`]).
struct Json<'f> {
    found: &'f Found,
    /// The host as written, not as read (`--raw`).
    raw: bool,
}

impl serde::Serialize for Json<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let f = self.found;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("line", &f.line)?;
        match f.time {
            Some(time) => map.serialize_entry("time", Iso8601::of(time).as_str())?,
            None => map.serialize_entry("time", &())?,
        }
        if self.raw || as_std_net_writes(f) {
            map.serialize_entry("host", f.written.as_str())?;
        } else if let Host::Ip(..) = f.host {
            // std::net writes the address, once, beside the object rather than through
            // serde_json's escaping writer a piece at a time.
            let mut written = Address::default();
            write!(written, "{}", f.host).expect("an address fits");
            map.serialize_entry("host", written.as_str())?;
        } else {
            map.serialize_entry("host", &Shown(&f.host))?;
        }
        map.serialize_entry("regex", &f.regex)?;
        // A field named as a key above, or as an earlier field, is left out.
        for (at, (name, value)) in f.fields.iter().enumerate() {
            if listed(name) && !f.fields[..at].iter().any(|(n, _)| n == name) {
                map.serialize_entry(name, value.as_str())?;
            }
        }
        map.end()
    }
}

/// Whether the host as the line wrote it is, to the byte, what `std::net` writes for it: an
/// IPv4 address that `std::net` reads back as the failure's address. Its parser takes only
/// the form its `Display` writes (four decimal numbers, no leading zeros), so the written
/// text can stand in for writing the address again, which costs more than the rest of the
/// object (`hosts_are_written_as_std_net_writes_them` checks both ways).
fn as_std_net_writes(f: &Found) -> bool {
    match f.host {
        Host::Ip(std::net::IpAddr::V4(addr), None) => {
            f.written.parse::<std::net::Ipv4Addr>() == Ok(addr)
        }
        _ => false,
    }
}

/// Room for an address as `std::net` writes it, with its prefix length: at most 45 bytes
/// for an IPv6 address with an IPv4 tail, and `/128`.
struct Address {
    text: [u8; 49],
    len: usize,
}

impl Default for Address {
    fn default() -> Self {
        Self {
            text: [0; 49],
            len: 0,
        }
    }
}

impl Address {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text[..self.len]).expect("written as a str")
    }
}

impl std::fmt::Write for Address {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.text
            .get_mut(self.len..end)
            .ok_or(std::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// A value serialised by its `Display`.
struct Shown<'a, T>(&'a T);

impl<T: std::fmt::Display> serde::Serialize for Shown<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self.0)
    }
}

/// One failure as a JSON object: `line`, `time` (ISO 8601, UTC), `host`, `regex` (0-based
/// index of the failregex), then every named field in the order the patterns set them.
#[must_use]
pub fn json_line(f: &Found) -> String {
    let mut out = Vec::new();
    write_json(f, false, &mut out);
    String::from_utf8(out).expect("JSON of UTF-8 texts")
}

/// Appends [`json_line`]'s text to `out`; with `raw` the host is as the line wrote it.
pub fn write_json(found: &Found, raw: bool, out: &mut Vec<u8>) {
    serde_json::to_writer(out, &Json { found, raw }).expect("JSON of texts and numbers");
}

impl Report {
    /// One JSON object per failure: `line`, `time` (ISO 8601, UTC), `host`, `regex`
    /// (0-based index of the failregex), and every named field.
    #[must_use]
    pub fn json_lines(&self) -> String {
        let mut out = String::new();
        for f in &self.found {
            out.push_str(&json_line(f));
            out.push('\n');
        }
        out
    }

    /// A summary in fail2ban-regex's manner.
    #[must_use]
    pub fn summary(&self, failregex: &[String]) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Failregex: {} total", self.matched);
        for (i, pattern) in failregex.iter().enumerate() {
            let hits = self.regex_hits.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "|  #{i:>3}) [{hits}] {pattern}");
        }
        let _ = writeln!(out, "\nDate template hits:");
        let mut by_name = BTreeMap::new();
        for (name, hits) in self.date_hits.iter().filter(|(_, hits)| *hits > 0) {
            *by_name.entry(name).or_insert(0) += hits;
        }
        for (name, hits) in by_name {
            let _ = writeln!(out, "|  [{hits}] {name}");
        }
        let _ = writeln!(
            out,
            "\nLines: {} lines, {} ignored, {} matched, {} missed",
            self.lines, self.ignored, self.matched, self.missed
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{FilterSpec, date::fixed::utc};
    use serde_json::Value as Json;

    #[test]
    fn counts_and_lists_failures_with_their_lines_and_times() {
        let mut scanner = Scanner::new(
            &FilterSpec {
                failregex: vec![
                    r"^ bad login from <HOST>$".into(),
                    r"^ denied <F-USER>\w+</F-USER> <HOST>$".into(),
                ],
                ignoreregex: vec![r"from 198\.51\.100\.99".into()],
                usedns: "no".into(),
                ..FilterSpec::default()
            },
            2026,
        )
        .unwrap();
        let clock = utc();
        let log = "2026-11-21 10:00:00 bad login from 198.51.100.7\n\
                   2026-11-21 10:00:01 all fine\n\
                   2026-11-21 10:00:02 denied bob 2001:db8::9\n\
                   2026-11-21 10:00:03 bad login from 198.51.100.99\n\
                   no date bad login";
        let report = run(log.lines(), &mut scanner, &clock, None, Mode::Daemon);
        assert_eq!(
            (report.lines, report.matched, report.ignored, report.missed),
            (5, 2, 1, 2)
        );
        assert_eq!(report.regex_hits.get(1), Some(&1));
        let json = report.json_lines();
        let first: Json = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert_eq!(first["line"], 1);
        assert_eq!(first["host"], "198.51.100.7");
        assert_eq!(first["time"], "2026-11-21T10:00:00Z");
        let second: Json = serde_json::from_str(json.lines().nth(1).unwrap()).unwrap();
        assert_eq!(
            (second["line"].as_u64(), second["user"].as_str()),
            (Some(3), Some("bob"))
        );
        assert!(
            report
                .summary(&[])
                .contains("Lines: 5 lines, 1 ignored, 2 matched, 2 missed")
        );
    }

    #[test]
    fn the_summary_counts_each_date_template_by_name() {
        let mut scanner = Scanner::new(
            &FilterSpec {
                failregex: vec![r"^ bad login from <HOST>$".into()],
                ..FilterSpec::default()
            },
            2026,
        )
        .unwrap();
        let log = "2026-11-21 10:00:00 x\n\
                   Nov 21 10:00:01 x\n\
                   2026-11-21 10:00:02 x\n\
                   no date";
        let report = run(log.lines(), &mut scanner, &utc(), None, Mode::Daemon);
        let summary = report.summary(&[]);
        let hits: Vec<&str> = summary
            .lines()
            .skip_while(|l| !l.starts_with("Date template hits:"))
            .skip(1)
            .take_while(|l| l.starts_with('|'))
            .collect();
        assert_eq!(hits.len(), 2, "{summary}");
        assert!(
            hits.iter()
                .any(|l| l.starts_with("|  [2] ") && l.contains("%m(")),
            "{summary}"
        );
        assert!(
            hits.iter()
                .any(|l| l.starts_with("|  [1] ") && l.contains("%b")),
            "{summary}"
        );
    }

    #[test]
    fn json_reads_back_as_written() {
        let found = Found {
            line: 7,
            time: Some(1_795_262_400),
            host: Host::Id("a\"b\\c".into()),
            written: "a\"b\\c".into(),
            regex: 2,
            fields: vec![
                ("user", "q\"u\\o\te\n\u{1}\u{7f}\u{e9}".into()),
                ("line", "not the line number".into()),
                ("_conn_", "internal".into()),
                ("fid", "x".into()),
                ("fid", "second".into()),
            ],
        };
        let mut object = serde_json::Map::new();
        object.insert("line".into(), 7.into());
        object.insert("time".into(), "2026-11-21T12:00:00Z".into());
        object.insert("host".into(), "a\"b\\c".into());
        object.insert("regex".into(), 2.into());
        object.insert("user".into(), "q\"u\\o\te\n\u{1}\u{7f}\u{e9}".into());
        object.insert("fid".into(), "x".into());
        let written: Json = serde_json::from_str(&json_line(&found)).unwrap();
        assert_eq!(written, Json::Object(object));
        assert!(json_line(&found).starts_with(r#"{"line":7,"time":"2026-11-21T12:00:00Z","#));
        let untimed = Found {
            time: None,
            ..found
        };
        let parsed: Json = serde_json::from_str(&json_line(&untimed)).unwrap();
        assert_eq!(parsed["time"], Json::Null);
    }

    #[test]
    fn names_become_their_addresses_or_nothing() {
        let spec = FilterSpec {
            failregex: vec![r"^ from <HOST>$".into()],
            usedns: "warn".into(),
            ..FilterSpec::default()
        };
        let clock = utc();
        let resolve = |name: &str| -> Vec<std::net::IpAddr> {
            if name == "two.example" {
                vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()]
            } else {
                Vec::new()
            }
        };
        let log = "2026-11-21 10:00:00 from two.example\n2026-11-21 10:00:01 from nowhere.example";
        let mut scanner = Scanner::new(&spec, 2026).unwrap();
        let report = run(
            log.lines(),
            &mut scanner,
            &clock,
            Some(&resolve),
            Mode::Daemon,
        );
        assert_eq!((report.matched, report.missed), (1, 1));
        let hosts: Vec<String> = report.found.iter().map(|f| f.host.to_string()).collect();
        assert_eq!(hosts, ["192.0.2.1", "2001:db8::1"]);
        // Without a resolver (usedns = raw) the name stays.
        let mut scanner = Scanner::new(&spec, 2026).unwrap();
        let raw = run(log.lines(), &mut scanner, &clock, None, Mode::Daemon);
        assert_eq!(raw.matched, 2);
    }

    #[test]
    fn raw_hosts_are_written_as_the_line_wrote_them() {
        let spec = FilterSpec {
            failregex: vec![r"^ from <HOST>$".into()],
            usedns: "no".into(),
            ..FilterSpec::default()
        };
        let mut scanner = Scanner::new(&spec, 2026).unwrap();
        let log = "2026-11-21 10:00:00 from 2001:DB8::0001";
        let report = run(log.lines(), &mut scanner, &utc(), None, Mode::Daemon);
        let host = |raw: bool| {
            let mut out = Vec::new();
            write_json(&report.found[0], raw, &mut out);
            let json: Json = serde_json::from_slice(&out).unwrap();
            json["host"].as_str().unwrap().to_string()
        };
        assert_eq!(host(false), "2001:db8::1");
        assert_eq!(host(true), "2001:DB8::0001");
    }

    #[test]
    fn an_ipv4_address_std_net_reads_is_written_as_std_net_writes_it() {
        for text in [
            "0.0.0.0",
            "192.0.2.7",
            "255.255.255.255",
            "10.0.10.100",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3",
            "1.2.3.4.5",
            "0x1.2.3.4",
            " 1.2.3.4",
            "1.2.3.256",
            "+1.2.3.4",
        ] {
            if let Ok(addr) = text.parse::<std::net::Ipv4Addr>() {
                assert_eq!(addr.to_string(), text);
            }
        }
        for octets in [[0, 0, 0, 0], [1, 20, 255, 9], [100, 0, 1, 10]] {
            let addr = std::net::Ipv4Addr::from(octets);
            assert_eq!(addr.to_string().parse(), Ok(addr));
        }
        // A name resolved to an address: written as its name, so the address is written.
        let resolved = Found {
            line: 1,
            time: None,
            host: Host::Ip("192.0.2.9".parse().unwrap(), None),
            written: "mail.example.org".into(),
            regex: 0,
            fields: Vec::new(),
        };
        let parsed: Json = serde_json::from_str(&json_line(&resolved)).unwrap();
        assert_eq!(parsed["host"], Json::from("192.0.2.9"));
    }

    #[test]
    fn hosts_are_written_as_std_net_writes_them() {
        for (host, text) in [
            (
                Host::Ip(
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
                    Some(128),
                ),
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
            ),
            (
                Host::Ip("::ffff:192.0.2.7".parse().unwrap(), None),
                "::ffff:192.0.2.7",
            ),
            (
                Host::Ip("192.0.2.255".parse().unwrap(), Some(24)),
                "192.0.2.255/24",
            ),
        ] {
            assert_eq!(host.to_string(), text);
            let found = Found {
                line: 1,
                time: Some(-1),
                host,
                written: "as written".into(),
                regex: 0,
                fields: Vec::new(),
            };
            let parsed: Json = serde_json::from_str(&json_line(&found)).unwrap();
            assert_eq!(parsed["host"], Json::from(text));
            assert_eq!(parsed["time"], Json::from("1969-12-31T23:59:59Z"));
        }
    }

    #[test]
    fn iso8601_is_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_795_262_400), "2026-11-21T12:00:00Z");
        for time in [0, 951_782_400, 1_795_262_400, 1_795_262_399] {
            assert_eq!(parse_iso8601(&iso8601(time)), Some(time));
        }
        assert_eq!(parse_iso8601("2026-11-21 12:00:00"), None);
    }
}
