//! One filter applied to one log line (the time stamp already removed), with fail2ban's
//! semantics: `prefregex` must match first and its `<F-CONTENT>` is what the `failregex`
//! patterns see; the first `failregex` that matches decides; an `ignoreregex` match cancels
//! it; the host is the `ip4`, else `ip6`, else `dns` group, else the failure id `fid`.
//! Multi-line buffers and failure ids (`maxlines`, `<F-MLFID>`) are `tracker`'s.

use std::net::IpAddr;

use super::{
    literals::{Anchored, Prefilter},
    pattern::{Compiled, Name, PatternError, Span, Value, intern, same},
};
use crate::filter::tracker::Failure;

/// What a filter is made of (the options of a jail's filter after reading).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterSpec {
    pub prefregex: Option<String>,
    pub failregex: Vec<String>,
    pub ignoreregex: Vec<String>,
    /// `yes`, `warn`, `no` or `raw`: with `no`, `<HOST>` matches addresses only.
    pub usedns: String,
    /// Lines a failregex may span (`maxlines`); above 1 the patterns see a buffer of the
    /// last lines, joined with newlines.
    pub maxlines: usize,
    /// Where dates are in lines (`datepattern`); `None` detects the common formats.
    pub datepattern: Option<String>,
}

impl Default for FilterSpec {
    fn default() -> Self {
        Self {
            prefregex: None,
            failregex: Vec::new(),
            ignoreregex: Vec::new(),
            usedns: "warn".into(),
            maxlines: 1,
            datepattern: None,
        }
    }
}

impl FilterSpec {
    /// The spec of a filter's resolved options (`option` gives each one's text). The
    /// configuration reader has checked that `maxlines` is a number.
    pub fn from_options(option: impl Fn(&str) -> Option<String>) -> Self {
        let lines = |name: &str| -> Vec<String> {
            option(name)
                .unwrap_or_default()
                .split('\n')
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        };
        Self {
            prefregex: option("prefregex").filter(|p| !p.is_empty()),
            failregex: lines("failregex"),
            ignoreregex: lines("ignoreregex"),
            usedns: option("usedns").unwrap_or_else(|| "warn".into()),
            maxlines: option("maxlines")
                .and_then(|m| m.trim().parse::<usize>().ok())
                .unwrap_or(1)
                .max(1),
            datepattern: option("datepattern").filter(|p| !p.trim().is_empty()),
        }
    }
}

/// Who failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// An address, with the prefix length a `<CIDR>`/`<SUBNET>` gave.
    Ip(IpAddr, Option<u8>),
    /// A host name (to be resolved according to `usedns`).
    Name(String),
    /// A failure id (`<F-ID>`) that is not an address.
    Id(String),
}

impl std::fmt::Display for Host {
    /// An address as `std::net` writes it (with `/cidr` when a pattern gave one); a name or
    /// an id as it is.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Ip(addr, None) => addr.fmt(f),
            Host::Ip(addr, Some(cidr)) => write!(f, "{addr}/{cidr}"),
            Host::Name(text) | Host::Id(text) => f.write_str(text),
        }
    }
}

/// What became of a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Failure(Failure),
    /// An `ignoreregex` matched.
    Ignored,
    /// No `failregex` matched (or the prefregex did not).
    Missed,
}

/// `alt_user`, `alt_user_2`... fill `user` when it is absent or empty (fail2ban's
/// alternate names), in name order.
pub(in crate::filter) fn merge_alternates(fields: &mut Vec<(Name, Value)>) {
    if !fields.iter().any(|(name, _)| name.starts_with("alt_")) {
        return;
    }
    let mut alternates: Vec<(Name, Name, Value)> = fields
        .iter()
        .filter_map(|(name, value)| Some((*name, alternate_of(name)?, value.clone())))
        .collect();
    alternates.sort();
    for (_, base, value) in alternates {
        if value.is_empty() {
            continue;
        }
        match fields.iter_mut().find(|(n, _)| *n == base) {
            Some((_, existing)) if existing.is_empty() => *existing = value,
            Some(_) => {}
            None => fields.push((base, value)),
        }
    }
}

