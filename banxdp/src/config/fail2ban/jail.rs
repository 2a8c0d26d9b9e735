//! Jails: each section of the `jail` files, with its filter and actions read for it, and the
//! command stream fail2ban's client would send its server for them (`fail2ban-client -d`),
//! which is how banxdp proves it reads a configuration as fail2ban does.
//!
//! A jail that cannot be read is kept with its error and left out of the enabled ones; the
//! others still load.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::{Value as Json, json};

use super::{
    readers::{
        ACTION_OPTS, DefinitionReader, FILTER_OPTS, Kind, ReaderError, convert, extract_options,
        split_with_options,
    },
    store::{FileCache, Files, Store, StoreError, Value, Vars},
};

/// The fail2ban release whose configuration language this implements; configuration can
/// refer to it as `%(fail2ban_version)s`.
pub const FAIL2BAN_VERSION: &str = "1.0.2";

/// The options fail2ban reads first for a jail.
const JAIL_FIRST: [(&str, Kind, Option<&str>); 3] = [
    ("enabled", Kind::Bool, Some("false")),
    ("backend", Kind::Str, Some("auto")),
    ("filter", Kind::Str, Some("")),
];

/// Every jail option, in fail2ban's order, with its kind and default.
const JAIL_OPTS: [(&str, Kind, Option<&str>); 29] = [
    ("enabled", Kind::Bool, Some("false")),
    ("backend", Kind::Str, Some("auto")),
    ("maxretry", Kind::Int, None),
    ("maxmatches", Kind::Int, None),
    ("findtime", Kind::Str, None),
    ("bantime", Kind::Str, None),
    ("bantime.increment", Kind::Bool, None),
    ("bantime.factor", Kind::Str, None),
    ("bantime.formula", Kind::Str, None),
    ("bantime.multipliers", Kind::Str, None),
    ("bantime.maxtime", Kind::Str, None),
    ("bantime.rndtime", Kind::Str, None),
    ("bantime.overalljails", Kind::Bool, None),
    ("ignorecommand", Kind::Str, None),
    ("ignoreself", Kind::Bool, None),
    ("ignoreip", Kind::Str, None),
    ("ignorecache", Kind::Str, None),
    ("filter", Kind::Str, Some("")),
    ("logtimezone", Kind::Str, None),
    ("logencoding", Kind::Str, None),
    ("logpath", Kind::Str, None),
    ("action", Kind::Str, Some("")),
    ("usedns", Kind::Str, None),
    ("prefregex", Kind::Str, None),
    ("ignoreregex", Kind::Str, None),
    ("failregex", Kind::Str, None),
    ("maxlines", Kind::Int, None),
    ("datepattern", Kind::Str, None),
    ("journalmatch", Kind::Str, None),
];

/// Options that the stream carries in their own commands, not as `set JAIL OPT VALUE`.
fn carried_elsewhere(opt: &str) -> bool {
    matches!(opt, "action" | "filter" | "enabled") || FILTER_OPTS.iter().any(|(n, _)| *n == opt)
}

/// Why a jail cannot run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JailError {
    #[error("jail `{jail}`: {source}")]
    Store {
        jail: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error("jail `{jail}`: invalid filter `{text}`: {source}")]
    FilterSyntax {
        jail: String,
        text: String,
        #[source]
        source: ReaderError,
    },
    #[error("jail `{jail}`: no filter `{name}` (looked for filter.d/{name}.conf and .local)")]
    NoFilter { jail: String, name: String },
    #[error("jail `{jail}`: invalid action `{text}`: {source}")]
    ActionSyntax {
        jail: String,
        text: String,
        #[source]
        source: ReaderError,
    },
    #[error("jail `{jail}`: no action `{name}` (looked for action.d/{name}.conf and .local)")]
    NoAction { jail: String, name: String },
    #[error("jail `{jail}`: {source}")]
    Tags {
        jail: String,
        #[source]
        source: ReaderError,
    },
    #[error("{at}jail `{jail}`: invalid {option}: {source}")]
    BadTime {
        at: super::store::Where,
        jail: String,
        option: String,
        #[source]
        source: crate::config::duration::DurationError,
    },
    #[error("{at}jail `{jail}`: invalid {option} `{value}` (a whole number)")]
    NotANumber {
        at: super::store::Where,
        jail: String,
        option: String,
        value: String,
    },
}

