//! The date most logs that fail2ban reads begin with, syslog's `Oct  1 00:00:07`, read
//! without a regular expression.
//!
//! fail2ban finds it with its default template `{^LN-BEG}(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?:
//! %ExY)?`, which `date` compiles to (case-insensitive, on an ASCII line):
//!
//! ```text
//! ^(?:\W{0,2})?(?:((?:(?P<a>DAY) )?(?P<b>MON) (?P<d>[1-2]\d|[0 ]?[1-9]|3[0-1])  ?(?P<H>[0-2]?\d)
//!     :(?P<M>[0-5]?\d):(?P<S>[0-5]?\d|6[0-1])(?:\.(?P<f>[0-9]{1,6}))?(?: (?P<Y>YEAR))?))(?=\b|\W|$)
//! ```
//!
//! [`read`] tries that expression's choices in the order its backtracking does and returns
//! the first that succeeds, so its match and groups are the expression's. It reads only the
//! common shape: a line that starts with the month (no punctuation or weekday before it)
//! and has no fraction or year after the seconds. On anything else, and wherever it finds
//! no match, it declines (`None`), and the date pattern's engines read the line. The tests
//! compare it with them on generated lines.

use crate::filter::engine::ascii::is_word;

/// Where a syslog date's parts are in a line; the date itself is `0..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Read {
    pub end: usize,
    pub month: (usize, usize),
    pub day: (usize, usize),
    pub hour: (usize, usize),
    pub minute: (usize, usize),
    pub second: (usize, usize),
}

const MONTHS: [&[u8; 3]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];
const DAYS: [&[u8; 3]; 7] = [b"mon", b"tue", b"wed", b"thu", b"fri", b"sat", b"sun"];

/// Whether the three bytes at the start of `text` are one of `names`, in any case.
fn starts_with_name(text: &[u8], names: &[&[u8; 3]]) -> bool {
    text.get(..3).is_some_and(|start| {
        let lower = [
            start[0].to_ascii_lowercase(),
            start[1].to_ascii_lowercase(),
            start[2].to_ascii_lowercase(),
        ];
        names.iter().any(|name| **name == lower)
    })
}

/// The spans `[lo-hi]?\d` can take at `at`, greedy first: two digits, then one.
fn one_or_two_digits(line: &[u8], at: usize, hi: u8) -> [Option<(usize, usize)>; 2] {
    let digit = |i: usize| line.get(i).is_some_and(u8::is_ascii_digit);
    let two = (line.get(at).is_some_and(|c| (b'0'..=hi).contains(c)) && digit(at + 1))
        .then_some((at, at + 2));
    let one = digit(at).then_some((at, at + 1));
    [two, one]
}

/// The spans `[1-2]\d|[0 ]?[1-9]|3[0-1]` can take at `at`, in the alternation's order.
fn day_choices(line: &[u8], at: usize) -> [Option<(usize, usize)>; 4] {
    let byte = |i: usize| line.get(i).copied().unwrap_or(0);
    let (first, second) = (byte(at), byte(at + 1));
    [
        (matches!(first, b'1'..=b'2') && second.is_ascii_digit()).then_some((at, at + 2)),
        (matches!(first, b'0' | b' ') && matches!(second, b'1'..=b'9')).then_some((at, at + 2)),
        matches!(first, b'1'..=b'9').then_some((at, at + 1)),
        (first == b'3' && matches!(second, b'0'..=b'1')).then_some((at, at + 2)),
    ]
}

/// The spans `[0-5]?\d|6[0-1]` can take at `at`, in the alternation's order.
fn second_choices(line: &[u8], at: usize) -> [Option<(usize, usize)>; 3] {
    let [two, one] = one_or_two_digits(line, at, b'5');
    let sixty = (line.get(at) == Some(&b'6') && matches!(line.get(at + 1), Some(b'0'..=b'1')))
        .then_some((at, at + 2));
    [two, one, sixty]
}

/// The commonest shape, `Mmm dd HH:MM:SS` with two-digit fields, where the choices below
/// succeed at their first try: the day takes both its characters whichever alternative
/// reads them (`21`, ` 1`, `01`, `30`), the hour starts right after the day's space, and
/// hour, minute and second take two digits each. The month is checked by the caller.
fn read_fixed(line: &[u8]) -> Option<Read> {
    let b = line.get(..15)?;
    let digit = |c: u8| c.is_ascii_digit();
    let day = match (b[4], b[5]) {
        (b'1'..=b'2', d) => digit(d),
        (b'0' | b' ', b'1'..=b'9') | (b'3', b'0'..=b'1') => true,
        _ => false,
    };
    let fixed = day
        && b[6] == b' '
        && matches!(b[7], b'0'..=b'2')
        && digit(b[8])
        && b[9] == b':'
        && matches!(b[10], b'0'..=b'5')
        && digit(b[11]);
    (fixed && fixed_second(line).is_some()).then_some(FIXED)
}

