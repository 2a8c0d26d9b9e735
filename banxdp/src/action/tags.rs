//! `<tag>` interpolation of an action's commands, as fail2ban's `CommandAction` does it, and
//! the escaping that keeps text from a log line out of the shell's grammar.
//!
//! Two steps, as in fail2ban. Static tags (the action's `[Init]` parameters and options,
//! `known/...`, `?family=` variants) come from the administrator's files: they are substituted
//! recursively into the operation's text and may contain shell code. Dynamic tags (`<ip>`,
//! `<matches>`, `<F-USER>`, ...) come from the ban, partly from a client's log line: they are
//! substituted once, never re-interpolated, and any value holding a character outside a short
//! list of inert ones (letters, digits, ` .:/@_+-,%=`) is not pasted into the script at all.
//! It becomes a positional parameter of `sh -c`, assigned to a variable at the top of the
//! script, and the tag is replaced by `$variable`. Whatever the quoting around the tag in the
//! action file (none, double quotes, inside backticks), the shell expands a variable without
//! evaluating what it holds, which single-quote wrapping cannot promise (`"'$(x)'"` runs `x`).
//! fail2ban 1.0.2 does the same (`replaceDynamicTags`), with a shorter list of characters.
//!
//! Pure: no I/O, no clock; the ban's time and the host's names come in as values.

use std::{fmt::Write as _, net::IpAddr, sync::LazyLock};

use indexmap::{IndexMap, IndexSet};
use ipnet::IpNet;
use regex::Regex;

use crate::config::fail2ban::readers::{ReaderError, substitute_tags};

/// fail2ban's tag syntax: `<name>`, no spaces or angle brackets inside.
static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"<([^ <>]+)>").expect("valid"));
/// A capture-group field of the failure: `<F-USER>` (upper case, as fail2ban requires).
static FIELD_TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^F-([A-Z0-9_\-]+)$").expect("valid"));

/// Tags whose values come from log lines and that static substitution leaves alone.
pub const ESCAPED_TAGS: [&str; 3] = ["matches", "ipmatches", "ipjailmatches"];

/// At most this many rounds of static substitution (fail2ban's `MAX_TAG_REPLACE_COUNT`).
const MAX_ROUNDS: usize = 25;

/// The address family a command runs for (fail2ban's `inet4`/`inet6` conditionals).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// An action without `?family=` variants runs once, for no family in particular.
    Any,
    Inet4,
    Inet6,
}

impl Family {
    /// The family of a ban target.
    #[must_use]
    pub fn of(target: &IpNet) -> Self {
        match target {
            IpNet::V4(_) => Self::Inet4,
            IpNet::V6(_) => Self::Inet6,
        }
    }

    /// The text `<family>` and `?family=` use (empty for [`Family::Any`]).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "",
            Self::Inet4 => "inet4",
            Self::Inet6 => "inet6",
        }
    }
}

/// What the machine is called, for `<fq-hostname>` and `<sh-hostname>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostNames {
    pub fq: String,
    pub short: String,
}

/// A command ready for `sh -c`: its text, and the values its variables take from the
/// positional parameters (`$1`, `$2`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script {
    pub text: String,
    pub args: Vec<String>,
}

