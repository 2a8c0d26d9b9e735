//! sshd's `Failed password for root from 192.0.2.1 port 22 ssh2`, read without a regular
//! expression.
//!
//! The stock sshd filter's failregex for these lines (`SSHD_FAILED`) is its costliest, about
//! 4,000 instructions a line in PCRE2. Its user part is `(?P<cond_user>\S+)|(?(cond_inv)
//! (?:(?! from ).)*?|[^:]+)`, and the first alternative holds only if the line goes on to a
//! `: ` (the publickey lines' `ssh2: RSA SHA256:...`). Where there is no `: ` after the
//! user, the first alternative fails whatever the rest; where there is exactly one ` from `
//! after `for `, the second alternative has one place to end; and with no second ` from `,
//! the pattern's tail `(?:(?:(?! from ).)*)$` takes whatever follows the address. Then the
//! match is the one path [`read`] follows: the method, `invalid user `, the user up to
//! ` from `, the address as the pattern's first successful form reads it (IPv4 as
//! `(?:\d{1,3}\.){3}\d{1,3}`, else IPv6 by its greedy rounds), and the rest, which the port,
//! `ssh2` and tail parts take. Anything else (a `: ` after the user, a second ` from `, a
//! name, brackets, an IPv6 form whose first path fails) it declines (`None`), and the
//! engines read the line. The tests compare it with them on generated lines.

use super::{
    ascii::{is_space, run},
    hand::{Group, Read},
    too_many,
};

/// The stock sshd filter's failregex for `Failed ... for ... from ...` lines, as fail2ban's
/// configuration expands it (Debian's fail2ban 1.0), before its tags become groups.
pub const SSHD_FAILED: &str = concat!(
    r"^Failed (?:<F-NOFAIL>publickey</F-NOFAIL>|\S+) for (?P<cond_inv>invalid user )?",
    r"<F-USER>(?P<cond_user>\S+)|(?(cond_inv)(?:(?! from ).)*?|[^:]+)</F-USER> from <HOST>",
    r"(?: (?:port \d+|on \S+)){0,2}(?: ssh\d*)?(?(cond_user): |(?:(?:(?! from ).)*)$)",
);

/// Where ` from ` occurs in `text` from `at` on. (By its `f`, which is rare in these lines:
/// `memmem`'s searchers cost more to start than such short texts take to read.)
pub(super) fn find_from(text: &[u8], at: usize) -> Option<usize> {
    let mut f = at + 1;
    loop {
        f += memchr::memchr(b'f', text.get(f..)?)?;
        if text[f - 1] == b' ' && text[f..].starts_with(b"from ") {
            return Some(f - 1);
        }
        f += 1;
    }
}

/// Where `: ` occurs in `text` from `at` on.
fn find_colon(text: &[u8], at: usize) -> Option<usize> {
    let mut colon = at;
    loop {
        colon += memchr::memchr(b':', text.get(colon..)?)?;
        if text.get(colon + 1) == Some(&b' ') {
            return Some(colon);
        }
        colon += 1;
    }
}

/// `<HOST>`'s address at `at` as its first successful form reads it: IPv4 ([`ip4`]), else
/// IPv6 ([`ip6`]); its end, and whether it is IPv6.
pub(super) fn address(text: &[u8], at: usize) -> Option<(usize, bool)> {
    match ip4(text, at) {
        Some(end) => Some((end, false)),
        None => ip6(text, at).map(|end| (end, true)),
    }
}

/// `(?:\d{1,3}\.){3}\d{1,3}` at `at`: its end, or `None` (then the engines try the other
/// forms of an address).
pub(super) fn ip4(text: &[u8], at: usize) -> Option<usize> {
    let mut at = at;
    for part in 0..4 {
        let digits = run(text, at, |b| b.is_ascii_digit());
        if digits == at {
            return None;
        }
        if part < 3 {
            // A fourth digit, or no dot after three: shorter runs end before a digit too.
            if digits - at > 3 || text.get(digits) != Some(&b'.') {
                return None;
            }
            at = digits + 1;
        } else {
            at = digits.min(at + 3);
        }
    }
    Some(at)
}

