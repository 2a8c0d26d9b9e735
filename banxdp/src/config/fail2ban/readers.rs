//! Filters and actions: a `[Definition]` section whose options a jail may override, an
//! `[Init]` section of parameters, and `<tag>` substitution between them (fail2ban's
//! `DefinitionInitConfigReader`, `FilterReader` and `ActionReader`). Also the option-list
//! syntax of `filter = name[k=v]` and `action = a[k=v] b[k="v, w"]`.

use std::{collections::HashMap, sync::LazyLock};

use fancy_regex::Regex;
use indexmap::{IndexMap, IndexSet};

use super::store::{Store, Value, Vars};

/// The options a filter's `[Definition]` defines for a jail, in fail2ban's order.
pub const FILTER_OPTS: [(&str, Kind); 7] = [
    ("usedns", Kind::Str),
    ("prefregex", Kind::Str),
    ("ignoreregex", Kind::Str),
    ("failregex", Kind::Str),
    ("maxlines", Kind::Int),
    ("datepattern", Kind::Str),
    ("journalmatch", Kind::Str),
];

/// The options of an action's `[Definition]`, in fail2ban's order.
pub const ACTION_OPTS: [(&str, Kind); 13] = [
    ("actionstart", Kind::Str),
    ("actionstart_on_demand", Kind::Bool),
    ("actionstop", Kind::Str),
    ("actionflush", Kind::Str),
    ("actionreload", Kind::Str),
    ("actioncheck", Kind::Str),
    ("actionrepair", Kind::Str),
    ("actionrepair_on_unban", Kind::Bool),
    ("actionban", Kind::Str),
    ("actionprolong", Kind::Str),
    ("actionreban", Kind::Str),
    ("actionunban", Kind::Str),
    ("norestored", Kind::Bool),
];

/// How an option's text converts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Bool,
}

/// fail2ban's boolean: `1`, `on`, `true`, `yes` (any case) are true, anything else false.
#[must_use]
pub fn as_bool(text: &str) -> bool {
    matches!(text.to_lowercase().as_str(), "1" | "on" | "true" | "yes")
}

/// Python's `int()` on configuration text.
#[must_use]
pub fn as_int(text: &str) -> Option<i64> {
    let t = text.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return None;
    }
    t.replace('_', "").parse().ok()
}

/// Converts `text` to `kind`; `None` when it does not convert.
#[must_use]
pub fn convert(kind: Kind, text: &str) -> Option<Value> {
    match kind {
        Kind::Str => Some(Value::Str(text.to_string())),
        Kind::Bool => Some(Value::Bool(as_bool(text))),
        Kind::Int => as_int(text).map(Value::Int),
    }
}

/// A malformed option list or tag substitution.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReaderError {
    #[error("unexpected syntax in `{0}`")]
    Syntax(String),
    #[error("`{text}`: {detail}")]
    Options { text: String, detail: String },
    #[error("tags refer to themselves and cannot be resolved: `<{tag}>` in `{value}`")]
    Recursive { tag: String, value: String },
}

static OPTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)^([^\[]+)(?:\[(.*)\])?\s*$").expect("valid"));
static OPTION_EXTRACT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?s)\s*([\w\-_\.]+)=(?:"([^"]*)"|'([^']*)'|([^,\]]*))(?:,|\]\s*\[|$|(?P<wrngA>.+))|,?\s*$|(?P<wrngB>.+)"#,
    )
    .expect("valid")
});
static OPTION_SPLIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?s)(?:[^\[\s]+(?:\s*\[\s*(?:[\w\-_\.]+=(?:"[^"]*"|'[^']*'|[^,\]]*)\s*(?:,|\]\s*\[)?\s*)*\])?\s*|\S+)(?=\n\s*|\s+|$)"#,
    )
    .expect("valid")
});
static TAG: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"<([^ <>]+)>").expect("valid"));

/// `name[k=v, k2="v2"]` → `name` and its options, in order.
pub fn extract_options(text: &str) -> Result<(String, IndexMap<String, String>), ReaderError> {
    let caps = OPTION
        .captures(text)
        .ok()
        .flatten()
        .ok_or_else(|| ReaderError::Syntax(text.to_string()))?;
    let name = caps.get(1).map_or("", |m| m.as_str()).to_string();
    let mut options = IndexMap::new();
    if let Some(list) = caps.get(2) {
        for m in OPTION_EXTRACT.captures_iter(list.as_str()) {
            let m = m.map_err(|e| ReaderError::Syntax(e.to_string()))?;
            if let Some(wrong) = m.name("wrngA").or_else(|| m.name("wrngB")) {
                let shown: String = wrong.as_str().chars().take(25).collect();
                return Err(ReaderError::Options {
                    text: text.to_string(),
                    detail: format!("unexpected `{shown}` at {}", wrong.start()),
                });
            }
            let Some(key) = m.get(1) else { continue };
            let value = m
                .get(2)
                .or_else(|| m.get(3))
                .or_else(|| m.get(4))
                .map_or("", |v| v.as_str());
            options.insert(key.as_str().trim().to_string(), value.trim().to_string());
        }
    }
    Ok((name, options))
}

