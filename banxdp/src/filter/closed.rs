//! sshd's `Connection closed by authenticating user root 192.0.2.1 port 22 [preauth]`, read
//! without a regular expression.
//!
//! The stock sshd filter's failregex for these lines (`SSHD_CLOSED`) marks the end of a
//! connection that is no failure by itself; with `Received disconnect` it closes most
//! connections of an auth.log. After `Connection closed|reset` or `Disconnected` and
//! ` by|from` comes an optional ` invalid|authenticating user <F-USER>\S+|.*?</F-USER>`, then
//! ` <HOST>` and the tail `too_many` reads. [`read`] follows the first path: the user as the
//! whole run of non-spaces (a shorter one would leave no space for ` <HOST>`), the address as
//! `<HOST>`'s first successful form reads it (`failed`'s readers), then the tail to the
//! line's end. Where that path fails the engines may still find a match by another (a host
//! name, a user with spaces), so it declines (`None`), and they read the line. The tests
//! compare it with them on generated lines.

use super::{
    ascii::{is_space, run},
    failed::address,
    hand::{Group, Read},
    too_many,
};

/// The stock sshd filter's failregex for `Connection closed ...` lines, as fail2ban's
/// configuration expands it (Debian's fail2ban 1.0), before its tags become groups.
pub const SSHD_CLOSED: &str = concat!(
    r"^<F-NOFAIL><F-MLFFORGET>(Connection (?:closed|reset)|Disconnected)</F-MLFFORGET>",
    r"</F-NOFAIL> (?:by|from)(?: (?:invalid|authenticating) user <F-USER>\S+|.*?</F-USER>)? ",
    r"<HOST>(?:(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s*|\s*)$",
);

/// The match of [`SSHD_CLOSED`] in `text` (the prefregex's content: ASCII, one line), or
/// `None` when this reader cannot tell.
#[must_use]
pub fn read(text: &[u8]) -> Option<Read> {
    let words = [
        &b"Connection closed"[..],
        b"Connection reset",
        b"Disconnected",
    ]
    .into_iter()
    .find(|w| text.starts_with(w))?
    .len();
    let mut at = [&b" by"[..], b" from"]
        .into_iter()
        .find(|w| text[words..].starts_with(w))
        .map(|w| words + w.len())?;
    let mut user = None;
    if let Some(who) = [&b" invalid user "[..], b" authenticating user "]
        .into_iter()
        .find(|w| text[at..].starts_with(w))
    {
        let start = at + who.len();
        let end = run(text, start, |b| !is_space(b));
        if end == start {
            return None;
        }
        user = Some((start, end));
        at = end;
    }
    // ` <HOST>`, the first form of the address, then the tail to the end.
    if text.get(at) != Some(&b' ') {
        return None;
    }
    let host = at + 1;
    let (end, v6) = address(text, host)?;
    too_many::tail(text, end).then(|| {
        Read::new((0, text.len()))
            .with(Group::Nofail, Some((0, words)))
            .with(Group::Mlfforget, Some((0, words)))
            .with(Group::User, user)
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
            "Connection closed",
            "Connection closed",
            "Connection reset",
            "Disconnected",
            "Connection lost",
        ],
        &[" by", " by", " from", " to", ""],
        &[
            "",
            "",
            " invalid user root",
            " authenticating user bob",
            " invalid user ",
            " invalid user a b",
            " invalid user x from",
            " user root",
        ],
        &[" ", " ", " ", "  ", ""],
        generated::ADDRESSES,
        &[
            "",
            " port 22",
            " port 22 [preauth]",
            " port 22 [preauth]",
            " [preauth]",
            " on eth0",
            " port 1 port 2 port 3 port 4",
            "  ",
            " x",
            " port x",
        ],
    ];

    #[test]
    fn the_reader_agrees_with_the_engines_wherever_it_answers() {
        generated::reader_agrees(
            SSHD_CLOSED,
            &PIECES,
            0x2545_f491_4f6c_dd1d,
            300_000,
            8_000,
            read,
        );
    }

    #[test]
    fn reads_the_usual_shapes() {
        let read = |line: &str| {
            super::read(line.as_bytes()).map(|r| {
                (
                    r.get("user").map(|(s, e)| line[s..e].to_string()),
                    r.get("ip4")
                        .or(r.get("ip6"))
                        .map(|(s, e)| line[s..e].to_string())
                        .unwrap(),
                )
            })
        };
        assert_eq!(
            read("Connection closed by authenticating user bob 192.0.2.1 port 22 [preauth]"),
            Some((Some("bob".into()), "192.0.2.1".into()))
        );
        assert_eq!(
            read("Connection closed by 192.0.2.1 port 22 [preauth]"),
            Some((None, "192.0.2.1".into()))
        );
        assert_eq!(read("Connection closed by host.example port 22"), None);
    }
}
