//! sshd's `Disconnecting: Too many authentication failures for root ... [preauth]`, read
//! without a regular expression.
//!
//! The stock sshd filter's failregex for these lines (`SSHD_TOO_MANY`) has no address (the
//! connection's is taken) and a user part, `\S+|.*?`, that PCRE2 backtracks through
//! character by character: about 3,000 instructions a line. Its shape makes the match easy
//! to find by hand:
//!
//! - Its tail, `(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s*$`, has no groups, and from a
//!   given place it matches in one way or not at all: each item starts with a space and a
//!   word no other item starts with, and takes a run (digits, or all but spaces) whose end
//!   the next item or the final spaces need; giving any of it back leaves a character
//!   neither can start with. So `tail` reads it greedily.
//! - The user's first alternative, `\S+`, can end only where the tail can start, which is not
//!   inside a run of non-spaces: it holds with the whole run or not at all. Its second,
//!   `.*?`, ends at the first place from which the tail matches; the tail cannot start before
//!   the run's end either, so where the first holds the second ends at the same place, and
//!   only the second needs reading.
//! - Without ` for ` (or when both fail), the optional group is skipped and the tail must
//!   match right after the fixed words.
//!
//! [`read`] follows that order and answers for every ASCII line; the tests compare it with
//! the engines on generated lines.

use super::{
    ascii::{is_space, run},
    hand::{Group, Read},
};

/// The stock sshd filter's failregex for `Disconnecting: Too many authentication failures`,
/// as fail2ban's configuration expands it (Debian's fail2ban 1.0), before its tags become
/// groups.
pub const SSHD_TOO_MANY: &str = r"^Disconnecting: Too many authentication failures(?: for <F-USER>\S+|.*?</F-USER>)?(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s*$";

/// The fixed words the pattern starts with.
const HEAD: &[u8] = b"Disconnecting: Too many authentication failures";

/// The match of [`SSHD_TOO_MANY`] in `text` (the prefregex's content: ASCII, one line), or
/// `None` when there is none.
#[must_use]
pub fn read(text: &[u8]) -> Option<Read> {
    if !text.starts_with(HEAD) {
        return None;
    }
    let after = HEAD.len();
    let whole = (0, text.len());
    if text[after..].starts_with(b" for ") {
        let user = after + 5;
        // `\S+|.*?`: the first end from which the tail matches (see the module's text).
        if let Some(end) = first_tail(text, user) {
            return Some(Read::new(whole).with(Group::User, Some((user, end))));
        }
    }
    tail(text, after).then_some(Read::new(whole))
}

/// Whether `(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s*$` matches `text` from `at` to its
/// end.
pub(super) fn tail(text: &[u8], at: usize) -> bool {
    spaces_to_end(text, items(text, at, 3, true))
}

/// The first place from `at` on where [`tail`] matches (there is one: the text's end). The
/// tail starts with a space (an item's, or the final `\s*`) or is empty at the end, so only
/// those places are tried.
pub(super) fn first_tail(text: &[u8], at: usize) -> Option<usize> {
    (at..text.len())
        .filter(|&end| is_space(text[end]))
        .find(|&end| tail(text, end))
        .or(Some(text.len()).filter(|&end| end >= at))
}

/// Whether only spaces (`\s*$`) follow `at`.
pub(super) fn spaces_to_end(text: &[u8], at: usize) -> bool {
    text[at..].iter().all(|&b| is_space(b))
}

/// Where `(?: (?:port \d+|on \S+)){0,2}(?: ssh\d*)?`, sshd's port and protocol after an
/// address, ends from `at`, read greedily (see [`items`]).
pub(super) fn port_and_ssh(text: &[u8], at: usize) -> usize {
    let at = items(text, at, 2, false);
    if text[at..].starts_with(b" ssh") {
        run(text, at + 4, |b| b.is_ascii_digit())
    } else {
        at
    }
}

