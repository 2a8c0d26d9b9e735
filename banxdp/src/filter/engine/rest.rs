//! A strategy for patterns that end in a group taking the rest of the text, as fail2ban's
//! prefregexes end (`...<F-CONTENT>.+</F-CONTENT>$`, compiled as `(?P<content>.+)$`): the
//! linear engine reports groups by running a backtracker over the whole match, which for
//! such a pattern is the whole line; the pattern without its last group matches only the
//! line's head, and the last group then spans the rest.
//!
//! Why that is the same answer: the first match of `H(.+)$` (leftmost-first, the order a
//! backtracker tries paths in) is `H`'s first path whose remainder `.+$` matches. `H`'s
//! own first match is its first path; when the rest after it is a match of `.+$` (not
//! empty, no line break), that path is the whole pattern's, with the same groups. When `H`
//! does not match, neither does the pattern; when the rest does not fit, the pattern is
//! searched whole. Chosen by the pattern's shape (its parse tree), never its text.

use std::cell::RefCell;

use fancy_regex::{Assertion, Expr};

use super::pattern::{Name, Span};

/// The part of a pattern before a last group that takes the rest of the text.
#[derive(Clone, Debug)]
pub struct Rest {
    /// The pattern without its last group and the `$` after it.
    head: regex::Regex,
    locations: RefCell<regex::CaptureLocations>,
    /// The last group takes one character at least (`.+`, not `.*`).
    nonempty: bool,
}

impl Rest {
    /// For a pattern (the linear engine's syntax) whose top level ends in a group of `.+`
    /// or `.*` (greedy, `.` not matching line breaks) and `$` (end of text, not of line):
    /// the strategy; `None` for any other pattern. `groups` is how many groups the whole
    /// pattern has (group 0 included).
    pub fn of(pattern: &str, groups: usize) -> Option<Self> {
        let tree = Expr::parse_tree(pattern).ok()?;
        let Expr::Concat(children) = &tree.expr else {
            return None;
        };
        let [.., Expr::Group(inner), Expr::Assertion(Assertion::EndText)] = children.as_slice()
        else {
            return None;
        };
        let Expr::Repeat {
            child,
            lo,
            hi,
            greedy: true,
        } = inner.as_ref()
        else {
            return None;
        };
        let any = matches!(
            child.as_ref(),
            Expr::Any {
                newline: false,
                crlf: false
            }
        );
        if !any || *lo > 1 || *hi != usize::MAX {
            return None;
        }
        // The same end, as written: the group (named or not) and `$`.
        let body = if *lo == 1 { ".+)$" } else { ".*)$" };
        let open = pattern.strip_suffix(body)?;
        let named = open
            .rfind("(?P<")
            .filter(|&at| open[at + 4..].strip_suffix('>').is_some_and(is_name));
        let head = match named {
            Some(at) => &open[..at],
            None => open.strip_suffix('(')?,
        };
        let head = regex::Regex::new(head).ok()?;
        // Its groups must be the whole pattern's, less the last.
        if head.captures_len() + 1 != groups {
            return None;
        }
        Some(Self {
            locations: RefCell::new(head.capture_locations()),
            head,
            nonempty: *lo == 1,
        })
    }

    /// The whole pattern's first match in `text`, with its named groups (by `names`, the
    /// whole pattern's) in `groups`, which is empty: `Some(None)` when there is none,
    /// `None` when the whole pattern must be searched to tell.
    #[expect(
        clippy::option_option,
        reason = "no match, a match, and no answer differ"
    )]
    pub fn search(
        &self,
        text: &str,
        names: &[Option<Name>],
        groups: &mut Vec<(Name, Span)>,
    ) -> Option<Option<Span>> {
        let mut locations = self.locations.borrow_mut();
        let Some((start, end)) = self
            .head
            .captures_read(&mut locations, text)
            .map(|m| (m.start(), m.end()))
        else {
            return Some(None);
        };
        let rest = &text[end..];
        if (self.nonempty && rest.is_empty()) || memchr::memchr(b'\n', rest.as_bytes()).is_some() {
            return None;
        }
        let last = names.len() - 1;
        for (index, name) in names.iter().enumerate() {
            let span = match index {
                0 => Some((start, text.len())),
                _ if index == last => Some((end, text.len())),
                _ => locations.get(index),
            };
            if let (Some(name), Some(span)) = (name, span) {
                groups.push((*name, span));
            }
        }
        Some(Some((start, text.len())))
    }
}

