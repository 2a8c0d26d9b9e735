//! What `banxdp regex` reports: every line of a log run through a scanner (date detector
//! and filter), counted (lines, matched, ignored, missed, hits per pattern and per date
//! template) and each failure listed with its line number, time, host and fields. Pure:
//! lines, filter and clock in, report out.

use std::{collections::BTreeMap, fmt::Write as _, io::Write as _};

use super::{
    Host, Scanned, Scanner,
    date::Clock,
    pattern::{Name, Value},
    tracker::Checked,
};

/// One failure found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// 1-based number of the line.
    pub line: usize,
    /// Seconds since the epoch, when the line had a date.
    pub time: Option<i64>,
    pub host: Host,
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
            mode,
            &mut |f: &Found| found.push(f.clone()),
        );
    }
    report.found = found;
    report
}

/// Reads one line (0-based `index`) into the counts, handing its failures to `sink` as they
/// are found: one step of [`run`], for callers that stream a log of any size.
#[expect(
    clippy::too_many_arguments,
    reason = "one step of `run`, with its state"
)]
pub fn count_line(
    report: &mut Report,
    index: usize,
    line: &str,
    scanner: &mut Scanner,
    clock: &Clock,
    resolve: Resolver<'_>,
    mode: Mode,
    sink: &mut dyn FnMut(&Found),
) {
    if skipped(line) {
        return;
    }
    let read = scanner.line(line, clock, mode == Mode::AllRegex);
    count_scanned(report, index, read, scanner, resolve, sink);
}

/// Whether fail2ban-regex passes over `line`: an empty line or a comment.
#[must_use]
pub fn skipped(line: &str) -> bool {
    line.is_empty() || line.starts_with('#')
}

/// Counts what `scanner` found in the line at `index` (see [`count_line`]), and gives the
/// line's room back to it.
pub fn count_scanned(
    report: &mut Report,
    index: usize,
    read: Scanned,
    scanner: &mut Scanner,
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
    let mut checked = read.checked;
    // Earlier lines that turn out part of this line's match were counted as missed.
    let released = checked.released.min(report.missed);
    report.missed -= released;
    report.matched += released;
    let ignored = checked.ignored || checked.failures.iter().any(|f| f.nofail);
    // Most lines have nothing to list, and lent no room.
    let failed = !checked.failures.is_empty()
        && list_failures(report, index, read.time, &mut checked, resolve, sink);
    if ignored {
        report.ignored += 1;
    } else if failed {
        report.matched += 1;
    } else {
        report.missed += 1;
    }
    if checked.failures.capacity() > 0 {
        scanner.give_back(checked);
    }
}