/// [`read`]'s answer on a line of the fixed shape (see `read_fixed`).
pub const FIXED: Read = Read {
    end: 15,
    month: (0, 3),
    day: (4, 6),
    hour: (7, 9),
    minute: (10, 12),
    second: (13, 15),
};

/// The second of a line of the fixed shape, read from its bytes after the minute (12 on):
/// `:SS` and an end, with no fraction or year (see [`read`]) and no word character after
/// it. A line whose first 12 bytes are those of a line [`read`] found [`FIXED`] is
/// [`FIXED`] too exactly when this is `Some`: [`read`] looks no further.
#[must_use]
pub fn fixed_second(line: &[u8]) -> Option<u8> {
    let b = line.get(12..15)?;
    let second = b[0] == b':' && matches!(b[1], b'0'..=b'5') && b[2].is_ascii_digit();
    let next_digit = line.get(16).is_some_and(u8::is_ascii_digit);
    let ends = match line.get(15).copied() {
        None => true,
        Some(b'.' | b' ') => !next_digit,
        Some(c) => !is_word(c),
    };
    (second && ends).then(|| (b[1] - b'0') * 10 + (b[2] - b'0'))
}

/// The syslog date at the start of `line` (ASCII, one line), or `None` when this reader
/// cannot tell: then the date pattern's engines must.
#[must_use]
pub fn read(line: &[u8]) -> Option<Read> {
    let at = |i: usize| line.get(i).copied();
    // `\W{0,2}` takes nothing before a word character; the weekday group is tried first.
    if !is_word(at(0)?) || (starts_with_name(line, &DAYS) && at(3) == Some(b' ')) {
        return None;
    }
    if !starts_with_name(line, &MONTHS) || at(3) != Some(b' ') {
        return None;
    }
    if let Some(read) = read_fixed(line) {
        return Some(read);
    }
    for day in day_choices(line, 4).into_iter().flatten() {
        // The template's space, then `%k`'s optional one.
        if at(day.1) != Some(b' ') {
            continue;
        }
        for space in [1, 0] {
            if space == 1 && at(day.1 + 1) != Some(b' ') {
                continue;
            }
            let hours = one_or_two_digits(line, day.1 + 1 + space, b'2');
            for hour in hours.into_iter().flatten() {
                if at(hour.1) != Some(b':') {
                    continue;
                }
                for minute in one_or_two_digits(line, hour.1 + 1, b'5')
                    .into_iter()
                    .flatten()
                {
                    if at(minute.1) != Some(b':') {
                        continue;
                    }
                    for second in second_choices(line, minute.1 + 1).into_iter().flatten() {
                        let end = second.1;
                        // A fraction or a year may follow: too much to follow by hand.
                        if matches!(at(end), Some(b'.' | b' '))
                            && at(end + 1).is_some_and(|c| c.is_ascii_digit())
                        {
                            return None;
                        }
                        // `(?=\b|\W|$)` after a digit: the end, or no word character next.
                        if at(end).is_none_or(|c| !is_word(c)) {
                            return Some(Read {
                                end,
                                month: (0, 3),
                                day,
                                hour,
                                minute,
                                second,
                            });
                        }
                    }
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_usual_shapes() {
        let read = read(b"Oct  1 00:00:07 server sshd[1]: x").unwrap();
        assert_eq!(read.end, 15);
        assert_eq!(
            (read.day, read.hour, read.second),
            ((4, 6), (7, 9), (13, 15))
        );
        assert_eq!(super::read(b"nov 21 9:5:7").map(|r| r.end), Some(12));
        // Declined: what the reader leaves to the engines.
        for line in [
            "Mon Oct  1 00:00:07 x",
            "[Oct  1 00:00:07] x",
            "Oct  1 00:00:07.123 x",
            "Oct  1 00:00:07 2026 x",
            "Oct  1 00:00:07x",
            "2026-10-01 00:00:07 x",
        ] {
            assert_eq!(super::read(line.as_bytes()), None, "{line}");
        }
    }
}