/// An action as a jail uses it.
pub enum JailAction {
    /// A command action from action.d, with its resolved options.
    Command {
        name: String,
        options: IndexMap<String, Value>,
        params: Vec<(String, String)>,
    },
    /// A Python action (`name.py`), which banxdp cannot run; kept for the stream.
    Python {
        name: String,
        path: PathBuf,
        params: IndexMap<String, String>,
    },
}

/// A jail after reading.
pub struct Jail {
    pub name: String,
    /// Jail options, converted, in fail2ban's order.
    pub options: IndexMap<String, Value>,
    /// The filter's options (combined, tags substituted), when the jail has a filter.
    pub filter: Option<IndexMap<String, Value>>,
    pub actions: Vec<JailAction>,
    pub error: Option<JailError>,
    /// Problems that do not stop the jail (no actions, no filter...).
    pub warnings: Vec<String>,
    /// Where each jail option was written.
    pub origins: IndexMap<String, super::ini::Origin>,
    /// The jail's `port`, `protocol` and `chain` (which fail2ban hands to its actions), and
    /// banxdp's own `shadow` (which fail2ban does not read).
    pub scope: IndexMap<String, String>,
}

/// Reads files of `basedir` (`filter.d/NAME`, `action.d/NAME`...) on demand.
pub struct Reader<'a> {
    pub files: &'a dyn Files,
    pub basedir: PathBuf,
    pub cache: FileCache,
    /// Include loops met (`a` includes `b`, which is being read already); fail2ban skips them
    /// without a word, banxdp skips them and says so.
    pub loops: Vec<(PathBuf, PathBuf)>,
}

impl Reader<'_> {
    fn store(&mut self, name: &str) -> Result<Option<Store>, StoreError> {
        let Some((store, report)) = Store::read(self.files, &self.basedir, name, &mut self.cache)?
        else {
            return Ok(None);
        };
        for found in report.loops {
            if !self.loops.contains(&found) {
                self.loops.push(found);
            }
        }
        Ok(Some(store))
    }
}

/// Reads `section`'s options in `template`, converting them; absent ones take the
/// template's default, or are left out when it has none.
fn read_options(
    store: &Store,
    section: &str,
    template: &[(&str, Kind, Option<&str>)],
    jail: &str,
) -> Result<IndexMap<String, Value>, JailError> {
    let mut out = IndexMap::new();
    for (name, kind, default) in template {
        let text = match store.get(section, name, &Vars::new()) {
            Ok(text) => text,
            Err(StoreError::NoOption { .. }) => match default {
                Some(d) => (*d).to_string(),
                None => continue,
            },
            Err(source) => {
                return Err(JailError::Store {
                    jail: jail.into(),
                    source: Box::new(source),
                });
            }
        };
        let value = convert(*kind, &text).ok_or_else(|| JailError::NotANumber {
            at: super::store::Where(store.origin(section, name)),
            jail: jail.into(),
            option: (*name).into(),
            value: text.clone(),
        })?;
        out.insert((*name).to_string(), value);
    }
    Ok(out)
}

fn text(value: Option<&Value>) -> String {
    value.map(Value::text).unwrap_or_default()
}

/// Reads jail `name` from `jails` (which it may extend: fail2ban adds the filter's options
/// to the jail's section as `known/...`). `Ok(None)`: the jail is disabled.
pub fn read_jail(reader: &mut Reader<'_>, jails: &mut Store, name: &str) -> Option<Jail> {
    let mut jail = Jail {
        name: name.to_string(),
        options: IndexMap::new(),
        filter: None,
        actions: Vec::new(),
        error: None,
        warnings: Vec::new(),
        origins: IndexMap::new(),
        scope: IndexMap::new(),
    };
    match read_jail_inner(reader, jails, &mut jail) {
        Ok(true) => Some(jail),
        Ok(false) => None,
        Err(error) => {
            jail.error = Some(error);
            Some(jail)
        }
    }
}