/// The name an `alt_` group stands in for (`alt_user` and `alt_user_2` for `user`), interned;
/// `None` for a name that is no alternate.
fn alternate_of(name: Name) -> Option<Name> {
    let rest = name.strip_prefix("alt_")?;
    let base = match rest.rsplit_once('_') {
        Some((b, n)) if n.chars().all(|c| c.is_ascii_digit()) => b,
        _ => rest,
    };
    Some(intern(base))
}

/// A compiled filter.
#[derive(Clone, Debug)]
pub struct Filter {
    pub(in crate::filter) prefregex: Option<Compiled>,
    pub(in crate::filter) failregex: Vec<Compiled>,
    pub(in crate::filter) ignoreregex: Vec<Compiled>,
    pub(in crate::filter) maxlines: usize,
    /// Turns away texts the prefregex cannot match.
    prefregex_literals: Option<Prefilter>,
    /// Which failregexes may match a text; built when first needed, since a filter whose
    /// failregexes are all [`Anchored`] reads single lines without it.
    failregex_literals: std::sync::OnceLock<Prefilter>,
    /// Where every failregex of a one-line filter starts with known strings: the candidates
    /// by the first bytes of the text they search (see `tracker`).
    pub(in crate::filter) anchored: Option<Anchored>,
    /// For each failregex, whether it or the prefregex has `alt_` groups, which
    /// [`merge_alternates`] merges.
    pub(in crate::filter) alternates: Vec<bool>,
}

/// A filter with a pattern that does not compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{option} {index}: {source}")]
pub struct FilterError {
    pub option: &'static str,
    pub index: usize,
    #[source]
    pub source: PatternError,
}

fn compile_all(
    patterns: &[String],
    usedns: &str,
    multiline: bool,
    option: &'static str,
) -> Result<Vec<Compiled>, FilterError> {
    patterns
        .iter()
        .enumerate()
        .map(|(index, p)| {
            Compiled::with_lines(p, usedns, multiline).map_err(|source| FilterError {
                option,
                index,
                source,
            })
        })
        .collect()
}

impl Filter {
    pub fn new(spec: &FilterSpec) -> Result<Self, FilterError> {
        let usedns = spec.usedns.as_str();
        let multiline = spec.maxlines > 1;
        let prefregex = match &spec.prefregex {
            Some(p) if !p.is_empty() => Some(
                Compiled::with_lines(
                    &p.replace("<F-CONTENT>", "(?P<content>")
                        .replace("</F-CONTENT>", ")"),
                    usedns,
                    multiline,
                )
                .map_err(|source| FilterError {
                    option: "prefregex",
                    index: 0,
                    source,
                })?,
            ),
            _ => None,
        };
        let failregex = compile_all(&spec.failregex, usedns, multiline, "failregex")?;
        let has_alternates =
            |p: &Compiled| p.names().iter().flatten().any(|n| n.starts_with("alt_"));
        let in_prefregex = prefregex.as_ref().is_some_and(has_alternates);
        let alternates = failregex
            .iter()
            .map(|f| in_prefregex || has_alternates(f))
            .collect();
        let anchored = (spec.maxlines <= 1)
            .then(|| Anchored::new(failregex.iter().map(Compiled::as_str)))
            .flatten();
        Ok(Self {
            alternates,
            anchored,
            prefregex_literals: prefregex
                .as_ref()
                .map(|p| Prefilter::new(std::iter::once(p.as_str()))),
            failregex_literals: std::sync::OnceLock::new(),
            prefregex,
            failregex,
            ignoreregex: compile_all(&spec.ignoreregex, usedns, multiline, "ignoreregex")?,
            maxlines: spec.maxlines.max(1),
        })
    }

    fn failregex_literals(&self) -> &Prefilter {
        self.failregex_literals
            .get_or_init(|| Prefilter::new(self.failregex.iter().map(Compiled::as_str)))
    }

