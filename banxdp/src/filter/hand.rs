//! Failregexes read by hand: which of the stock sshd filter's have a reader, and what a reader
//! gives back. Each reader (`failed`, `too_many`, `attempts`, `received`, `closed`,
//! `accepted`) stands in for one pattern, chosen by its exact text, on ASCII lines, and is
//! tested against the engines (`generated::reader_agrees`).

use super::{
    accepted, attempts, closed, failed,
    pattern::{Name, Span},
    received, too_many,
};

/// A failregex read by hand (on ASCII lines), by the exact text of the stock sshd filter's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hand {
    /// `Failed ... for ... from <HOST>` ([`failed`]).
    Failed,
    /// `Disconnecting: Too many authentication failures ...` ([`too_many`]).
    TooMany,
    /// `maximum authentication attempts exceeded ...` ([`attempts`]).
    Attempts,
    /// `Received disconnect from <HOST> ...:11:` ([`received`]).
    Received,
    /// `Connection closed|reset|Disconnected by|from ... <HOST> ...` ([`closed`]).
    Closed,
    /// `Accepted \w+ for ... from <HOST>` ([`accepted`]).
    Accepted,
}

/// A failregex's reader, with where its pattern's groups are kept in a [`Read`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ByHand {
    hand: Hand,
    /// The pattern's groups that a [`Read`] keeps, in the pattern's order, each with its
    /// place there (found once, not by name on every line).
    slots: Box<[(Name, usize)]>,
}

impl ByHand {
    /// The reader for the failregex whose fail2ban text is `failregex`, if it has one, for
    /// the compiled pattern's group `names` (by number).
    pub(super) fn of(failregex: &str, names: &[Option<Name>]) -> Option<Self> {
        let hand = Hand::of(failregex)?;
        let slots = names
            .iter()
            .flatten()
            .filter_map(|name| Some((*name, slot(name)?)))
            .collect();
        Some(Self { hand, slots })
    }

    /// Reads `text` (ASCII, one line): `Some(true)` with the match's groups in `out` (in the
    /// order of the pattern's names, as the engines list them), `Some(false)` when the
    /// pattern does not match, `None` when the reader cannot tell and the engines must.
    pub(super) fn read(&self, text: &[u8], out: &mut Vec<(Name, Span)>) -> Option<bool> {
        let (read, tells_all) = self.hand.reading(text);
        match read {
            Some(read) => {
                out.clear();
                out.extend(
                    self.slots
                        .iter()
                        .filter_map(|&(name, at)| Some((name, read.groups[at]?))),
                );
                Some(true)
            }
            None => tells_all.then_some(false),
        }
    }
}

impl Hand {
    /// The reader for the failregex whose fail2ban text is `failregex`, if it has one.
    pub(super) fn of(failregex: &str) -> Option<Self> {
        [
            (failed::SSHD_FAILED, Self::Failed),
            (too_many::SSHD_TOO_MANY, Self::TooMany),
            (attempts::SSHD_ATTEMPTS, Self::Attempts),
            (received::SSHD_RECEIVED, Self::Received),
            (closed::SSHD_CLOSED, Self::Closed),
            (accepted::SSHD_ACCEPTED, Self::Accepted),
        ]
        .into_iter()
        .find_map(|(text, hand)| (text == failregex).then_some(hand))
    }

    /// What the reader finds in `text`, and whether its `None` is an answer (no match)
    /// rather than a refusal: `too_many` tells every line.
    fn reading(self, text: &[u8]) -> (Option<Read>, bool) {
        match self {
            Self::Failed => (failed::read(text), false),
            Self::TooMany => (too_many::read(text), true),
            Self::Attempts => (attempts::read(text), false),
            Self::Received => (received::read(text), false),
            Self::Closed => (closed::read(text), false),
            Self::Accepted => (accepted::read(text), false),
        }
    }
}

/// What a reader found: the match's span, and where each named group that took part is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Read {
    pub whole: Span,
    /// By [`Group`].
    groups: [Option<Span>; 8],
}

/// The groups the readers' patterns have, as a [`Read`] keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Nofail,
    Mlfforget,
    Mlfgained,
    CondInv,
    CondUser,
    User,
    Ip4,
    Ip6,
}

/// Where the group `name` is kept in a [`Read`].
fn slot(name: &str) -> Option<usize> {
    let group = match name {
        "nofail" => Group::Nofail,
        "mlfforget" => Group::Mlfforget,
        "mlfgained" => Group::Mlfgained,
        "cond_inv" => Group::CondInv,
        "cond_user" => Group::CondUser,
        "user" => Group::User,
        "ip4" => Group::Ip4,
        "ip6" => Group::Ip6,
        _ => return None,
    };
    Some(group as usize)
}

impl Read {
    /// A match at `whole`, no group yet.
    #[must_use]
    pub fn new(whole: Span) -> Self {
        Self {
            whole,
            groups: [None; 8],
        }
    }

    /// With the group `group` at `span`, if it took part.
    #[must_use]
    pub fn with(mut self, group: Group, span: Option<Span>) -> Self {
        self.groups[group as usize] = span;
        self
    }

    /// With `<HOST>`'s address at `span`: its `ip6` group if `v6`, else `ip4`.
    #[must_use]
    pub fn address(self, span: Span, v6: bool) -> Self {
        self.with(if v6 { Group::Ip6 } else { Group::Ip4 }, Some(span))
    }

    /// Where the group `name` is, if it took part.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Span> {
        slot(name).and_then(|at| self.groups[at])
    }

    /// The groups in the order of `names` (the pattern's group names by number), as the
    /// engines list them.
    pub fn groups(&self, names: &[Option<Name>], out: &mut Vec<(Name, Span)>) {
        out.clear();
        for name in names.iter().flatten() {
            if let Some(span) = self.get(name) {
                out.push((name, span));
            }
        }
    }
}