/// `(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:)` at `at`, where its first path
/// succeeds: its end; `None` where it fails or would have to go back on its choices.
pub(super) fn ip6(text: &[u8], at: usize) -> Option<usize> {
    let hex = |at: usize| run(text, at, |b| b.is_ascii_hexdigit()) - at;
    let starts = |at: usize, s: &[u8]| text.get(at..).is_some_and(|rest| rest.starts_with(s));
    let mut at = at;
    let mut rounds = 0;
    while rounds < 7 {
        // `[0-9a-fA-F]{1,4}::?`: a shorter run of a longer one is followed by a digit.
        let digits = hex(at);
        if (1..=4).contains(&digits) && starts(at + digits, b":") {
            at += digits + 1;
            if starts(at, b":") {
                at += 1;
            }
        } else if starts(at, b"::") {
            at += 2;
        } else {
            break;
        }
        rounds += 1;
    }
    if rounds == 0 {
        return None;
    }
    // `(?:[0-9a-fA-F]{1,4}|:)`
    match hex(at) {
        0 if starts(at, b":") => Some(at + 1),
        0 => None,
        digits => Some(at + digits.min(4)),
    }
}

/// The match of [`SSHD_FAILED`] in `text` (the prefregex's content: ASCII, one line), or
/// `None` when this reader cannot tell.
#[must_use]
pub fn read(text: &[u8]) -> Option<Read> {
    let starts = |at: usize, s: &[u8]| text.get(at..).is_some_and(|rest| rest.starts_with(s));
    if !starts(0, b"Failed ") {
        return None;
    }
    let mut at = 7;
    // `(?:(?P<nofail>publickey)|\S+) for `
    let mut nofail = None;
    if starts(at, b"publickey for ") {
        nofail = Some((at, at + 9));
        at += 9;
    } else {
        at = run(text, at, |b| !is_space(b));
        if at == 7 || !starts(at, b" for ") {
            return None;
        }
    }
    at += 5;
    // `(?P<cond_inv>invalid user )?`
    let mut cond_inv = None;
    if starts(at, b"invalid user ") {
        cond_inv = Some((at, at + 13));
        at += 13;
    }
    // The user: exactly one ` from ` after it, no `: ` after that for the first
    // alternative to reach, and for `[^:]+` at least one character and no `:`.
    let from = find_from(text, at)?;
    if find_colon(text, from).is_some() {
        return first_alternative(text, at, nofail, cond_inv);
    }
    if find_from(text, from + 1).is_some() {
        return None;
    }
    if cond_inv.is_none() && (from == at || text[at..from].contains(&b':')) {
        return None;
    }
    // `<HOST>`: no `[` or `::ffff:` before it; an IPv4 address, else an IPv6 one, not
    // followed by `]`.
    let host = from + 6;
    if matches!(text.get(host), Some(b'[' | b':')) {
        return None;
    }
    let (end, v6) = address(text, host)?;
    if text.get(end) == Some(&b']') {
        return None;
    }
    // `(?: (?:port \d+|on \S+)){0,2}(?: ssh\d*)?` and the tail take the rest.
    Some(
        Read::new((0, text.len()))
            .with(Group::Nofail, nofail)
            .with(Group::CondInv, cond_inv)
            .with(Group::User, Some((at, from)))
            .address((host, end), v6),
    )
}

