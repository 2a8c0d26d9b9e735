//! The start of an sshd line, `host sshd[pid]: `, read without a regular expression.
//!
//! fail2ban's sshd filter splits every line with its prefregex (`SSHD_PREFREGEX`): the
//! syslog prefix (`__prefix_line`: host, daemon, pid) into `<F-MLFID>`, an optional `error: `
//! or `fatal: PAM: `, and the rest into `<F-CONTENT>`. Every part before the content is
//! optional, and the content is `.+$`, so on a line with something after its prefix the
//! expression's first path succeeds: each optional part takes what its own first successful
//! attempt takes, or nothing. [`read`] follows that path, a kernel's `kernel: [ 12.345] `
//! clock included. Where a part's attempt would need more than a glance (a
//! `<facility.level>`, a `@vserver_` prefix, a bracketed or parenthesised `sshd` or `[pid]`,
//! an `[ID ...]`), or where nothing is left for the content, it declines (`None`) and PCRE2
//! or the exact engines read the line. The tests compare it with them on generated lines.

use super::ascii::{is_space, run};

/// The sshd filter's prefregex, as fail2ban's configuration expands it (Debian's
/// fail2ban 1.0), before its tags become groups.
pub const SSHD_PREFREGEX: &str = concat!(
    r"^<F-MLFID>(?:\[\])?\s*(?:<[^.]+\.[^.]+>\s+)?(?:\S+\s+)?",
    r"(?:kernel:\s?\[ *\d+\.\d+\]:?\s+)?(?:@vserver_\S+\s+)?",
    r"(?:(?:(?:\[\d+\])?:\s+[\[\(]?sshd(?:\(\S+\))?[\]\)]?:?",
    r"|[\[\(]?sshd(?:\(\S+\))?[\]\)]?:?(?:\[\d+\])?:?)\s+)?",
    r"(?:\[ID \d+ \S+\]\s+)?</F-MLFID>(?:(?:error|fatal): (?:PAM: )?)?",
    r"<F-CONTENT>.+</F-CONTENT>$",
);

/// Where the prefregex's groups are in a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Read {
    pub mlfid: (usize, usize),
    pub content: (usize, usize),
}

/// The sshd prefregex's match in `line` (ASCII, one line), or `None` when this reader cannot
/// tell.
#[must_use]
pub fn read(line: &[u8]) -> Option<Read> {
    // Byte by byte, each choice taken on the first byte of what it looks for (`0` past the
    // end: no byte looked for is a NUL).
    let byte = |at: usize| line.get(at).copied().unwrap_or(0);
    let starts = |at: usize, text: &[u8]| line.get(at..at + text.len()) == Some(text);
    let spaces = |mut at: usize| {
        while is_space(byte(at)) {
            at += 1;
        }
        at
    };
    // `(?:\[\])?\s*`
    let mut at = spaces(if byte(0) == b'[' && byte(1) == b']' {
        2
    } else {
        0
    });
    // `(?:<[^.]+\.[^.]+>\s+)?`
    if byte(at) == b'<' {
        return None;
    }
    // `(?:\S+\s+)?`: a word and the space after it; without the space, nothing.
    let mut word = at;
    while word < line.len() && !is_space(line[word]) {
        word += 1;
    }
    if word > at && word < line.len() {
        at = spaces(word);
    }
    // `(?:kernel:\s?\[ *\d+\.\d+\]:?\s+)?`: each part has one way to match or none (what
    // one would give back, the next cannot take), so the group matches as read, or not at all.
    if byte(at) == b'k' && starts(at, b"kernel:") {
        at = kernel(line, at).unwrap_or(at);
    }
    // `(?:@vserver_\S+\s+)?`
    if byte(at) == b'@' && starts(at, b"@vserver_") {
        return None;
    }
    // The daemon: `(?:(?:\[\d+\])?:\s+[\[\(]?sshd... | [\[\(]?sshd(?:\(\S+\))?[\]\)]?:?(?:\[\d+\])?:?)\s+)?`,
    // read in its plain form `sshd`, `:`, `[pid]`, `:` and the space after.
    // A `[` or `(` that starts neither `[pid]` nor a bracketed `sshd` starts no daemon at all
    // (a kernel's `[UFW BLOCK]`, say): the group is skipped.
    match byte(at) {
        b'[' | b'(' if byte(at + 1).is_ascii_digit() || starts(at + 1, b"sshd") => return None,
        b':' => return None,
        b's' if starts(at, b"sshd") => {
            let mut end = at + 4;
            if matches!(byte(end), b'(' | b']' | b')') {
                return None;
            }
            if byte(end) == b':' {
                end += 1;
            }
            if byte(end) == b'[' {
                let mut digits = end + 1;
                while byte(digits).is_ascii_digit() {
                    digits += 1;
                }
                if digits > end + 1 && byte(digits) == b']' {
                    end = digits + 1;
                }
            }
            if byte(end) == b':' {
                end += 1;
            }
            if !is_space(byte(end)) {
                return None;
            }
            at = spaces(end);
        }
        _ => {}
    }
    // `(?:\[ID \d+ \S+\]\s+)?`
    if byte(at) == b'[' && starts(at, b"[ID ") {
        return None;
    }
    let mlfid = (0, at);
    // `(?:(?:error|fatal): (?:PAM: )?)?`
    if matches!(byte(at), b'e' | b'f') && (starts(at, b"error: ") || starts(at, b"fatal: ")) {
        at += 7;
        if starts(at, b"PAM: ") {
            at += 5;
        }
    }
    // `.+$`: something must be left, or the expression goes back on its choices.
    (at < line.len()).then_some(Read {
        mlfid,
        content: (at, line.len()),
    })
}