    /// Whether the filter may match `text` at all, by the strings its patterns require: one
    /// scan that turns most lines away before any regular expression runs.
    #[must_use]
    pub fn may_match(&self, text: &str) -> bool {
        self.prefregex_literals.as_ref().is_none_or(|p| p.any(text))
            && self.failregex_literals().any(text)
    }

    /// The failregexes that may match `text` (a bit mask, see `literals::has`).
    #[must_use]
    pub fn candidates(&self, text: &str) -> u128 {
        self.failregex_literals().candidates(text)
    }

    /// As [`Filter::may_match`], keeping where the failregexes' strings are in `text` for
    /// [`Filter::candidates_within`].
    pub(in crate::filter) fn may_match_keeping(
        &self,
        text: &str,
        hits: &mut Vec<(usize, usize, usize)>,
    ) -> bool {
        self.prefregex_literals.as_ref().is_none_or(|p| p.any(text))
            && self.failregex_literals().find_all(text, hits)
    }

    /// The failregexes that may match the part `span` of a text whose strings
    /// [`Filter::may_match_keeping`] kept.
    pub(in crate::filter) fn candidates_within(
        &self,
        hits: &[(usize, usize, usize)],
        span: Span,
    ) -> u128 {
        self.failregex_literals().candidates_within(hits, span)
    }

    /// Whether an ignoreregex matches `text`.
    #[inline]
    pub(in crate::filter) fn ignored(&self, text: &str) -> bool {
        // Most filters have none: asked for every match, that is answered in place.
        !self.ignoreregex.is_empty() && self.any_ignoreregex(text)
    }

    fn any_ignoreregex(&self, text: &str) -> bool {
        self.ignoreregex
            .iter()
            .any(|re| matches!(re.search_spans(text, &mut Vec::new()), Ok(Some(_))))
    }

    /// Every compiled pattern: the prefregex, the failregexes, the ignoreregexes.
    pub fn patterns(&self) -> impl Iterator<Item = &Compiled> {
        self.prefregex
            .iter()
            .chain(&self.failregex)
            .chain(&self.ignoreregex)
    }

    /// Lines a match may span.
    #[must_use]
    pub fn maxlines(&self) -> usize {
        self.maxlines
    }

    /// Applies the filter to one line on its own (no earlier lines, no failure ids carried
    /// over): the first failregex that matches and names a host. A pattern that gives up
    /// (backtracking limit) counts as not matching.
    #[must_use]
    pub fn check(&self, line: &str) -> Outcome {
        let checked = crate::filter::tracker::Tracker::default().check(self, line, false);
        match checked.failures.into_iter().next() {
            Some(failure) => Outcome::Failure(failure),
            _ if checked.ignored => Outcome::Ignored,
            _ => Outcome::Missed,
        }
    }
}

