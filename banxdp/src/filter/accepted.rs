//! sshd's `Accepted publickey for alice from 192.0.2.1 port 22 ssh2`, read without a regular
//! expression.
//!
//! The stock sshd filter's failregex for these lines (`SSHD_ACCEPTED`) ends the connection
//! (`<F-MLFFORGET>`) and cancels its pending failures (`<F-MLFGAINED>`): on a busy server
//! one line in twenty. Its parts have one way each to match: the method `\w+` and the user
//! `\S+` must each take their whole run, since what follows them (` for `, ` from `) starts
//! with a space, which neither run can hold; `<HOST>`'s first form is read as `failed`'s
//! readers read it, and then `(?:\s|$)` must hold. Where it does not (an address followed by
//! more of a word), the engines would try `<HOST>`'s other forms: [`read`] declines, as it
//! does on brackets, `::ffff:` and names. The tests compare it with the engines on generated
//! lines.

use super::{
    ascii::{is_space, is_word, run},
    failed::address,
    hand::{Group, Read},
};

/// The stock sshd filter's failregex for `Accepted` lines, as fail2ban's configuration
/// expands it (Debian's fail2ban 1.0), before its tags become groups.
pub const SSHD_ACCEPTED: &str = r"^<F-MLFFORGET><F-MLFGAINED>Accepted \w+</F-MLFGAINED></F-MLFFORGET> for <F-USER>\S+</F-USER> from <HOST>(?:\s|$)";

/// The fixed word the pattern starts with.
const HEAD: &[u8] = b"Accepted ";

/// The match of [`SSHD_ACCEPTED`] in `text` (the prefregex's content: ASCII, one line), or
/// `None` when this reader cannot tell.
#[must_use]
pub fn read(text: &[u8]) -> Option<Read> {
    if !text.starts_with(HEAD) {
        return None;
    }
    let method = run(text, HEAD.len(), is_word);
    if method == HEAD.len() || !text[method..].starts_with(b" for ") {
        return None;
    }
    let user = method + 5;
    let user_end = run(text, user, |b| !is_space(b));
    if user_end == user || !text[user_end..].starts_with(b" from ") {
        return None;
    }
    let host = user_end + 6;
    let (end, v6) = address(text, host)?;
    // `(?:\s|$)`
    let whole = match text.get(end) {
        None => end,
        Some(&b) if is_space(b) => end + 1,
        Some(_) => return None,
    };
    Some(
        Read::new((0, whole))
            .with(Group::Mlfforget, Some((0, method)))
            .with(Group::Mlfgained, Some((0, method)))
            .with(Group::User, Some((user, user_end)))
            .address((host, end), v6),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::generated;

    /// Pieces of lines around the usual shape, reaching every part of the expression.
    const PIECES: [&[&str]; 7] = [
        &[
            "Accepted ",
            "Accepted ",
            "Accepted ",
            "Accepted ",
            "Accepted  ",
            "accepted ",
        ],
        &[
            "publickey",
            "password",
            "keyboard-interactive/pam",
            "",
            "x_1",
            "password",
        ],
        &[
            " for ", " for ", " for ", " for ", " for ", " for  ", " fr ",
        ],
        &[
            "alice", "root", "al ice", "", "from", "a\tb", "bob", "carol",
        ],
        &[
            " from ", " from ", " from ", " from ", " from ", " from  ", " frm ",
        ],
        generated::ADDRESSES,
        &[
            "",
            " port 22 ssh2",
            " port 22 ssh2: ED25519 SHA256:x",
            " port 22 ssh2",
            "\t",
            ":22",
            "x",
            ".5",
        ],
    ];

    #[test]
    fn the_reader_agrees_with_the_engines_wherever_it_answers() {
        generated::reader_agrees(
            SSHD_ACCEPTED,
            &PIECES,
            0x9e37_79b9_7f4a_7c15,
            300_000,
            10_000,
            read,
        );
    }

    #[test]
    fn reads_the_usual_shape() {
        let line = "Accepted publickey for alice from 192.0.2.1 port 22 ssh2";
        let read = super::read(line.as_bytes()).unwrap();
        assert_eq!(read.get("mlfgained"), Some((0, 18)));
        assert_eq!(read.get("user"), Some((23, 28)));
        assert_eq!(read.get("ip4"), Some((34, 43)));
        assert_eq!(
            &line[..read.whole.1],
            "Accepted publickey for alice from 192.0.2.1 "
        );
        assert_eq!(
            super::read(b"Accepted publickey for alice from 10.0.0.1x"),
            None
        );
    }
}