/// The action's properties as one family sees them: `name?family=inet6` replaces `name` for
/// `inet6`; other families' variants are left out.
#[must_use]
pub fn family_view(props: &IndexMap<String, String>, family: Family) -> IndexMap<String, String> {
    let mut view = IndexMap::with_capacity(props.len());
    for (key, value) in props {
        if !key.contains("?family=") {
            view.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    for (key, value) in props {
        if let Some((base, fam)) = key.split_once("?family=") {
            if !base.is_empty() && fam == family.as_str() {
                view.insert(base.to_string(), value.clone());
            }
        }
    }
    view
}

/// Resolves the properties' references to each other (fail2ban's `substituteRecursiveTags`
/// with the log-line tags ignored); what no property names stays a `<tag>`.
pub fn resolve_props(
    props: &IndexMap<String, String>,
    family: Family,
) -> Result<IndexMap<String, String>, ReaderError> {
    let ignore: IndexSet<String> = ESCAPED_TAGS.iter().map(|t| (*t).to_string()).collect();
    substitute_tags(&family_view(props, family), &ignore, &mut |_| None)
}

/// Tags every command may use whatever the action defines: `<br>`, `<sp>` and the host's names.
fn fixed_tag(tag: &str, host: &HostNames) -> Option<String> {
    match tag {
        "br" => Some("\n".into()),
        "sp" => Some(" ".into()),
        "fq-hostname" => Some(host.fq.clone()),
        "sh-hostname" => Some(host.short.clone()),
        _ => None,
    }
}

/// The text of operation `op` (`actionban`, ...) with the static tags in place: the resolved
/// properties and the fixed tags, repeatedly, as fail2ban's `replaceTag` does.
pub fn static_command(
    resolved: &IndexMap<String, String>,
    op: &str,
    host: &HostNames,
) -> Result<String, ReaderError> {
    let Some(mut text) = resolved.get(op).cloned() else {
        return Ok(String::new());
    };
    for _ in 0..MAX_ROUNDS {
        if !text.contains('<') {
            return Ok(text);
        }
        let next = TAG
            .replace_all(&text, |caps: &regex::Captures<'_>| {
                let tag = &caps[1];
                resolved
                    .get(tag)
                    .cloned()
                    .or_else(|| fixed_tag(tag, host))
                    .unwrap_or_else(|| caps[0].to_string())
            })
            .into_owned();
        if next == text {
            return Ok(text);
        }
        text = next;
    }
    Err(ReaderError::Recursive {
        tag: op.to_string(),
        value: text,
    })
}

/// Characters that may appear in a command as they are: none of them means anything to `sh`.
fn is_inert(c: char) -> bool {
    c.is_ascii_alphanumeric() || " .:/@_+-,%=".contains(c)
}

/// The shell variable a dynamic tag's value goes into (`F-USER` → `banxdp_F_USER`).
fn variable_name(tag: &str) -> String {
    let mut name = String::from("banxdp_");
    name.extend(
        tag.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
    );
    name
}

/// Fills in the dynamic tags of `command` in one pass: `values` first, then the failure's
/// `<F-NAME>` fields (absent ones become empty, as in fail2ban), then the fixed tags; other
/// `<tag>`s stay as written. Values are never interpolated again.
#[must_use]
pub fn dynamic_script(
    command: &str,
    values: &IndexMap<&str, String>,
    fields: &IndexMap<String, String>,
    host: &HostNames,
) -> Script {
    let mut vars: IndexMap<String, String> = IndexMap::new();
    let mut place = |tag: &str, value: &str| -> String {
        // A NUL cannot cross `exec`; it means nothing in a log line anyway.
        let value: String = value.chars().filter(|c| *c != '\0').collect();
        if value.chars().all(is_inert) {
            return value;
        }
        let name = variable_name(tag);
        let shown = format!("${{{name}}}");
        vars.insert(name, value);
        shown
    };
    let text = TAG
        .replace_all(command, |caps: &regex::Captures<'_>| {
            let tag = &caps[1];
            if let Some(value) = values.get(tag) {
                return place(tag, value);
            }
            if let Some(field) = FIELD_TAG.captures(tag) {
                let key = field_key(&field[1]);
                let value = fields.get(&key).map_or("", String::as_str);
                return place(tag, value);
            }
            fixed_tag(tag, host).unwrap_or_else(|| caps[0].to_string())
        })
        .into_owned();
    if vars.is_empty() {
        return Script {
            text,
            args: Vec::new(),
        };
    }
    let mut head = String::new();
    for (i, name) in vars.keys().enumerate() {
        let _ = write!(head, "{name}=\"${{{}}}\" ", i + 1);
    }
    Script {
        text: format!("{head}\n{text}"),
        args: vars.into_values().collect(),
    }
}