/// The user's first alternative, `(?P<cond_user>\S+)`, at `at`, on a line that goes on to a
/// `: ` (the publickey lines' `ssh2: RSA SHA256:...`): the word there, ` from `, the address,
/// `(?: (?:port \d+|on \S+)){0,2}(?: ssh\d*)?` as their greedy first path reads them, and
/// `: ` right after. Where that path does not reach a `: `, the engines would go back on its
/// choices (an ` on x:` part giving back its colon, say), and the reader declines.
fn first_alternative(
    text: &[u8],
    at: usize,
    nofail: Option<(usize, usize)>,
    cond_inv: Option<(usize, usize)>,
) -> Option<Read> {
    let starts = |at: usize, s: &[u8]| text.get(at..).is_some_and(|rest| rest.starts_with(s));
    let word = run(text, at, |b| !is_space(b));
    if word == at || !starts(word, b" from ") {
        return None;
    }
    let host = word + 6;
    if matches!(text.get(host), Some(b'[' | b':')) {
        return None;
    }
    let (end, v6) = address(text, host)?;
    let tail = too_many::port_and_ssh(text, end);
    if !starts(tail, b": ") {
        return None;
    }
    Some(
        Read::new((0, tail + 2))
            .with(Group::Nofail, nofail)
            .with(Group::CondInv, cond_inv)
            .with(Group::CondUser, Some((at, word)))
            .with(Group::User, Some((at, word)))
            .address((host, end), v6),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::generated;

    #[test]
    fn reads_the_usual_shapes() {
        let user = |line: &str| {
            super::read(line.as_bytes()).map(|r| (r.get("user").unwrap(), r.get("ip4").unwrap()))
        };
        assert_eq!(
            user("Failed password for root from 192.0.2.1 port 22 ssh2"),
            Some(((20, 24), (30, 39)))
        );
        assert!(super::read(b"Failed password for invalid user a from 192.0.2.1").is_some());
        let v6 = super::read(b"Failed password for root from 2001:db8::1 port 22 ssh2").unwrap();
        assert_eq!(v6.get("ip6"), Some((30, 41)));
        // A line that goes on to `: `: the user's first alternative, the match ending there.
        let key = super::read(b"Failed publickey for root from 192.0.2.1 port 22 ssh2: RSA x");
        let key = key.unwrap();
        assert_eq!(key.whole, (0, 55));
        assert_eq!(key.get("cond_user"), Some((21, 25)));
        assert_eq!(key.get("nofail"), Some((7, 16)));
        for line in [
            "Failed publickey for root from 192.0.2.1 port 22 on eth0: x",
            "Failed publickey for root from 192.0.2.1 port 22 ssh2 x: y",
            "Failed password for root from 192.0.2.1 port 22 from 192.0.2.2",
            "Failed password for a:b from 192.0.2.1",
            "Failed password for  from 192.0.2.1",
        ] {
            assert_eq!(super::read(line.as_bytes()), None, "{line}");
        }
    }

    /// Pieces of generated lines: around the usual shape, reaching every choice of the pattern.
    const PIECES: [&[&str]; 9] = [
        &["Failed ", "Failed ", "Failed ", "Failed  ", "failed "],
        &[
            "password",
            "password",
            "publickey",
            "none",
            "keyboard-interactive/pam",
            "",
            "publickeyX",
            "publickey ",
        ],
        &[" for ", " for ", " for ", " for", " fo "],
        &[
            "",
            "",
            "invalid user ",
            "invalid user ",
            "invalid user",
            "illegal user ",
        ],
        &[
            "root", "guest", "root", "a b", "x:y", "", " ", "from", "a from b", "u1",
        ],
        &[" from ", " from ", " from ", " from  ", "from "],
        &[
            "198.18.1.2",
            "198.18.1.2",
            "1.2.3.4567",
            "1.2.3.45",
            "2001:db8::1",
            "[1.2.3.4]",
            "::ffff:1.2.3.4",
            "host.example",
            "1.2.3",
            "1.2.3.4]",
            "2001:db8:12:92::3",
            "2001:db8::",
            "2001:db8:",
            "fe80::1",
            "1:2:3:4:5:6:7:8:9",
            "20011:db8::1",
            "2001:12345",
            "abcd:ef",
            "2001::db8::1",
            "a:b",
            "2001:db8::1]",
            "2001:db8::g",
            "1234.1.1.1",
            "1.2.3.4x",
            "01.002.3.4",
        ],
        &[
            "",
            " port 22",
            " port 22",
            " port 22 port 23",
            " on eth0",
            " port x",
            " port 22 on x on y",
            " port",
        ],
        &[
            "",
            " ssh2",
            " ssh2",
            " ssh",
            " sshX",
            " ssh2: RSA SHA256:x",
            " ssh2: RSA SHA256:x",
            " ssh22: y",
            " ssh: ",
            " ssh2:x",
            " ssh2 : x",
            ": x",
            ":",
            " [preauth]",
            " from 1.2.3.5",
            " x",
            "x",
        ],
    ];

    #[test]
    fn the_reader_agrees_with_the_engines_wherever_it_answers() {
        generated::reader_agrees(
            SSHD_FAILED,
            &PIECES,
            0x2545_f491_4f6c_dd1d,
            100_000,
            3_000,
            read,
        );
    }
}