/// The host of a match: the address, else the name, else the failure id, with the text as
/// it stood. Text shaped like an address that is none (`192.030.0.6`) stays an id: reported,
/// but nothing XDP can ban.
pub(in crate::filter) fn host_of<'a>(fields: &'a [(Name, Value)]) -> Option<(Host, Value)> {
    // The first of each, read in one pass over the fields.
    let known = super::pattern::known();
    let [mut cidr, mut ip4, mut ip6, mut dns, mut fid] = [None::<&'a str>; 5];
    for (name, value) in fields {
        let slot = match *name {
            n if same(n, known.cidr) => &mut cidr,
            n if same(n, known.ip4) => &mut ip4,
            n if same(n, known.ip6) => &mut ip6,
            n if same(n, known.dns) => &mut dns,
            n if same(n, known.fid) => &mut fid,
            _ => continue,
        };
        slot.get_or_insert(value.as_str());
    }
    let cidr = cidr.and_then(|c| c.parse::<u8>().ok());
    let address = ip4.or(ip6);
    let raw = address.or(dns).or(fid)?;
    let host = match raw.parse::<IpAddr>() {
        Ok(addr) => Host::Ip(addr, cidr),
        Err(_) if address.is_some() => Host::Id(raw.to_string()),
        Err(_) if dns.is_some() => Host::Name(raw.to_string()),
        Err(_) => Host::Id(raw.to_string()),
    };
    Some((host, raw.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(pref: Option<&str>, fail: &[&str], ignore: &[&str]) -> Filter {
        Filter::new(&FilterSpec {
            prefregex: pref.map(str::to_string),
            failregex: fail.iter().map(|s| (*s).to_string()).collect(),
            ignoreregex: ignore.iter().map(|s| (*s).to_string()).collect(),
            ..FilterSpec::default()
        })
        .unwrap()
    }

    fn host(outcome: &Outcome) -> Option<String> {
        match outcome {
            Outcome::Failure(f) => Some(match &f.host {
                Host::Ip(a, _) => a.to_string(),
                Host::Name(n) | Host::Id(n) => n.clone(),
            }),
            _ => None,
        }
    }

    #[test]
    fn prefregex_content_is_what_failregex_sees() {
        let f = filter(
            Some(r"^\S+ sshd\[\d+\]: <F-CONTENT>.+</F-CONTENT>$"),
            &[r"^Failed password for <F-USER>\S+</F-USER> from <HOST>"],
            &[],
        );
        let out = f.check("host sshd[1]: Failed password for root from 198.51.100.7 port 22");
        assert_eq!(host(&out).as_deref(), Some("198.51.100.7"));
        let Outcome::Failure(failure) = out else {
            unreachable!()
        };
        assert!(failure.fields.contains(&("user", "root".into())));
        // The failregex is anchored to the content, not to the line.
        assert_eq!(
            f.check("host cron[1]: Failed password for root from 198.51.100.7"),
            Outcome::Missed
        );
    }

    #[test]
    fn first_failregex_wins_and_ignoreregex_cancels() {
        let f = filter(None, &[r"a <HOST>", r"b <HOST>"], &[r"from trusted"]);
        let Outcome::Failure(first) = f.check("b 198.51.100.8 a 198.51.100.9") else {
            panic!()
        };
        assert_eq!(
            (
                first.regex,
                host(&Outcome::Failure(first.clone())).unwrap().as_str()
            ),
            (0, "198.51.100.9")
        );
        assert_eq!(f.check("a 198.51.100.9 from trusted"), Outcome::Ignored);
        assert_eq!(f.check("nothing here"), Outcome::Missed);
    }

    #[test]
    fn an_alternate_fills_an_empty_base_field() {
        let f = filter(
            None,
            &[r"^u=<F-USER>\w*</F-USER> r=<F-ALT_USER>\w+</F-ALT_USER> <HOST>$"],
            &[],
        );
        let Outcome::Failure(found) = f.check("u= r=bob 192.0.2.1") else {
            panic!()
        };
        assert!(found.fields.contains(&("user", "bob".into())));
        let Outcome::Failure(kept) = f.check("u=alice r=bob 192.0.2.1") else {
            panic!()
        };
        assert!(kept.fields.contains(&("user", "alice".into())));
    }

    #[test]
    fn hosts_ids_and_nofail() {
        let f = filter(
            None,
            &[
                r"^id <F-ID/>$",
                r"^name <HOST>$",
                r"^<F-NOFAIL>accepted</F-NOFAIL> <HOST>$",
            ],
            &[],
        );
        assert_eq!(
            f.check("id session-42"),
            Outcome::Failure(Failure {
                regex: 0,
                host: Host::Id("session-42".into()),
                raw: "session-42".into(),
                fields: vec![("fid", "session-42".into())],
                attempts: 1,
                users: Vec::new(),
                nofail: false,
            })
        );
        assert_eq!(
            host(&f.check("name mail.example.org")).as_deref(),
            Some("mail.example.org")
        );
        let Outcome::Failure(nofail) = f.check("accepted 2001:db8::5") else {
            panic!()
        };
        assert!(nofail.nofail);
        // Address-shaped text that is no address is an id: nothing XDP can ban.
        let Outcome::Failure(odd) = f.check("name 999.1.1.1") else {
            panic!()
        };
        assert_eq!(
            (odd.host, odd.raw.as_str()),
            (Host::Id("999.1.1.1".into()), "999.1.1.1")
        );
    }
}