/// The key a filter stores a field under: lower case, `id` and `port` renamed as fail2ban's
/// `mapTag2Opt` does.
#[must_use]
pub fn field_key(tag: &str) -> String {
    let lower = tag.to_lowercase();
    match lower.as_str() {
        "id" => "fid".into(),
        "port" => "fport".into(),
        _ => lower,
    }
}

/// `<ip-rev>`: the address's labels reversed for a PTR name, without the `in-addr.arpa.`
/// suffix (`192.0.2.7` → `7.2.0.192.`), as fail2ban gives it.
#[must_use]
pub fn ip_rev(addr: IpAddr) -> String {
    let mut out = String::new();
    match addr {
        IpAddr::V4(v4) => {
            for octet in v4.octets().iter().rev() {
                let _ = write!(out, "{octet}.");
            }
        }
        IpAddr::V6(v6) => {
            for byte in v6.octets().iter().rev() {
                let _ = write!(out, "{:x}.{:x}.", byte & 0xf, byte >> 4);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> IndexMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn host() -> HostNames {
        HostNames {
            fq: "gw.example.org".into(),
            short: "gw".into(),
        }
    }

    #[test]
    fn family_variants_replace_the_base_for_their_family_only() {
        let p = props(&[
            ("iptables", "iptables -w"),
            ("iptables?family=inet6", "ip6tables -w"),
            ("actionban", "<iptables> -I f2b-<name> 1 -s <ip> -j DROP"),
            ("name", "sshd"),
        ]);
        let host = host();
        for (family, want) in [
            (Family::Any, "iptables -w -I f2b-sshd 1 -s <ip> -j DROP"),
            (Family::Inet4, "iptables -w -I f2b-sshd 1 -s <ip> -j DROP"),
            (Family::Inet6, "ip6tables -w -I f2b-sshd 1 -s <ip> -j DROP"),
        ] {
            let resolved = resolve_props(&p, family).unwrap();
            assert_eq!(static_command(&resolved, "actionban", &host).unwrap(), want);
        }
    }

    #[test]
    fn static_tags_resolve_recursively_and_fixed_tags_fill_in() {
        let p = props(&[
            ("a", "<b>-<c>"),
            ("b", "x<c>"),
            ("c", "y"),
            (
                "actionstart",
                "echo <a><sp>on<sp><fq-hostname>/<sh-hostname><br>done <unknown>",
            ),
        ]);
        let resolved = resolve_props(&p, Family::Any).unwrap();
        assert_eq!(
            static_command(&resolved, "actionstart", &host()).unwrap(),
            "echo xy-y on gw.example.org/gw\ndone <unknown>"
        );
        assert_eq!(
            static_command(&resolved, "actionstop", &host()).unwrap(),
            ""
        );
    }

    #[test]
    fn static_substitution_leaves_log_tags_and_rejects_loops() {
        let p = props(&[("matches", "ignored"), ("actionban", "echo <matches> <ip>")]);
        let resolved = resolve_props(&p, Family::Any).unwrap();
        // `matches` is a property, but a command only ever gets it from the ban.
        assert_eq!(resolved["actionban"], "echo <matches> <ip>");
        let looped = props(&[("a", "<b>"), ("b", "<a>"), ("actionban", "<a>")]);
        assert!(resolve_props(&looped, Family::Any).is_err());
    }

    fn values(pairs: &[(&'static str, &str)]) -> IndexMap<&'static str, String> {
        pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
    }

    #[test]
    fn inert_values_are_pasted_and_others_become_variables() {
        let cases: &[(&str, &str, &str, &[&str])] = &[
            ("ban <ip>", "192.0.2.7", "ban 192.0.2.7", &[]),
            ("ban <ip>", "2001:db8::7", "ban 2001:db8::7", &[]),
            ("ban <ip>", "192.0.2.0/24", "ban 192.0.2.0/24", &[]),
            ("m <ip>", "a b,c@d%e=f+g_h-i", "m a b,c@d%e=f+g_h-i", &[]),
            (
                "m \"<ip>\"",
                "`$(touch /tmp/pwned)`",
                "banxdp_ip=\"${1}\" \nm \"${banxdp_ip}\"",
                &["`$(touch /tmp/pwned)`"],
            ),
            (
                "m <ip>",
                "a;b",
                "banxdp_ip=\"${1}\" \nm ${banxdp_ip}",
                &["a;b"],
            ),
            (
                "m <ip>",
                "l1\nl2",
                "banxdp_ip=\"${1}\" \nm ${banxdp_ip}",
                &["l1\nl2"],
            ),
            (
                "m <ip>",
                "it's \"q\"",
                "banxdp_ip=\"${1}\" \nm ${banxdp_ip}",
                &["it's \"q\""],
            ),
            (
                "m <ip>",
                "<name>",
                "banxdp_ip=\"${1}\" \nm ${banxdp_ip}",
                &["<name>"],
            ),
            (
                "m <ip>",
                "tab\there",
                "banxdp_ip=\"${1}\" \nm ${banxdp_ip}",
                &["tab\there"],
            ),
            (
                "m <ip>",
                "bang!",
                "banxdp_ip=\"${1}\" \nm ${banxdp_ip}",
                &["bang!"],
            ),
            ("m <ip>", "nul\0x", "m nulx", &[]),
        ];
        for (command, value, text, args) in cases {
            let script = dynamic_script(
                command,
                &values(&[("ip", value)]),
                &IndexMap::new(),
                &host(),
            );
            assert_eq!(script.text, *text, "value {value:?}");
            assert_eq!(script.args, *args, "value {value:?}");
        }
    }

    #[test]
    fn fields_fixed_and_unknown_tags() {
        let mut fields = IndexMap::new();
        fields.insert("user".to_string(), "root".to_string());
        fields.insert("fid".to_string(), "x;y".to_string());
        let script = dynamic_script(
            "<F-USER>|<F-ID>|<F-MISSING>|<ip>|<br>|<unknown>|<F-lower>",
            &values(&[("ip", "192.0.2.7")]),
            &fields,
            &host(),
        );
        assert_eq!(
            script.text,
            "banxdp_F_ID=\"${1}\" \nroot|${banxdp_F_ID}||192.0.2.7|\n|<unknown>|<F-lower>"
        );
        assert_eq!(script.args, ["x;y"]);
    }

    #[test]
    fn values_are_not_interpolated_again() {
        let script = dynamic_script(
            "<matches> <ip>",
            &values(&[("matches", "<ip>"), ("ip", "192.0.2.7")]),
            &IndexMap::new(),
            &host(),
        );
        assert_eq!(
            script.text,
            "banxdp_matches=\"${1}\" \n${banxdp_matches} 192.0.2.7"
        );
        assert_eq!(script.args, ["<ip>"]);
    }

    #[test]
    fn many_variables_use_braced_positions() {
        let tags: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
        let mut vals = IndexMap::new();
        for t in &tags {
            vals.insert(t.as_str(), format!("{t};"));
        }
        let command = tags.iter().fold(String::new(), |mut c, t| {
            let _ = write!(c, "<{t}>");
            c
        });
        let script = dynamic_script(&command, &vals, &IndexMap::new(), &host());
        assert!(script.text.starts_with("banxdp_t0=\"${1}\" "));
        assert!(script.text.contains("banxdp_t11=\"${12}\" "));
        assert_eq!(script.args.len(), 12);
    }

    #[test]
    fn reverse_names() {
        assert_eq!(ip_rev("192.0.2.7".parse().unwrap()), "7.2.0.192.");
        let v6 = ip_rev("2001:db8::1".parse().unwrap());
        assert!(v6.starts_with("1.0.0.0."), "{v6}");
        assert!(v6.ends_with("8.b.d.0.1.0.0.2."), "{v6}");
        assert_eq!(v6.len(), 64);
    }
}