/// Splits an `action` value into its entries (spaces or new lines between them, none inside
/// a `[...]` option list).
#[must_use]
pub fn split_with_options(text: &str) -> Vec<String> {
    OPTION_SPLIT
        .find_iter(text)
        .filter_map(Result::ok)
        .map(|m| m.as_str().to_string())
        .collect()
}

/// `NAME?COND` keys.
fn conditional_base(key: &str) -> Option<&str> {
    let (base, cond) = key.split_at(key.find('?')?);
    (!base.is_empty() && base.chars().all(|c| c.is_alphanumeric() || c == '_') && cond.len() > 1)
        .then_some(base)
}

/// Replaces `<tag>` references between the values of `tags`, repeatedly, as fail2ban's
/// `substituteRecursiveTags` does; unknown tags stay as they are (they are filled in at ban
/// time). `lookup` is asked for tags that are not keys.
pub fn substitute_tags(
    tags: &IndexMap<String, String>,
    ignore: &IndexSet<String>,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, ReaderError> {
    const MAX_REPLACE: usize = 25;
    let mut tags = tags.clone();
    let mut done: IndexSet<String> = IndexSet::new();
    let mut counts: HashMap<String, HashMap<String, usize>> = HashMap::new();
    let keys: Vec<String> = tags.keys().cloned().collect();
    loop {
        let mut again = false;
        for tag in &keys {
            if ignore.contains(tag) || done.contains(tag) {
                continue;
            }
            let original = tags[tag].clone();
            let mut value = original.clone();
            let mut replaced = counts.get(tag).cloned().unwrap_or_default();
            let mut from = 0;
            while let Some(m) = TAG.captures_at(&value, from) {
                let whole = m.get(0).expect("match");
                let rtag = m[1].to_string();
                if ignore.contains(&rtag) {
                    from = whole.end();
                    continue;
                }
                if rtag == *tag || replaced.get(&rtag).copied().unwrap_or(1) > MAX_REPLACE {
                    return Err(ReaderError::Recursive { tag: rtag, value });
                }
                let replacement = match tags.get(&rtag) {
                    Some(v) => Some(v.clone()),
                    None => lookup(&rtag),
                };
                let Some(replacement) = replacement else {
                    from = whole.end();
                    continue;
                };
                let start = whole.start();
                value = value.replace(&format!("<{rtag}>"), &replacement);
                *replaced.entry(rtag).or_insert(0) += 1;
                from = start;
            }
            if value != original {
                if TAG.is_match(&value) {
                    counts.insert(tag.clone(), replaced);
                    again = true;
                }
                tags.insert(tag.clone(), value.clone());
            }
            if !value.contains('<') {
                done.insert(tag.clone());
            }
        }
        if !again {
            return Ok(tags);
        }
    }
}

/// Combined options, and those that did not convert (name, text).
pub type Combined = (IndexMap<String, Value>, Vec<(String, String)>);

/// A filter or action file, read for one jail.
pub struct DefinitionReader {
    pub store: Store,
    pub jail: String,
    /// Parameters: those the jail passed (`name[k=v]`), then `[Init]`'s.
    pub init: IndexMap<String, String>,
    /// `[Definition]` options not overridden by the jail.
    pub opts: IndexMap<String, String>,
    p_opts: Vars,
    cache: HashMap<String, Option<String>>,
}

impl DefinitionReader {
    #[must_use]
    pub fn new(store: Store, jail: &str, init: IndexMap<String, String>) -> Self {
        Self {
            store,
            jail: jail.to_string(),
            init,
            opts: IndexMap::new(),
            p_opts: Vars::new(),
            cache: HashMap::new(),
        }
    }

    /// Reads the `[Definition]` options in `names` that the jail does not set itself, and the
    /// `[Init]` parameters; with `all`, every other `[Definition]` option too.
    pub fn read_options(
        &mut self,
        jail_opts: &Vars,
        names: &[&str],
        all: bool,
    ) -> Result<(), super::store::StoreError> {
        let mut p_opts = jail_opts.clone();
        for (k, v) in &self.init {
            p_opts.insert(k.clone(), Value::Str(v.clone()));
        }
        self.opts.clear();
        for name in names {
            if p_opts.contains_key(*name) {
                continue;
            }
            match self.store.get("Definition", name, &p_opts) {
                Ok(v) => {
                    self.opts.insert((*name).to_string(), v);
                }
                Err(
                    super::store::StoreError::NoOption { .. }
                    | super::store::StoreError::NoSection(_),
                ) => {}
                Err(e) => return Err(e),
            }
        }
        self.p_opts = p_opts;
        if self.store.has_section("Init") {
            for opt in self.store.own_options("Init") {
                let value = self.store.get("Init", &opt, &Vars::new())?;
                if !opt.starts_with("known/") {
                    self.init.insert(format!("known/{opt}"), value.clone());
                }
                if !self.init.contains_key(&opt) {
                    self.init.insert(opt, value);
                }
            }
        }
        if all && self.store.has_section("Definition") {
            for opt in self.store.own_options("Definition") {
                if self.opts.contains_key(&opt) {
                    continue;
                }
                let value = self.store.get("Definition", &opt, &Vars::new())?;
                self.opts.insert(opt, value);
            }
        }
        Ok(())
    }

    /// `[Definition]` options and parameters with their `<tags>` substituted, converted by
    /// `kinds` (fail2ban's `getCombined`). Conversion failures are returned as the option
    /// name and its text.
    pub fn combined(
        &mut self,
        extra_ignore: &[&str],
        kinds: &[(&str, Kind)],
    ) -> Result<Combined, ReaderError> {
        let mut combined = self.opts.clone();
        for (k, v) in &self.init {
            combined.insert(k.clone(), v.clone());
        }
        if combined.is_empty() {
            return Ok((IndexMap::new(), Vec::new()));
        }
        let mut ignore: IndexSet<String> = extra_ignore.iter().map(|s| (*s).to_string()).collect();
        for key in combined.keys() {
            if let Some(base) = conditional_base(key) {
                ignore.insert(base.to_string());
            }
        }
        let store = &self.store;
        let p_opts = &self.p_opts;
        let cache = &mut self.cache;
        let mut lookup = |name: &str| -> Option<String> {
            cache
                .entry(name.to_string())
                .or_insert_with(|| store.get_ex("Definition", name, p_opts).ok())
                .clone()
        };
        let substituted = substitute_tags(&combined, &ignore, &mut lookup)?;
        let mut out = IndexMap::new();
        let mut bad = Vec::new();
        for (k, v) in substituted {
            let kind = kinds
                .iter()
                .find(|(name, _)| *name == k)
                .map_or(Kind::Str, |(_, kind)| *kind);
            match convert(kind, &v) {
                Some(value) => {
                    out.insert(k, value);
                }
                None => bad.push((k, v)),
            }
        }
        Ok((out, bad))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> IndexMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn extracts_names_and_options() {
        let (name, opts) =
            extract_options(r#"iptables[name=SSH, port="ssh, 2222", protocol='tcp']"#).unwrap();
        assert_eq!(name, "iptables");
        assert_eq!(
            opts,
            map(&[("name", "SSH"), ("port", "ssh, 2222"), ("protocol", "tcp")])
        );
        let (name, opts) = extract_options("sshd[mode=aggressive]").unwrap();
        assert_eq!(
            (name.as_str(), opts["mode"].as_str()),
            ("sshd", "aggressive")
        );
        let (name, opts) = extract_options("sshd").unwrap();
        assert_eq!((name.as_str(), opts.len()), ("sshd", 0));
        // As fail2ban reads them: a value runs to the next comma; a bare word is an error.
        assert_eq!(extract_options("x[a=1 b]").unwrap().1, map(&[("a", "1 b")]));
        assert!(extract_options("x[a]").is_err());
        assert!(extract_options("x[a=\"1\"b]").is_err());
    }

    #[test]
    fn splits_action_lists() {
        let text = "iptables-multiport[name=sshd, port=\"ssh, 22\", protocol=tcp]\n           sendmail-whois[name=sshd, dest=root]";
        assert_eq!(
            split_with_options(text),
            [
                "iptables-multiport[name=sshd, port=\"ssh, 22\", protocol=tcp]\n          ",
                "sendmail-whois[name=sshd, dest=root]"
            ]
        );
        assert_eq!(split_with_options("a b\nc"), ["a", "b", "c"]);
    }

    #[test]
    fn substitutes_tags_recursively_and_leaves_unknown_ones() {
        let tags = map(&[("a", "3"), ("b", "<a>_3"), ("c", "<b>-<ip>"), ("d", "<zz>")]);
        let mut lookup = |name: &str| (name == "zz").then(|| "from-definition".to_string());
        let out = substitute_tags(&tags, &IndexSet::new(), &mut lookup).unwrap();
        assert_eq!(out["b"], "3_3");
        assert_eq!(out["c"], "3_3-<ip>");
        assert_eq!(out["d"], "from-definition");
    }

    #[test]
    fn self_reference_is_an_error() {
        let tags = map(&[("a", "x<a>")]);
        assert!(substitute_tags(&tags, &IndexSet::new(), &mut |_| None).is_err());
        let tags = map(&[("a", "<b>"), ("b", "<a>")]);
        assert!(substitute_tags(&tags, &IndexSet::new(), &mut |_| None).is_err());
    }

    #[test]
    fn python_int_and_bool() {
        assert_eq!(as_int(" 5 "), Some(5));
        assert_eq!(as_int("-3"), Some(-3));
        assert_eq!(as_int("1_000"), Some(1000));
        assert_eq!(as_int("5m"), None);
        assert!(as_bool("Yes") && as_bool("1") && !as_bool("enabled"));
    }
}