/// Reads a jail's filter the first time (every `[Definition]` option), and gives its options
/// to the jail's section as `known/...`, where the jail's own values may refer to them.
fn read_filter(
    reader: &mut Reader<'_>,
    jails: &mut Store,
    first: &IndexMap<String, Value>,
    name: &str,
    filter_text: &str,
) -> Result<DefinitionReader, JailError> {
    let store_err = |source| JailError::Store {
        jail: name.to_string(),
        source: Box::new(source),
    };
    let (filter_name, params) =
        extract_options(filter_text).map_err(|source| JailError::FilterSyntax {
            jail: name.to_string(),
            text: filter_text.to_string(),
            source,
        })?;
    let store = reader
        .store(&format!("filter.d/{filter_name}"))
        .map_err(store_err)?
        .ok_or_else(|| JailError::NoFilter {
            jail: name.to_string(),
            name: filter_name.clone(),
        })?;
    let mut def = DefinitionReader::new(store, name, params);
    // The log type follows the backend unless the filter or the jail chose one.
    let backend = text(first.get("backend"));
    if def.init.get("logtype").is_none_or(String::is_empty)
        && !def
            .store
            .own_options("Definition")
            .iter()
            .any(|o| o == "logtype")
    {
        let logtype = if backend.starts_with("systemd") {
            "journal"
        } else {
            "file"
        };
        def.init.insert("logtype".into(), logtype.into());
    }
    let names: Vec<&str> = FILTER_OPTS.iter().map(|(n, _)| *n).collect();
    def.read_options(first, &names, true).map_err(store_err)?;
    let (combined, _) = def
        .combined(&[], &FILTER_OPTS)
        .map_err(|source| JailError::Tags {
            jail: name.to_string(),
            source,
        })?;
    jails.merge_section(name, &combined, "known/");
    Ok(def)
}

fn read_jail_inner(
    reader: &mut Reader<'_>,
    jails: &mut Store,
    jail: &mut Jail,
) -> Result<bool, JailError> {
    let name = jail.name.clone();
    let store_err = |source| JailError::Store {
        jail: name.clone(),
        source: Box::new(source),
    };
    let basedir = reader.basedir.display().to_string();
    jails.merge_defaults(&[
        ("fail2ban_version", FAIL2BAN_VERSION),
        ("fail2ban_confpath", basedir.trim_end_matches('/')),
    ]);
    let first = read_options(jails, &name, &JAIL_FIRST, &name)?;
    if first.get("enabled") != Some(&Value::Bool(true)) {
        return Ok(false);
    }
    let filter_text = text(first.get("filter"));
    let mut filter = None;
    if filter_text.is_empty() {
        jail.warnings.push(format!("jail `{name}`: no filter set"));
    } else {
        filter = Some(read_filter(reader, jails, &first, &name, &filter_text)?);
    }
    let options = read_options(jails, &name, &JAIL_OPTS, &name)?;
    if let Some(def) = filter.as_mut() {
        let names: Vec<&str> = FILTER_OPTS.iter().map(|(n, _)| *n).collect();
        def.read_options(&options, &names, false)
            .map_err(store_err)?;
        let (combined, bad) =
            def.combined(&[], &FILTER_OPTS)
                .map_err(|source| JailError::Tags {
                    jail: name.clone(),
                    source,
                })?;
        if let Some((option, value)) = bad.into_iter().next() {
            return Err(JailError::NotANumber {
                at: super::store::Where(None),
                jail: name.clone(),
                option,
                value,
            });
        }
        jail.filter = Some(combined);
    }
    for entry in split_with_options(&text(options.get("action"))) {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        jail.actions
            .push(read_action(reader, &options, &name, entry)?);
    }
    if jail.actions.is_empty() {
        jail.warnings.push(format!("jail `{name}`: no actions"));
    }
    for opt in options.keys() {
        if let Some(origin) = jails.origin(&name, opt) {
            jail.origins.insert(opt.clone(), origin);
        }
    }
    for opt in ["port", "protocol", "chain", "shadow"] {
        if let Ok(value) = jails.get(&name, opt, &Vars::new()) {
            jail.scope.insert(opt.to_string(), value);
        }
    }
    jail.options = options;
    Ok(true)
}

