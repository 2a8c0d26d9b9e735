//! sshd's `Received disconnect from 192.0.2.1 port 22:11: Bye Bye [preauth]`, read without a
//! regular expression.
//!
//! The stock sshd filter's failregex for these lines (`SSHD_RECEIVED`) marks the end of a
//! connection (`<F-MLFFORGET>`) that is no failure by itself (`<F-NOFAIL>`); it meets a
//! twentieth of an auth.log's lines. After its fixed words comes `<HOST>`, up to two
//! ` port \d+` or ` on \S+`, then `:\s*11:`, and the match ends there. [`read`] reads the
//! address as `<HOST>`'s first successful form reads it (`failed`'s readers), then the ports:
//! a port's digits cannot be given back to help (neither a space nor `:` is a digit), so they
//! are read greedily. An ` on \S+` could give back the `:11:` it swallowed, so it is not read
//! at all: a line with one is declined (no `:` follows the address or port), as is anything
//! else off the first path (brackets, `::ffff:`, a name), and the engines read it. The tests
//! compare it with them on generated lines.

use super::{
    ascii::{is_space, run},
    failed::address,
    hand::{Group, Read},
};

/// The stock sshd filter's failregex for `Received disconnect ... :11:` lines, as fail2ban's
/// configuration expands it (Debian's fail2ban 1.0), before its tags become groups.
pub const SSHD_RECEIVED: &str = concat!(
    r"^<F-NOFAIL>Received <F-MLFFORGET>disconnect</F-MLFFORGET></F-NOFAIL> from <HOST>",
    r"(?: (?:port \d+|on \S+)){0,2}:\s*11:",
);

/// The fixed words the pattern starts with.
const HEAD: &[u8] = b"Received disconnect from ";

/// The match of [`SSHD_RECEIVED`] in `text` (the prefregex's content: ASCII, one line), or
/// `None` when this reader cannot tell.
#[must_use]
pub fn read(text: &[u8]) -> Option<Read> {
    if !text.starts_with(HEAD) {
        return None;
    }
    // (A `[` or `::ffff:` before the address leaves neither reader a match, or what follows
    // unmatched.)
    let host = HEAD.len();
    let (end, v6) = address(text, host)?;
    let mut at = end;
    for _ in 0..2 {
        let digits = run(text, at + 6, |b| b.is_ascii_digit());
        if !text[at..].starts_with(b" port ") || digits == at + 6 {
            break;
        }
        at = digits;
    }
    // `:\s*11:`
    if text.get(at) != Some(&b':') {
        return None;
    }
    let number = run(text, at + 1, is_space);
    text[number..].starts_with(b"11:").then(|| {
        Read::new((0, number + 3))
            .with(Group::Nofail, Some((0, 19)))
            .with(Group::Mlfforget, Some((9, 19)))
            .address((host, end), v6)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::generated;

    /// Pieces of lines around the usual shape, reaching every part of the expression.
    const PIECES: [&[&str]; 5] = [
        &[
            "Received disconnect from ",
            "Received disconnect from ",
            "Received disconnect from  ",
            "Received disconnect by ",
        ],
        generated::ADDRESSES,
        &[
            "",
            " port 22",
            " port 22",
            " port 22 port 23",
            " port 1 port 2 port 3",
            " on eth0",
            " on eth0:11:",
            " port",
            " port x",
        ],
        &[
            ":11:", ":11:", ": 11:", ":\t11: ", ":3:", ":11", "11:", ":", "::11:", " :11:",
        ],
        &["", " Bye Bye [preauth]", " x", "1"],
    ];

    #[test]
    fn the_reader_agrees_with_the_engines_wherever_it_answers() {
        generated::reader_agrees(
            SSHD_RECEIVED,
            &PIECES,
            0x2545_f491_4f6c_dd1d,
            300_000,
            8_000,
            read,
        );
    }

    #[test]
    fn reads_the_usual_shape() {
        let line = "Received disconnect from 192.0.2.1 port 22:11: Bye Bye [preauth]";
        let read = super::read(line.as_bytes()).unwrap();
        assert_eq!(read.get("ip4"), Some((25, 34)));
        assert_eq!(
            &line[..read.whole.1],
            "Received disconnect from 192.0.2.1 port 22:11:"
        );
        assert_eq!(
            super::read(b"Received disconnect from 192.0.2.1 on x:11:"),
            None
        );
    }
}