/// A group name as the linear engine takes it.
fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::pattern::intern;

    /// The whole pattern's answer, by the linear engine.
    fn whole(pattern: &str, text: &str) -> Option<Vec<Option<Span>>> {
        let re = regex::Regex::new(pattern).unwrap();
        let caps = re.captures(text)?;
        Some(
            (0..caps.len())
                .map(|i| caps.get(i).map(|m| (m.start(), m.end())))
                .collect(),
        )
    }

    fn names_of(pattern: &str) -> Vec<Option<Name>> {
        regex::Regex::new(pattern)
            .unwrap()
            .capture_names()
            .map(|n| Some(intern(n.unwrap_or("unnamed"))))
            .collect()
    }

    #[test]
    fn only_patterns_ending_in_the_rest_of_the_text_take_it() {
        let takes = |p: &str| Rest::of(p, regex::Regex::new(p).unwrap().captures_len()).is_some();
        assert!(takes(r"^(?P<id>\S+ )?(?:error: )?(?P<content>.+)$"));
        assert!(takes(r"^\S+ (.*)$"));
        for pattern in [
            r"^a|(?P<content>.+)$",
            r"^a(?P<content>.+)",
            r"(?m)^a(?P<content>.+)$",
            r"(?s)^a(?P<content>.+)$",
            r"^a(?P<content>.+?)$",
            r"^a(?P<content>.{1,9})$",
            r"^a(?P<content>\S+)$",
            r"^a(?P<content>(?:.+))$",
            r"^a\\(?P<content>.)+$",
        ] {
            assert!(!takes(pattern), "{pattern}");
        }
    }

    #[test]
    fn the_head_and_the_rest_match_as_the_whole_pattern() {
        let patterns = [
            r"^(?P<mlfid>(?:\[\])?\s*(?:\S+\s+)?(?:(?:\[\d+\])?:\s+[\[\(]?sshd(?:\(\S+\))?[\]\)]?:?|[\[\(]?sshd(?:\(\S+\))?[\]\)]?:?(?:\[\d+\])?:?)?\s*)(?:(?:error|fatal): (?:PAM: )?)?(?P<content>.+)$",
            r"(?P<a>x*)(?P<b>y|yy)?(?P<rest>.*)$",
            r"^(?P<w>\w+?)(?P<content>.+)$",
            r"(?:a|ab)(?P<c>b?)(.+)$",
        ];
        let pieces: [&[&str]; 6] = [
            &["", " ", "[]", "h", "x"],
            &["", " host ", "host", "y", "yy"],
            &["", "sshd[12]: ", "sshd: ", ": sshd ", "ab"],
            &["", "error: ", "fatal: PAM: ", "b"],
            &["", "Failed", "\n", "x\ny", "é"],
            &["", " ", "\n"],
        ];
        let mut compared = 0;
        for pattern in patterns {
            let names = names_of(pattern);
            let rest = Rest::of(pattern, names.len()).expect(pattern);
            for text in crate::filter::generated::lines(&pieces, 0x2545_f491_4f6c_dd1d).take(3000) {
                let mut groups = Vec::new();
                let Some(found) = rest.search(&text, &names, &mut groups) else {
                    continue;
                };
                let want = whole(pattern, &text);
                assert_eq!(
                    found,
                    want.as_ref().map(|w| w[0].unwrap()),
                    "{pattern} {text:?}"
                );
                let want_groups: Vec<(Name, Span)> = want
                    .iter()
                    .flatten()
                    .enumerate()
                    .filter_map(|(i, s)| Some((names[i]?, (*s)?)))
                    .collect();
                assert_eq!(groups, want_groups, "{pattern} {text:?}");
                compared += 1;
            }
        }
        assert!(compared > 6000, "{compared} answered");
    }
}
