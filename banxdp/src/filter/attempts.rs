//! sshd's `maximum authentication attempts exceeded for root from 192.0.2.1 port 22 ssh2
//! [preauth]`, read without a regular expression.
//!
//! The stock sshd filter's failregex for these lines (`SSHD_ATTEMPTS`) takes the user as
//! `.*` up to ` from <HOST>`, then a tail of ports, `ssh2` and `[preauth]`: about 2,000
//! instructions a line in PCRE2. [`read`] takes the first ` from ` after `for `, reads the
//! address as `<HOST>`'s first successful form reads it (`failed`'s readers: IPv4, else
//! IPv6), and then the tail, which has no groups and matches from a given place in one way
//! or not at all (see `too_many::items`). When the tail reaches the line's end, this is the
//! match the engines find: the tail holds no ` from `, so that ` from ` was the last one,
//! where the greedy user tries first to end. Anything else (brackets, `::ffff:`, a name, a
//! tail that does not match after the first form of the address, which a second ` from `
//! or a `]` always makes) it declines (`None`), and the engines read the line. The tests
//! compare it with them on generated lines.

use super::{
    failed::{self, address},
    hand::{Group, Read},
    too_many::{items, port_and_ssh, spaces_to_end},
};

/// The stock sshd filter's failregex for `maximum authentication attempts exceeded` lines,
/// as fail2ban's configuration expands it (Debian's fail2ban 1.0), before its tags become
/// groups.
pub const SSHD_ATTEMPTS: &str = concat!(
    r"^maximum authentication attempts exceeded for <F-USER>.*</F-USER> from <HOST>",
    r"(?: (?:port \d+|on \S+)){0,2}(?: ssh\d*)?(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s*$",
);

/// The fixed words the pattern starts with.
const HEAD: &[u8] = b"maximum authentication attempts exceeded for ";

/// The match of [`SSHD_ATTEMPTS`] in `text` (the prefregex's content: ASCII, one line), or
/// `None` when this reader cannot tell.
#[must_use]
pub fn read(text: &[u8]) -> Option<Read> {
    if !text.starts_with(HEAD) {
        return None;
    }
    let user = HEAD.len();
    let from = failed::find_from(text, user)?;
    // (A `[` or `::ffff:` before the address leaves neither reader or the tail a match.)
    let host = from + 6;
    let (end, v6) = address(text, host)?;
    // `(?: (?:port \d+|on \S+)){0,2}(?: ssh\d*)?(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s*$`
    let at = port_and_ssh(text, end);
    spaces_to_end(text, items(text, at, 3, true)).then(|| {
        Read::new((0, text.len()))
            .with(Group::User, Some((user, from)))
            .address((host, end), v6)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::generated;

    /// Pieces of lines around the usual shape, reaching every part of the expression.
    const PIECES: [&[&str]; 6] = [
        &[
            "maximum authentication attempts exceeded for ",
            "maximum authentication attempts exceeded for ",
            "maximum authentication attempts exceeded for ",
            "maximum authentication attempts exceeded ",
        ],
        &[
            "root",
            "invalid user admin",
            "",
            "a from b",
            "x y",
            "port 22",
        ],
        &[
            " from ",
            " from ",
            " from ",
            " from  ",
            " fro ",
            "from ",
            " from x from ",
        ],
        generated::ADDRESSES,
        &[
            "",
            " port 22",
            " port 22 port 23",
            " on eth0",
            " port 22 ssh2",
            " ssh2",
            " ssh",
            " sshd",
            " ssh2x",
            " port x",
            " port 1 port 2 port 3",
        ],
        &[
            "",
            " [preauth]",
            " [preauth]",
            " port 9 [preauth]",
            " [preauth] port 1 port 2 port 3",
            " port 4 port 5 port 6",
            " port 4 port 5",
            " [preauth]x",
            "  ",
            "\t",
            " x",
            "x",
        ],
    ];

    #[test]
    fn the_reader_agrees_with_the_engines_wherever_it_answers() {
        generated::reader_agrees(
            SSHD_ATTEMPTS,
            &PIECES,
            0x2545_f491_4f6c_dd1d,
            200_000,
            8_000,
            read,
        );
    }

    #[test]
    fn reads_the_usual_shapes() {
        let read = |line: &str| {
            super::read(line.as_bytes()).map(|r| {
                (
                    r.get("user").map(|(s, e)| line[s..e].to_string()).unwrap(),
                    r.get("ip4")
                        .or(r.get("ip6"))
                        .map(|(s, e)| line[s..e].to_string())
                        .unwrap(),
                )
            })
        };
        let head = "maximum authentication attempts exceeded for";
        assert_eq!(
            read(&format!(
                "{head} root from 192.0.2.1 port 22 ssh2 [preauth]"
            )),
            Some(("root".into(), "192.0.2.1".into()))
        );
        assert_eq!(
            read(&format!(
                "{head} invalid user x from 2001:db8::1 port 22 ssh2"
            )),
            Some(("invalid user x".into(), "2001:db8::1".into()))
        );
        assert_eq!(read(&format!("{head} a from b from 192.0.2.1")), None);
        assert_eq!(read(&format!("{head} root from 192.0.2.1 x")), None);
    }
}