/// Where `(?: (?:port \d+|on \S+|\[preauth\])){0,most}` (without `[preauth]` unless
/// `preauth`) ends from `at`. Each item starts with a space and a word no other starts with,
/// and takes a run the next part needs the end of, so the items are read greedily: a part
/// that follows could not have started inside one.
pub(super) fn items(text: &[u8], mut at: usize, most: usize, preauth: bool) -> usize {
    for _ in 0..most {
        match item(&text[at..], preauth) {
            Some(length) => at += length,
            None => break,
        }
    }
    at
}

/// The length of one ` port \d+`, ` on \S+` or (if `preauth`) ` [preauth]` at the start of
/// `rest`.
fn item(rest: &[u8], preauth: bool) -> Option<usize> {
    let taken = |start: usize, keep: fn(u8) -> bool| {
        let end = run(rest, start, keep);
        (end > start).then_some(end)
    };
    if rest.starts_with(b" port ") {
        taken(6, |b| b.is_ascii_digit())
    } else if rest.starts_with(b" on ") {
        taken(4, |b| !is_space(b))
    } else if preauth && rest.starts_with(b" [preauth]") {
        Some(10)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{generated, jit::Jit, pattern::Compiled};

    /// Pieces of lines around the usual shape, reaching every part of the expression.
    const PIECES: [&[&str]; 5] = [
        &[
            "Disconnecting: Too many authentication failures",
            "Disconnecting: Too many authentication failures",
            "Disconnecting: Too many authentication failure",
            "Disconnecting: too many authentication failures",
        ],
        &[" for ", " for ", " for ", " for", "", " from ", " for  "],
        &[
            "root",
            "admin",
            "",
            "a b",
            "x from 192.0.2.1",
            "invalid user x",
            "port",
            "on",
            "[preauth]",
            " ",
        ],
        &[
            "",
            " from 192.0.2.1",
            " port 22",
            " port 22 ssh2",
            " from 192.0.2.1 port 22 ssh2",
            " on eth0",
            " port",
            " port x",
            " port 22x",
            " on ",
            "  [preauth]",
        ],
        &[
            "",
            " [preauth]",
            " [preauth]",
            " [preauth] ",
            " [preauth]x",
            " port 1 port 2 port 3",
            " port 1 port 2",
            " on a on b [preauth]",
            "\t",
            " ",
            " ssh2",
        ],
    ];

    #[test]
    fn the_reader_agrees_with_the_engines() {
        let pattern = Compiled::new(SSHD_TOO_MANY, "warn").unwrap();
        assert!(pattern.has_jit());
        let (mut matched, mut none) = (0, 0);
        let (mut mine, mut jit, mut exact) = (Vec::new(), Vec::new(), Vec::new());
        for line in generated::lines(&PIECES, 0x9e37_79b9_7f4a_7c15).take(100_000) {
            assert!(Jit::serves(&line));
            let read = read(line.as_bytes());
            let found = pattern.search_spans_in(&line, true, &mut jit).unwrap();
            assert_eq!(found, read.map(|r| r.whole), "JIT, {line:?}");
            let found_exact = pattern.search_spans_exact(&line, &mut exact).unwrap();
            assert_eq!(found_exact, found, "exact, {line:?}");
            let Some(read) = read else {
                none += 1;
                continue;
            };
            matched += 1;
            read.groups(pattern.names(), &mut mine);
            assert_eq!(mine, jit, "JIT, {line:?}");
            assert_eq!(mine, exact, "exact, {line:?}");
        }
        assert!(matched > 10_000 && none > 10_000, "{matched} {none}");
    }

    #[test]
    fn reads_the_usual_shapes() {
        let user = |line: &str| {
            super::read(line.as_bytes()).map(|r| r.get("user").map(|(s, e)| line[s..e].to_string()))
        };
        let head = "Disconnecting: Too many authentication failures";
        assert_eq!(
            user(&format!("{head} for root [preauth]")),
            Some(Some("root".into()))
        );
        // The user runs on to where the tail can start: fail2ban's own answer.
        assert_eq!(
            user(&format!(
                "{head} for root from 192.0.2.1 port 22 ssh2 [preauth]"
            )),
            Some(Some("root from 192.0.2.1 port 22 ssh2".into()))
        );
        assert_eq!(user(&format!("{head} [preauth]")), Some(None));
        assert_eq!(user(&format!("{head}: x")), None);
    }
}