fn read_action(
    reader: &mut Reader<'_>,
    options: &IndexMap<String, Value>,
    jail: &str,
    entry: &str,
) -> Result<JailAction, JailError> {
    let (file, mut params) = extract_options(entry).map_err(|source| JailError::ActionSyntax {
        jail: jail.into(),
        text: entry.into(),
        source,
    })?;
    if let Some(stem) = file.strip_suffix(".py") {
        let name = params
            .shift_remove("actname")
            .unwrap_or_else(|| stem.to_string());
        return Ok(JailAction::Python {
            name,
            path: reader.basedir.join("action.d").join(&file),
            params,
        });
    }
    // The action's name: `actname`, else the file's, told apart by `name` when it differs.
    let given = params.get("name").cloned();
    let instance = given.clone().unwrap_or_else(|| jail.to_string());
    if given.is_none() {
        params.insert("name".into(), instance.clone());
    }
    let actname = if let Some(a) = params.get("actname") {
        a.clone()
    } else {
        let mut a = file.clone();
        if instance != jail {
            if let Some(rest) = instance.strip_prefix(jail) {
                a.push_str(rest);
            } else {
                a.push('-');
                a.push_str(&instance);
            }
        }
        params.insert("actname".into(), a.clone());
        a
    };
    let store = reader
        .store(&format!("action.d/{file}"))
        .map_err(|source| JailError::Store {
            jail: jail.into(),
            source: Box::new(source),
        })?
        .ok_or_else(|| JailError::NoAction {
            jail: jail.into(),
            name: file.clone(),
        })?;
    let mut def = DefinitionReader::new(store, jail, params);
    let names: Vec<&str> = ACTION_OPTS.iter().map(|(n, _)| *n).collect();
    def.read_options(options, &names, false)
        .map_err(|source| JailError::Store {
            jail: jail.into(),
            source: Box::new(source),
        })?;
    let (combined, _) = def
        .combined(
            &[
                "matches",
                "ipmatches",
                "ipjailmatches",
                "timeout",
                "bantime",
            ],
            &ACTION_OPTS,
        )
        .map_err(|source| JailError::Tags {
            jail: jail.into(),
            source,
        })?;
    // Parameters go to the stream as written (their tags are filled in at ban time).
    let params = def
        .init
        .iter()
        .filter(|(k, _)| !ACTION_OPTS.iter().any(|(n, _)| n == k) && !k.starts_with("known/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(JailAction::Command {
        name: actname,
        options: combined,
        params,
    })
}

fn json_of(value: &Value) -> Json {
    match value {
        Value::Str(s) => Json::String(s.clone()),
        Value::Int(i) => json!(i),
        Value::Bool(b) => json!(b),
    }
}