/// The end of `kernel:\s?\[ *\d+\.\d+\]:?\s+` at `at`, if it matches there.
fn kernel(line: &[u8], at: usize) -> Option<usize> {
    let digit = |b: u8| b.is_ascii_digit();
    let mut end = at + 7;
    if line.get(end).is_some_and(|&b| is_space(b)) {
        end += 1;
    }
    if line.get(end) != Some(&b'[') {
        return None;
    }
    let whole = run(line, run(line, end + 1, |b| b == b' '), digit);
    if whole == end + 1 || line.get(whole) != Some(&b'.') {
        return None;
    }
    let fraction = run(line, whole + 1, digit);
    if fraction == whole + 1 || line.get(fraction) != Some(&b']') {
        return None;
    }
    end = fraction + 1;
    if line.get(end) == Some(&b':') {
        end += 1;
    }
    let spaces = run(line, end, is_space);
    (spaces > end).then_some(spaces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{Filter, FilterSpec, generated, jit::Jit, pattern::Span};

    /// Pieces of lines around the usual shape, reaching every part of the expression.
    const PIECES: [&[&str]; 6] = [
        &["", "", "", "[]", "[", " ", " ", "  ", "\t"],
        &[
            "server ",
            "server ",
            "server  ",
            "",
            "<auth.info> ",
            "<a> ",
            "h\t",
            "server",
        ],
        &[
            "",
            "",
            "",
            "kernel: [ 1.5] ",
            "kernel: [ 1.5] ",
            "kernel:[12.345]: ",
            "kernel: [  0.0]:  ",
            "kernel:\t[3.14] ",
            "kernel: [1.5]",
            "kernel: [ 1.5]:",
            "kernel: [1.] ",
            "kernel: [.5] ",
            "kernel:  [1.5] ",
            "kernel: [x] ",
            "kernel: [ 1.5]x ",
            "kernel: [1.5 ",
            "kernel: [1.5x] ",
            "@vserver_x ",
            "kernel ",
            "@vserver ",
        ],
        &[
            "sshd[10028]: ",
            "sshd[10028]: ",
            "sshd: ",
            "sshd ",
            "sshd[1]:",
            "sshd[]: ",
            "sshd[x]: ",
            "sshd:[1]: ",
            "[sshd]: ",
            "(sshd) ",
            "sshd(pam)[1]: ",
            ": sshd ",
            "[1]: sshd ",
            "sshd-session[1]: ",
            "sshd]: ",
            "sshd[1]:: ",
            "",
            "",
        ],
        &[
            "",
            "",
            "",
            "[ID 123 auth.info] ",
            "[ID x] ",
            "[UFW BLOCK] ",
            "[1",
            "(x) ",
            "[",
        ],
        &[
            "Failed password",
            "Failed password",
            "error: PAM: x",
            "error: x",
            "fatal: y",
            "error: ",
            "error:",
            "PAM: z",
            "",
            " ",
            "x",
            "sshd[2]: again",
        ],
    ];

    #[test]
    fn the_reader_agrees_with_the_engines_wherever_it_answers() {
        let filter = Filter::new(&FilterSpec {
            prefregex: Some(SSHD_PREFREGEX.into()),
            failregex: vec!["x".into()],
            ..FilterSpec::default()
        })
        .unwrap();
        assert!(filter.sshd_prefix.is_some());
        let prefregex = filter.prefregex.as_ref().unwrap();
        let (mut answered, mut declined) = (0, 0);
        let (mut jit, mut exact) = (Vec::new(), Vec::new());
        let spans = |groups: &[(&str, Span)]| {
            let get = |name| groups.iter().find(|(n, _)| *n == name).map(|(_, s)| *s);
            (get("mlfid"), get("content"))
        };
        for line in generated::lines(&PIECES, 0x9e37_79b9_7f4a_7c15).take(50_000) {
            let Some(read) = read(line.as_bytes()) else {
                declined += 1;
                continue;
            };
            answered += 1;
            assert!(Jit::serves(&line));
            let found = prefregex.search_spans_in(&line, true, &mut jit).unwrap();
            assert!(found.is_some(), "{line:?}");
            assert_eq!(
                spans(&jit),
                (Some(read.mlfid), Some(read.content)),
                "JIT, {line:?}"
            );
            prefregex.search_spans_exact(&line, &mut exact).unwrap();
            assert_eq!(spans(&exact), spans(&jit), "exact, {line:?}");
        }
        assert!(
            answered > 10_000 && declined > 10_000,
            "{answered} {declined}"
        );
    }

    #[test]
    fn reads_the_usual_shapes() {
        let read = |line: &str| super::read(line.as_bytes()).map(|r| (r.mlfid.1, r.content.0));
        assert_eq!(read(" server sshd[10028]: Failed password"), Some((21, 21)));
        assert_eq!(
            read(" h sshd[1]: error: PAM: Authentication"),
            Some((12, 24))
        );
        // No host: the daemon is taken for one, as the expression's first path does.
        assert_eq!(read(" sshd[1]: Failed"), Some((10, 10)));
        assert_eq!(read(" h sshd[1]: "), None, "nothing left for the content");
        assert_eq!(read(" h [sshd]: x"), None);
        assert_eq!(read(" <auth.info> h sshd[1]: x"), None);
        // A kernel's clock is part of the prefix.
        assert_eq!(
            read(" server kernel: [ 1.50] [UFW BLOCK] IN=eth0"),
            Some((24, 24))
        );
        assert_eq!(
            read(" server kernel: [1.5]x"),
            Some((8, 8)),
            "no space: no clock"
        );
    }
}
