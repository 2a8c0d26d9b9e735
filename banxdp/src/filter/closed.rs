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
    failed::{address, address_group},
    pattern::{Name, Span},
    too_many,
};

/// The stock sshd filter's failregex for `Connection closed ...` lines, as fail2ban's
/// configuration expands it (Debian's fail2ban 1.0), before its tags become groups.
pub const SSHD_CLOSED: &str = concat!(
    r"^<F-NOFAIL><F-MLFFORGET>(Connection (?:closed|reset)|Disconnected)</F-MLFFORGET>",
    r"</F-NOFAIL> (?:by|from)(?: (?:invalid|authenticating) user <F-USER>\S+|.*?</F-USER>)? ",
    r"<HOST>(?:(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s*|\s*)$",
);

/// The groups of a match [`read`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Read {
    pub whole: Span,
    /// `Connection closed`, `Connection reset` or `Disconnected`.
    pub words: Span,
    pub user: Option<Span>,
    /// The address: IPv4 (`ip4`) or IPv6 (`ip6`).
    pub address: Span,
    pub v6: bool,
}

impl Read {
    /// The groups in the order of `names` (the pattern's group names by number), as the
    /// engines list them.
    pub fn groups(&self, names: &[Option<Name>], out: &mut Vec<(Name, Span)>) {
        out.clear();
        for name in names.iter().flatten() {
            let span = match *name {
                "nofail" | "mlfforget" => Some(self.words),
                "user" => self.user,
                other => address_group(other, self.address, self.v6),
            };
            if let Some(span) = span {
                out.push((name, span));
            }
        }
    }
}

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
    too_many::tail(text, end).then_some(Read {
        whole: (0, text.len()),
        words: (0, words),
        user,
        address: (host, end),
        v6,
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
        &[
            "192.0.2.1",
            "192.0.2.1",
            "2001:db8::1",
            "[192.0.2.1]",
            "::ffff:192.0.2.1",
            "host.example",
            "1.2.3.4567",
            "1.2.3.4x",
            "2001:db8::1]",
        ],
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
            |text, names, out| {
                read(text).map(|read| {
                    read.groups(names, out);
                    read.whole
                })
            },
        );
    }

    #[test]
    fn reads_the_usual_shapes() {
        let read = |line: &str| {
            super::read(line.as_bytes()).map(|r| {
                (
                    r.user.map(|(s, e)| line[s..e].to_string()),
                    line[r.address.0..r.address.1].to_string(),
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