/// fail2ban's `shlex.split` of a journal match: words separated by white space, quotes
/// grouping and removed.
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    word.push(n);
                    in_word = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Filter options as commands (fail2ban's `_fillStream`): `usedns` first, then `prefregex`
/// and `maxlines` ahead of the rest.
fn fill_stream(stream: &mut Vec<Json>, options: &IndexMap<String, Value>, jail: &str) {
    let mut front = 0;
    for (opt, value) in options {
        match opt.as_str() {
            "failregex" | "ignoreregex" => {
                let lines: Vec<Json> = value
                    .text()
                    .split('\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| json!(l))
                    .collect();
                match lines.len() {
                    0 => {}
                    1 => stream.push(json!(["set", jail, format!("add{opt}"), lines[0]])),
                    _ => stream.push(json!(["multi-set", jail, format!("add{opt}"), lines])),
                }
            }
            "usedns" | "maxlines" | "prefregex" => {
                let at = if opt == "usedns" { 0 } else { front };
                stream.insert(at, json!(["set", jail, opt, json_of(value)]));
                front += 1;
            }
            "datepattern" => stream.push(json!(["set", jail, opt, json_of(value)])),
            "journalmatch" => {
                for line in value.text().split('\n').filter(|l| !l.is_empty()) {
                    let mut cmd = vec![json!("set"), json!(jail), json!("addjournalmatch")];
                    cmd.extend(shell_words(line).into_iter().map(Json::String));
                    stream.push(Json::Array(cmd));
                }
            }
            _ => {}
        }
    }
}

/// fail2ban's `splitwords`: on spaces, commas and new lines.
#[must_use]
pub fn split_words(text: &str) -> Vec<String> {
    text.split([' ', ',', '\n'])
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The log files a `logpath` value names (each line a glob, optionally followed by ` head`
/// or ` tail`), sorted within each glob.
fn log_files(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in value.split('\n') {
        let (pattern, tail) = match line.rsplit_once(' ') {
            Some((p, t)) => (p, t),
            None => (line, "head"),
        };
        let Ok(paths) = glob::glob(pattern) else {
            continue;
        };
        let mut found: Vec<String> = paths
            .filter_map(Result::ok)
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        found.sort();
        out.extend(found.into_iter().map(|p| (p, tail.to_string())));
    }
    out
}

impl Jail {
    /// The jail's commands (fail2ban's `JailReader.convert`).
    #[must_use]
    pub fn stream(&self) -> Vec<Json> {
        let name = self.name.as_str();
        if let Some(error) = &self.error {
            return vec![json!([
                "config-error",
                format!("Jail '{name}' skipped, because of wrong configuration: {error}")
            ])];
        }
        let mut stream = Vec::new();
        if let Some(filter) = &self.filter {
            fill_stream(&mut stream, filter, name);
        }
        fill_stream(&mut stream, &self.options, name);
        let mut logs = Vec::new();
        let mut backend = "auto".to_string();
        for (opt, value) in &self.options {
            match opt.as_str() {
                "logpath" => {
                    if self
                        .options
                        .get("backend")
                        .is_some_and(|b| b.text().starts_with("systemd"))
                    {
                        continue;
                    }
                    for (path, tail) in log_files(&value.text()) {
                        logs.push(json!(["set", name, "addlogpath", path, tail]));
                    }
                }
                "backend" => backend = value.text(),
                "ignoreip" => {
                    let mut cmd = vec![json!("set"), json!(name), json!("addignoreip")];
                    cmd.extend(split_words(&value.text()).into_iter().map(Json::String));
                    stream.push(Json::Array(cmd));
                }
                other if !carried_elsewhere(other) => {
                    stream.push(json!(["set", name, other, json_of(value)]));
                }
                _ => {}
            }
        }
        stream.extend(logs);
        for action in &self.actions {
            match action {
                JailAction::Command {
                    name: actname,
                    options,
                    params,
                } => {
                    stream.push(json!(["set", name, "addaction", actname]));
                    let mut multi: Vec<Json> = options
                        .iter()
                        .filter(|(k, _)| ACTION_OPTS.iter().any(|(n, _)| n == k))
                        .map(|(k, v)| json!([k, json_of(v)]))
                        .collect();
                    multi.extend(params.iter().map(|(k, v)| json!([k, v])));
                    match multi.len() {
                        0 => {}
                        1 => {
                            let mut cmd =
                                vec![json!("set"), json!(name), json!("action"), json!(actname)];
                            if let Json::Array(pair) = multi.remove(0) {
                                cmd.extend(pair);
                            }
                            stream.push(Json::Array(cmd));
                        }
                        _ => stream.push(json!(["multi-set", name, "action", actname, multi])),
                    }
                }
                JailAction::Python {
                    name: actname,
                    path,
                    params,
                } => {
                    stream.push(json!([
                        "set",
                        name,
                        "addaction",
                        actname,
                        path.display().to_string(),
                        python_json(params)
                    ]));
                }
            }
        }
        stream.insert(0, json!(["add", name, backend]));
        stream
    }
}

/// A readable summary of jails, for `banxdp dump`.
#[must_use]
pub fn describe(jails: &[Jail]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for jail in jails {
        let _ = writeln!(out, "[{}]", jail.name);
        if let Some(error) = &jail.error {
            let _ = writeln!(out, "  disabled: {error}\n");
            continue;
        }
        for (opt, value) in &jail.options {
            if matches!(opt.as_str(), "enabled" | "action") {
                continue;
            }
            let text = value.text().replace('\n', "\n      ");
            let _ = writeln!(out, "  {opt} = {text}");
        }
        if let Some(filter) = &jail.filter {
            for opt in [
                "failregex",
                "ignoreregex",
                "prefregex",
                "datepattern",
                "maxlines",
            ] {
                if let Some(value) = filter.get(opt) {
                    let text = value.text().replace('\n', "\n      ");
                    let _ = writeln!(out, "  filter.{opt} = {text}");
                }
            }
        }
        for action in &jail.actions {
            match action {
                JailAction::Command { name, params, .. } => {
                    let params: Vec<String> =
                        params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let _ = writeln!(out, "  action {name} [{}]", params.join(", "));
                }
                JailAction::Python { name, path, .. } => {
                    let _ = writeln!(
                        out,
                        "  action {name} (python: {}; not run by banxdp)",
                        path.display()
                    );
                }
            }
        }
        out.push('\n');
    }
    out
}

/// `json.dumps` of a string map, with Python's separators.
fn python_json(map: &IndexMap<String, String>) -> String {
    let body: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{}: {}", Json::String(k.clone()), Json::String(v.clone())))
        .collect();
    format!("{{{}}}", body.join(", "))
}

/// Reads `fail2ban.conf` (and its `.d`, `.local`): the stream's global settings.
pub fn global_stream(reader: &mut Reader<'_>) -> Result<Vec<Json>, StoreError> {
    let store = reader.store("fail2ban")?.unwrap_or_default();
    let get = |opt: &str, default: &str| -> Result<String, StoreError> {
        match store.get("Definition", opt, &Vars::new()) {
            Ok(v) => Ok(v),
            Err(StoreError::NoOption { .. } | StoreError::NoSection(_)) => Ok(default.to_string()),
            Err(e) => Err(e),
        }
    };
    // What the client reads before anything else takes precedence (fail2ban's early options).
    let mut entries: Vec<(u8, Json)> = vec![
        (
            11,
            json!(["set", "syslogsocket", get("syslogsocket", "auto")?]),
        ),
        (12, json!(["set", "loglevel", get("loglevel", "INFO")?])),
        (
            13,
            json!([
                "set",
                "logtarget",
                get("logtarget", "/var/log/fail2ban.log")?
            ]),
        ),
        (14, json!(["set", "allowipv6", get("allowipv6", "auto")?])),
        (
            50,
            json!([
                "set",
                "dbfile",
                get("dbfile", "/var/lib/fail2ban/fail2ban.sqlite3")?
            ]),
        ),
    ];
    match store.get("Definition", "dbmaxmatches", &Vars::new()) {
        Ok(v) => {
            if let Some(n) = super::readers::as_int(&v) {
                entries.push((51, json!(["set", "dbmaxmatches", n])));
            }
        }
        Err(StoreError::NoOption { .. } | StoreError::NoSection(_)) => {}
        Err(e) => return Err(e),
    }
    entries.push((51, json!(["set", "dbpurgeage", get("dbpurgeage", "1d")?])));
    if store.has_section("Thread") {
        if let Ok(v) = store.get("Thread", "stacksize", &Vars::new()) {
            if let Some(n) = super::readers::as_int(&v) {
                entries.push((0, json!(["set", "thread", {"stacksize": n}])));
            }
        }
    }
    entries.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.to_string().cmp(&b.1.to_string()))
    });
    Ok(entries.into_iter().map(|(_, c)| c).collect())
}

/// Every jail section of `basedir`'s jail files, read; the enabled ones and the broken ones.
pub fn read_jails(reader: &mut Reader<'_>) -> Result<Vec<Jail>, StoreError> {
    let Some(mut jails) = reader.store("jail")? else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = jails
        .section_names()
        .filter(|n| *n != "INCLUDES")
        .map(str::to_string)
        .collect();
    Ok(names
        .iter()
        .filter_map(|name| read_jail(reader, &mut jails, name))
        .collect())
}

/// What reading a configuration directory gave.
pub struct Dump {
    /// The commands `fail2ban-client -d` prints for the directory.
    pub stream: Vec<Json>,
    /// Enabled jails, and those that could not be read (with their error).
    pub jails: Vec<Jail>,
    /// Include loops (`a` includes `b`, which is being read already), skipped.
    pub loops: Vec<(PathBuf, PathBuf)>,
}

/// Reads `basedir` and builds the stream `fail2ban-client -d` prints for it. `check` is
/// what banxdp checks of a jail beyond what fail2ban's client does (`crate::config::
/// dump_stream` passes `JailConfig::resolve`): a jail it refuses is not started.
pub fn read_stream(
    files: &dyn Files,
    basedir: &Path,
    check: impl Fn(&Jail) -> Result<(), JailError>,
) -> Result<Dump, StoreError> {
    let mut reader = Reader {
        files,
        basedir: basedir.to_path_buf(),
        cache: FileCache::default(),
        loops: Vec::new(),
    };
    let mut stream = global_stream(&mut reader)?;
    let mut jails = read_jails(&mut reader)?;
    // banxdp checks what fail2ban leaves to its server (times, numbers): a jail it could not
    // run is reported here, not at its first ban.
    for jail in &mut jails {
        if jail.error.is_none() {
            if let Err(error) = check(jail) {
                jail.error = Some(error);
            }
        }
    }
    for jail in &jails {
        stream.extend(jail.stream());
    }
    for jail in jails.iter().filter(|j| j.error.is_none()) {
        stream.push(json!(["start", jail.name]));
    }
    Ok(Dump {
        stream,
        jails,
        loops: reader.loops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_group_quotes() {
        assert_eq!(
            shell_words("_SYSTEMD_UNIT=sshd.service + _COMM=sshd"),
            ["_SYSTEMD_UNIT=sshd.service", "+", "_COMM=sshd"]
        );
        assert_eq!(shell_words(r#"a "b c" 'd e'"#), ["a", "b c", "d e"]);
    }

    #[test]
    fn words_split_on_spaces_commas_and_lines() {
        assert_eq!(
            split_words("127.0.0.1/8 ::1, 10.0.0.1\n1.2.3.4"),
            ["127.0.0.1/8", "::1", "10.0.0.1", "1.2.3.4"]
        );
    }
}