/// Counts each of a line's failures, and hands those with an address to `sink`; whether
/// any is a failure (pending, or with an address).
#[inline(never)]
fn list_failures(
    report: &mut Report,
    index: usize,
    time: Option<i64>,
    checked: &mut Checked,
    resolve: Resolver<'_>,
    sink: &mut dyn FnMut(&Found),
) -> bool {
    let mut failed = false;
    for failure in &mut checked.failures {
        if report.regex_hits.len() <= failure.regex {
            report.regex_hits.resize(failure.regex + 1, 0);
        }
        report.regex_hits[failure.regex] += 1;
        if failure.nofail {
            continue;
        }
        let resolved: Vec<Host>;
        let hosts = match (&failure.host, resolve) {
            (Some(Host::Name(name)), Some(resolve)) => {
                resolved = resolve(name)
                    .into_iter()
                    .map(|a| Host::Ip(a, None))
                    .collect();
                &resolved[..]
            }
            (Some(host), _) => std::slice::from_ref(host),
            // Pending: the connection has no address yet.
            (None, _) => &[],
        };
        // A pending failure still counts as a match, as in fail2ban-regex; a name that
        // resolves to nothing does not.
        failed |= failure.host.is_none() || !hosts.is_empty();
        let Some((first, more)) = hosts.split_first() else {
            continue;
        };
        // Every address of a name gets the failure's fields.
        let mut found = Found {
            line: index + 1,
            time,
            host: first.clone(),
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
    let mut out = Vec::with_capacity(20);
    write_iso8601(time, &mut out);
    String::from_utf8(out).expect("digits and separators")
}

/// Appends `n` in decimal.
fn push_number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `n` (below 100) in two digits.
fn push_two(out: &mut Vec<u8>, n: u64) {
    debug_assert!(n < 100);
    out.extend_from_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
}

/// Appends [`iso8601`]'s text to `out`: the date and the minute are written once per
/// minute (failures come minute after minute), the seconds each time.
fn write_iso8601(time: i64, out: &mut Vec<u8>) {
    thread_local! {
        static MINUTE: std::cell::RefCell<(i64, Vec<u8>)> =
            const { std::cell::RefCell::new((i64::MIN, Vec::new())) };
    }
    let minute = time.div_euclid(60);
    MINUTE.with_borrow_mut(|(cached, text)| {
        if *cached != minute {
            text.clear();
            write_minute(minute * 60, text);
            *cached = minute;
        }
        out.extend_from_slice(text);
    });
    push_two(out, time.rem_euclid(60).unsigned_abs());
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:` of `time`.
fn write_minute(time: i64, out: &mut Vec<u8>) {
    let days = time.div_euclid(86_400);
    let secs = time.rem_euclid(86_400).unsigned_abs();
    let (y, m, d) = super::date::civil_from_days(days);
    if y < 0 {
        out.push(b'-');
    }
    let mut digits = itoa::Buffer::new();
    let year = digits.format(y.unsigned_abs()).as_bytes();
    out.extend(std::iter::repeat_n(b'0', 4usize.saturating_sub(year.len())));
    out.extend_from_slice(year);
    for (separator, n) in [
        (b'-', u64::from(m)),
        (b'-', u64::from(d)),
        (b'T', secs / 3600),
        (b':', secs % 3600 / 60),
    ] {
        out.push(separator);
        push_two(out, n);
    }
    out.push(b':');
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

/// The host as a JSON string, appended to `out`.
fn write_host(host: &Host, out: &mut Vec<u8>) {
    match host {
        Host::Ip(std::net::IpAddr::V4(addr), None) => {
            out.push(b'"');
            write_ip4(*addr, out);
            out.push(b'"');
        }
        Host::Ip(addr, Some(cidr)) => {
            let _ = write!(out, "\"{addr}/{cidr}\"");
        }
        Host::Ip(std::net::IpAddr::V6(addr), None) => {
            out.push(b'"');
            write_ip6(addr, out);
            out.push(b'"');
        }
        Host::Name(n) | Host::Id(n) => write_json_string(n, out),
    }
}

/// A dotted quad, as `Display` writes it.
fn write_ip4(addr: std::net::Ipv4Addr, out: &mut Vec<u8>) {
    // Each octet's three bytes are put, and the place moved on by its length.
    let mut text = [0u8; 16];
    let mut at = 0;
    for octet in addr.octets() {
        let (digits, len) = OCTETS[usize::from(octet)];
        text[at..at + 3].copy_from_slice(&digits);
        at += len;
        text[at] = b'.';
        at += 1;
    }
    out.extend_from_slice(&text[..at - 1]);
}

/// Each byte in decimal: its digits (then zeros), and how many there are.
#[expect(
    clippy::cast_possible_truncation,
    reason = "digits of a number below 256"
)]
const OCTETS: [([u8; 3], usize); 256] = {
    let mut table = [([0u8; 3], 0); 256];
    let mut n = 0;
    while n < 256 {
        let (hundreds, tens, ones) = ((n / 100) as u8, (n / 10 % 10) as u8, (n % 10) as u8);
        table[n] = if n >= 100 {
            ([b'0' + hundreds, b'0' + tens, b'0' + ones], 3)
        } else if n >= 10 {
            ([b'0' + tens, b'0' + ones, 0], 2)
        } else {
            ([b'0' + ones, 0, 0], 1)
        };
        n += 1;
    }
    table
};

/// `addr` as its `Display` writes it (RFC 5952: the longest run of two zero groups or more,
/// the first of equal runs, as `::`; groups in lowercase without leading zeros; a mapped
/// IPv4 address as `::ffff:` and its dotted quad), without the formatting machinery.
fn write_ip6(addr: &std::net::Ipv6Addr, out: &mut Vec<u8>) {
    if let Some(v4) = addr.to_ipv4_mapped() {
        out.extend_from_slice(b"::ffff:");
        write_ip4(v4, out);
        return;
    }
    let segments = addr.segments();
    // The longest run of zeros: (start, length).
    let (mut longest, mut current) = ((0, 0), (0, 0));
    for (at, &segment) in segments.iter().enumerate() {
        if segment == 0 {
            if current.1 == 0 {
                current.0 = at;
            }
            current.1 += 1;
            if current.1 > longest.1 {
                longest = current;
            }
        } else {
            current = (0, 0);
        }
    }
    let groups = |out: &mut Vec<u8>, part: &[u16]| {
        for (n, &segment) in part.iter().enumerate() {
            if n > 0 {
                out.push(b':');
            }
            let digits = [
                segment >> 12,
                segment >> 8 & 0xf,
                segment >> 4 & 0xf,
                segment & 0xf,
            ];
            let first = digits.iter().position(|&d| d != 0).unwrap_or(3);
            out.extend(
                digits[first..]
                    .iter()
                    .map(|&d| b"0123456789abcdef"[usize::from(d)]),
            );
        }
    };
    if longest.1 > 1 {
        groups(out, &segments[..longest.0]);
        out.extend_from_slice(b"::");
        groups(out, &segments[longest.0 + longest.1..]);
    } else {
        groups(out, &segments);
    }
}

/// The bytes a JSON string escapes: `"`, `\` and the control characters.
const ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 32 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Whether `text` has a byte JSON escapes, read eight bytes at a time: most values have none,
/// and are copied whole.
fn needs_escape(text: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte that is zero in `x` (exact for the question "any?").
    let zeros = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let word_needs = |x: u64| {
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
        control | zeros(x ^ (ONES * u64::from(b'"'))) | zeros(x ^ (ONES * u64::from(b'\\'))) != 0
    };
    let word = |at: usize| u64::from_le_bytes(text[at..at + 8].try_into().expect("eight bytes"));
    if text.len() < 8 {
        return text.iter().any(|&b| ESCAPED[usize::from(b)]);
    }
    // Every whole word, then the last eight bytes (which may overlap the last word read).
    let mut at = 0;
    while at + 8 <= text.len() {
        if word_needs(word(at)) {
            return true;
        }
        at += 8;
    }
    at < text.len() && word_needs(word(text.len() - 8))
}

/// `text` as a JSON string, appended to `out`.
fn write_json_string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    if !needs_escape(text.as_bytes()) {
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        return;
    }
    let mut rest = text.as_bytes();
    while let Some(at) = rest.iter().position(|&b| ESCAPED[usize::from(b)]) {
        out.extend_from_slice(&rest[..at]);
        match rest[at] {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            c => {
                let _ = write!(out, "\\u{c:04x}");
            }
        }
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// One failure as a JSON object: `line`, `time` (ISO 8601, UTC), `host`, `regex` (0-based
/// index of the failregex), then every named field in the order the patterns set them.
#[must_use]
pub fn json_line(f: &Found) -> String {
    let mut out = Vec::new();
    write_json(f, &mut out);
    String::from_utf8(out).expect("JSON of UTF-8 texts")
}

/// Whether a field named `name` is written out: not an internal group (`_conn_`,
/// `skiplines0`), nor one named as a key [`write_json`] writes itself.
fn listed(name: &str) -> bool {
    match name.as_bytes().first() {
        Some(b'_') => false,
        Some(b's') => !name.starts_with("skiplines"),
        Some(b'l' | b't' | b'h' | b'r') => !matches!(name, "line" | "time" | "host" | "regex"),
        _ => true,
    }
}

/// Appends [`json_line`]'s text to `out`: written by hand, since it is written for every
/// failure of a log.
pub fn write_json(f: &Found, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"line\":");
    push_number(out, f.line as u64);
    out.extend_from_slice(b",\"time\":");
    match f.time {
        Some(time) => {
            out.push(b'"');
            write_iso8601(time, out);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"host\":");
    write_host(&f.host, out);
    out.extend_from_slice(b",\"regex\":");
    push_number(out, f.regex as u64);
    // Internal groups (`_conn_`, `skiplines0`) are the patterns' business; a field named as
    // one of the keys above, or as an earlier field, is left out.
    for (at, (name, value)) in f.fields.iter().enumerate() {
        if !listed(name) || f.fields[..at].iter().any(|(n, _)| n == name) {
            continue;
        }
        // A group's name is made of word characters (and `.`, `[`, `]` in the `regex`
        // crate's syntax): nothing JSON escapes.
        debug_assert!(!name.contains(['"', '\\']) && !name.contains(char::is_control));
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        write_json_string(value, out);
    }
    out.push(b'}');
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
    fn ipv6_addresses_are_written_as_display_writes_them() {
        let mut next = crate::filter::generated::xorshift(0x9e37_79b9_7f4a_7c15);
        let values = [0, 0, 0, 1, 0xf, 0x10, 0xdb8, 0x2001, 0xffff];
        for n in 0..100_000 {
            let mut segments =
                [0u16; 8].map(|_| crate::filter::generated::pick(&mut next, &values));
            if n % 10 == 0 {
                // Mapped and compatible IPv4 addresses.
                segments[..5].fill(0);
                segments[5] = if n % 20 == 0 { 0xffff } else { 0 };
            }
            let addr = std::net::Ipv6Addr::from(segments);
            let mut out = Vec::new();
            write_ip6(&addr, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                addr.to_string(),
                "{segments:x?}"
            );
        }
    }

    #[test]
    fn ipv4_addresses_are_written_as_display_writes_them() {
        let mut next = crate::filter::generated::xorshift(0x2545_f491_4f6c_dd1d);
        // Every octet in every place, the others at random.
        for place in 0..4 {
            for octet in 0..=255u8 {
                let mut octets = [0u8; 4].map(|_| next().to_le_bytes()[0]);
                octets[place] = octet;
                let addr = std::net::Ipv4Addr::from(octets);
                let mut out = Vec::new();
                write_ip4(addr, &mut out);
                assert_eq!(String::from_utf8(out).unwrap(), addr.to_string());
            }
        }
    }

    #[test]
    fn escapes_are_found_in_every_place_of_a_word() {
        for len in 0..20 {
            let plain = "a".repeat(len);
            assert!(!needs_escape(plain.as_bytes()));
            assert!(!needs_escape(format!("{plain}\u{e9}\u{7f} ~").as_bytes()));
            for at in 0..len {
                for byte in (0..0x20).chain([b'"', b'\\']) {
                    let mut text = plain.clone().into_bytes();
                    text[at] = byte;
                    assert!(needs_escape(&text), "{text:?}");
                }
            }
        }
        // Every byte, alone: only those JSON escapes.
        for byte in 0..=255u8 {
            assert_eq!(needs_escape(&[byte]), ESCAPED[usize::from(byte)], "{byte}");
            assert_eq!(
                needs_escape(&[b'x'; 9].map(|_| byte)),
                ESCAPED[usize::from(byte)]
            );
        }
    }

    #[test]
    fn json_reads_back_as_written() {
        let found = Found {
            line: 7,
            time: Some(1_795_262_400),
            host: Host::Id("a\"b\\c".into()),
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
        let hosts: Vec<String> = report
            .found
            .iter()
            .map(|f| {
                let mut text = Vec::new();
                write_host(&f.host, &mut text);
                serde_json::from_slice(&text).unwrap()
            })
            .collect();
        assert_eq!(hosts, ["192.0.2.1", "2001:db8::1"]);
        // Without a resolver (usedns = raw) the name stays.
        let mut scanner = Scanner::new(&spec, 2026).unwrap();
        let raw = run(log.lines(), &mut scanner, &clock, None, Mode::Daemon);
        assert_eq!(raw.matched, 2);
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
