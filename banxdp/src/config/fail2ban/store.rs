//! A set of fail2ban configuration files read as one: which files make up `NAME` (`NAME.conf`,
//! `NAME.d/*.conf`, `NAME.local`, `NAME.d/*.local`, each with its `[INCLUDES]` `before` and
//! `after` files and their `.local` companions), how their sections merge (a later file's
//! options override, and the values they override stay reachable as `known/OPTION`), and how
//! values are interpolated (`%(option)s` from the section, `[DEFAULT]` or caller-supplied
//! variables; `%(section/option)s`, `%(default/option)s`, `%(known/option)s`; `%(__name__)s`
//! is the section's name; `%%` is `%`).
//!
//! Files are read through [`Files`], so the logic is tested on text held in memory.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use indexmap::IndexMap;

use super::ini::{self, IniFile, Options, Origin, Raw};

/// How the store reads files: the real file system, or a map in tests.
pub trait Files {
    /// The text of `path`, or `None` when it does not exist (or is not a file).
    fn read(&self, path: &Path) -> Option<String>;
    /// The files matching `dir/*.EXT`, sorted by name.
    fn list(&self, dir: &Path, ext: &str) -> Vec<PathBuf>;
}

/// The real file system.
pub struct Disk;

impl Files for Disk {
    fn read(&self, path: &Path) -> Option<String> {
        if !path.is_file() {
            return None;
        }
        std::fs::read(path)
            .ok()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }

    fn list(&self, dir: &Path, ext: &str) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .filter(|p| {
                // fail2ban globs `*.conf`, which skips hidden files.
                p.file_name()
                    .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
            })
            .collect();
        found.sort();
        found
    }
}

/// A value the readers pass around: configuration text, or what it converts to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Value {
    /// The text form, as Python's `str()` gives it.
    #[must_use]
    pub fn text(&self) -> String {
        match self {
            Self::Str(s) => s.clone(),
            Self::Int(i) => i.to_string(),
            Self::Bool(true) => "True".into(),
            Self::Bool(false) => "False".into(),
        }
    }
}

/// Variables that take precedence over a section's options in interpolation.
pub type Vars = IndexMap<String, Value>;

/// A problem reading or interpolating configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Ini(#[from] ini::IniError),
    #[error("no section [{0}]")]
    NoSection(String),
    #[error("no option `{option}` in [{section}]")]
    NoOption { section: String, option: String },
    #[error("{at}option `{option}` of [{section}]: `%({var})s` is not defined")]
    Undefined {
        at: Where,
        section: String,
        option: String,
        var: String,
    },
    #[error(
        "{at}option `{option}` of [{section}]: bad interpolation `{text}` (`%` must be followed by `%` or `(name)s`)"
    )]
    BadInterpolation {
        at: Where,
        section: String,
        option: String,
        text: String,
    },
    #[error(
        "{at}option `{option}` of [{section}]: interpolation nested more than 10 deep (a loop?)"
    )]
    TooDeep {
        at: Where,
        section: String,
        option: String,
    },
}

/// An optional `file:line: ` prefix for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Where(pub Option<Origin>);

impl std::fmt::Display for Where {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(origin) => write!(f, "{origin}: "),
            None => Ok(()),
        }
    }
}

/// Files that were read, and include loops met on the way (fail2ban skips them silently).
#[derive(Clone, Debug, Default)]
pub struct ReadReport {
    pub files: Vec<PathBuf>,
    pub loops: Vec<(PathBuf, PathBuf)>,
}

/// The merged configuration of one name (`jail`, `filter.d/sshd`, `action.d/iptables`...).
#[derive(Clone, Debug, Default)]
pub struct Store {
    pub defaults: Options,
    pub sections: IndexMap<String, Options>,
}

/// `NAME?COND` section names: conditional sections, merged into `NAME` with `?COND` keys.
fn conditional(name: &str) -> Option<(&str, &str)> {
    let at = name.find('?')?;
    let (base, cond) = name.split_at(at);
    (!base.is_empty() && base.chars().all(|c| c.is_alphanumeric() || c == '_') && cond.len() > 1)
        .then_some((base, cond))
}

impl Store {
    /// Reads everything that makes up `name` under `basedir` (fail2ban's `ConfigReader.read`).
    /// Returns `None` when no file of it exists.
    pub fn read(
        files: &dyn Files,
        basedir: &Path,
        name: &str,
        cache: &mut FileCache,
    ) -> Result<Option<(Self, ReadReport)>, StoreError> {
        let base = basedir.join(name);
        let mut candidates = vec![with_ext(&base, "conf")];
        let dir = with_ext(&base, "d");
        candidates.extend(files.list(&dir, "conf"));
        candidates.push(with_ext(&base, "local"));
        candidates.extend(files.list(&dir, "local"));
        let present: Vec<PathBuf> = candidates
            .into_iter()
            .filter(|p| cache.get(files, p).is_some())
            .collect();
        if present.is_empty() {
            return Ok(None);
        }
        let mut report = ReadReport::default();
        let order = includes(files, &present, &[], cache, &mut report)?;
        let mut store = Self::default();
        for path in &order {
            let Some(parsed) = cache.get(files, path) else {
                continue;
            };
            let parsed = parsed?;
            store.merge(&parsed);
            report.files.push(path.clone());
        }
        Ok(Some((store, report)))
    }

    /// Merges one file in, as fail2ban does: defaults updated; a section seen before keeps
    /// the values it loses as `KNOWN/<section>`.
    pub fn merge(&mut self, file: &IniFile) {
        for (k, v) in &file.defaults {
            self.defaults.insert(k.clone(), v.clone());
        }
        for (name, options) in &file.sections {
            let (name, renamed): (String, Options) = match conditional(name) {
                Some((base, cond)) => (
                    base.to_string(),
                    options
                        .iter()
                        .map(|(k, v)| (format!("{k}{cond}"), v.clone()))
                        .collect(),
                ),
                None => (name.clone(), options.clone()),
            };
            if let Some(existing) = self.sections.get(&name) {
                let shadowed: Options = existing
                    .iter()
                    .filter(|(k, _)| renamed.contains_key(*k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let known = self.sections.entry(format!("KNOWN/{name}")).or_default();
                for (k, v) in shadowed {
                    known.insert(k, v);
                }
                let existing = self.sections.get_mut(&name).expect("checked");
                for (k, v) in renamed {
                    existing.insert(k, v);
                }
            } else {
                self.sections.insert(name, renamed);
            }
        }
    }

    /// Section names, without the `KNOWN/` shadows.
    pub fn section_names(&self) -> impl Iterator<Item = &str> {
        self.sections
            .keys()
            .map(String::as_str)
            .filter(|n| !n.starts_with("KNOWN/"))
    }

    #[must_use]
    pub fn has_section(&self, section: &str) -> bool {
        self.sections.contains_key(section)
    }

    /// A section's own option names, in order.
    #[must_use]
    pub fn own_options(&self, section: &str) -> Vec<String> {
        self.sections
            .get(section)
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Where an option was written (the section's, else the default's).
    #[must_use]
    pub fn origin(&self, section: &str, option: &str) -> Option<Origin> {
        self.sections
            .get(section)
            .and_then(|s| s.get(option))
            .or_else(|| self.defaults.get(option))
            .map(|raw| raw.origin.clone())
    }

    /// Adds options to a section (creating it), each name prefixed with `prefix` unless it
    /// has it already (fail2ban's `merge_section`).
    pub fn merge_section(
        &mut self,
        section: &str,
        options: &IndexMap<String, Value>,
        prefix: &str,
    ) {
        let target = self.sections.entry(section.to_string()).or_default();
        for (k, v) in options {
            if !prefix.is_empty() && k.starts_with(prefix) {
                continue;
            }
            target.insert(
                format!("{prefix}{k}"),
                Raw {
                    value: v.text(),
                    origin: Origin {
                        file: Arc::from(Path::new("(derived)")),
                        line: 0,
                    },
                },
            );
        }
    }

    /// Adds defaults that are not set yet... or replaces them (fail2ban's `merge_defaults`).
    pub fn merge_defaults(&mut self, values: &[(&str, &str)]) {
        for (k, v) in values {
            self.defaults.insert(
                (*k).to_string(),
                Raw {
                    value: (*v).to_string(),
                    origin: Origin {
                        file: Arc::from(Path::new("(built-in)")),
                        line: 0,
                    },
                },
            );
        }
    }

    /// The raw value `get` would start from: vars, then the section, then the defaults.
    fn lookup(&self, section: &str, option: &str, vars: &Vars) -> Result<String, StoreError> {
        let own = if section == "DEFAULT" {
            None
        } else {
            Some(
                self.sections
                    .get(section)
                    .ok_or_else(|| StoreError::NoSection(section.to_string()))?,
            )
        };
        if let Some(v) = vars.get(option) {
            return Ok(v.text());
        }
        own.and_then(|s| s.get(option))
            .or_else(|| self.defaults.get(option))
            .map(|raw| raw.value.clone())
            .ok_or_else(|| StoreError::NoOption {
                section: section.to_string(),
                option: option.to_string(),
            })
    }

    /// An option's value, interpolated (Python's `ConfigParser.get` with fail2ban's
    /// extensions). `vars` take precedence over the section and its defaults.
    pub fn get(&self, section: &str, option: &str, vars: &Vars) -> Result<String, StoreError> {
        let option = option.to_lowercase();
        let value = self.lookup(section, &option, vars)?;
        let mut extra: HashMap<String, String> = HashMap::new();
        extra.insert("__name__".into(), section.to_string());
        let mut out = String::new();
        self.interpolate(section, &option, &value, vars, &mut extra, &mut out, 1)?;
        Ok(out)
    }

    /// The raw (uninterpolated) value.
    pub fn get_raw(&self, section: &str, option: &str) -> Result<String, StoreError> {
        self.lookup(section, &option.to_lowercase(), &Vars::new())
    }

    /// fail2ban's `get_ex`: `sec/opt` names read `opt` from section `sec` (`known/` from
    /// `KNOWN/<section>` then `<section>`, `default/` from the defaults), else a plain `get`.
    pub fn get_ex(&self, section: &str, option: &str, vars: &Vars) -> Result<String, StoreError> {
        if let Some((sec, opt)) = split_qualified(option) {
            let candidates: Vec<String> = match sec.to_lowercase().as_str() {
                "known" => vec![format!("KNOWN/{section}"), section.to_string()],
                "default" => vec!["DEFAULT".to_string()],
                _ => vec![sec.to_string()],
            };
            for candidate in candidates {
                if let Ok(v) = self.get(&candidate, opt, &Vars::new()) {
                    return Ok(v);
                }
            }
        }
        self.get(section, option, vars)
    }

    /// `%(sec/opt)s` references in `text` that the map lacks, resolved to raw values
    /// (fail2ban's `_map_section_options`).
    fn map_qualified(
        &self,
        section: &str,
        text: &str,
        vars: &Vars,
        extra: &mut HashMap<String, String>,
    ) {
        let mut rest = text;
        while let Some(at) = rest.find("%(") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(")s") else { break };
            let name = &rest[..end];
            let Some((sec, opt)) = split_qualified(name) else {
                continue;
            };
            if !sec
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            {
                continue;
            }
            if vars.contains_key(name) || extra.contains_key(name) {
                continue;
            }
            let mut value = None;
            let lower = sec.to_lowercase();
            if lower == "known" {
                value = self
                    .sections
                    .get(&format!("KNOWN/{section}"))
                    .and_then(|s| s.get(opt))
                    .map(|r| r.value.clone());
            } else if lower != "default" {
                let Some(s) = self.sections.get(sec) else {
                    continue;
                };
                value = s.get(opt).map(|r| r.value.clone());
            }
            let value = value.or_else(|| self.defaults.get(opt).map(|r| r.value.clone()));
            if let Some(value) = value {
                extra.insert(name.to_string(), value);
            }
        }
    }

    /// The raw value of `%(var)s`: vars, then qualified names found so far, then the
    /// section, then the defaults.
    fn resolve(
        &self,
        section: &str,
        var: &str,
        vars: &Vars,
        extra: &HashMap<String, String>,
    ) -> Option<String> {
        if let Some(v) = vars.get(var) {
            return Some(v.text());
        }
        if let Some(v) = extra.get(var) {
            return Some(v.clone());
        }
        self.sections
            .get(section)
            .and_then(|s| s.get(var))
            .or_else(|| self.defaults.get(var))
            .map(|raw| raw.value.clone())
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the recursion carries its whole context"
    )]
    fn interpolate(
        &self,
        section: &str,
        option: &str,
        text: &str,
        vars: &Vars,
        extra: &mut HashMap<String, String>,
        out: &mut String,
        depth: usize,
    ) -> Result<(), StoreError> {
        let at = || Where(self.origin(section, option));
        if depth > 10 {
            return Err(StoreError::TooDeep {
                at: at(),
                section: section.into(),
                option: option.into(),
            });
        }
        self.map_qualified(section, text, vars, extra);
        let mut rest = text;
        while !rest.is_empty() {
            let Some(p) = rest.find('%') else {
                out.push_str(rest);
                return Ok(());
            };
            out.push_str(&rest[..p]);
            rest = &rest[p..];
            if rest[1..].starts_with('%') {
                out.push('%');
                rest = &rest[2..];
            } else if rest[1..].starts_with('(') {
                let close = rest.find(')');
                let Some(close) = close.filter(|c| *c > 2 && rest[*c + 1..].starts_with('s'))
                else {
                    return Err(StoreError::BadInterpolation {
                        at: at(),
                        section: section.into(),
                        option: option.into(),
                        text: rest.to_string(),
                    });
                };
                let var = rest[2..close].to_lowercase();
                rest = &rest[close + 2..];
                let value = self.resolve(section, &var, vars, extra).ok_or_else(|| {
                    StoreError::Undefined {
                        at: at(),
                        section: section.into(),
                        option: option.into(),
                        var: var.clone(),
                    }
                })?;
                if value.contains('%') {
                    self.interpolate(section, option, &value, vars, extra, out, depth + 1)?;
                } else {
                    out.push_str(&value);
                }
            } else {
                return Err(StoreError::BadInterpolation {
                    at: at(),
                    section: section.into(),
                    option: option.into(),
                    text: rest.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// `sec/opt` as fail2ban's `^([\w\-]+)/([^\s>]+)$` reads it.
fn split_qualified(name: &str) -> Option<(&str, &str)> {
    let (sec, opt) = name.split_once('/')?;
    let ok_sec = !sec.is_empty()
        && sec
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    let ok_opt = !opt.is_empty() && !opt.chars().any(|c| c.is_whitespace() || c == '>');
    (ok_sec && ok_opt).then_some((sec, opt))
}

fn with_ext(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_os_string();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// `x.conf` → `x.local`.
fn local_of(path: &Path) -> PathBuf {
    path.with_extension("local")
}

/// Parsed files, each read once.
#[derive(Default)]
pub struct FileCache {
    parsed: HashMap<PathBuf, Option<Result<Arc<IniFile>, StoreError>>>,
}

impl FileCache {
    /// The parsed file, `None` when it does not exist.
    pub fn get(
        &mut self,
        files: &dyn Files,
        path: &Path,
    ) -> Option<Result<Arc<IniFile>, StoreError>> {
        self.parsed
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                let text = files.read(path)?;
                let file: Arc<Path> = Arc::from(path);
                Some(
                    ini::parse(&text, &file)
                        .map(Arc::new)
                        .map_err(StoreError::from),
                )
            })
            .clone()
    }
}

/// The files to merge for `paths`, in order: each file's `before` includes, itself, its
/// `after` includes; each with its `.local` companion after it (fail2ban's `_getIncludes`).
fn includes(
    files: &dyn Files,
    paths: &[PathBuf],
    seen: &[PathBuf],
    cache: &mut FileCache,
    report: &mut ReadReport,
) -> Result<Vec<PathBuf>, StoreError> {
    let mut expanded: Vec<PathBuf> = Vec::new();
    for path in paths {
        expanded.push(path.clone());
        let local = local_of(path);
        if !paths.contains(&local) && cache.get(files, &local).is_some() {
            expanded.push(local);
        }
    }
    let mut out = Vec::new();
    for path in &expanded {
        let Some(parsed) = cache.get(files, path) else {
            continue;
        };
        let parsed = parsed?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut before = Vec::new();
        let mut after = Vec::new();
        if let Some(section) = parsed.sections.get("INCLUDES") {
            for (option, list) in [("before", &mut before), ("after", &mut after)] {
                let Some(raw) = section.get(option) else {
                    continue;
                };
                for entry in raw.value.split('\n').filter(|e| !e.is_empty()) {
                    let target = if Path::new(entry).is_absolute() {
                        PathBuf::from(entry)
                    } else {
                        dir.join(entry)
                    };
                    // Only ancestors are skipped: a file that includes itself is read twice,
                    // as in fail2ban.
                    if seen.contains(&target) {
                        report.loops.push((path.clone(), target));
                        continue;
                    }
                    let mut deeper = seen.to_vec();
                    deeper.push(path.clone());
                    list.extend(includes(files, &[target], &deeper, cache, report)?);
                }
            }
        }
        out.extend(before);
        out.push(path.clone());
        out.extend(after);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files held in memory.
    struct Memory(Vec<(&'static str, &'static str)>);

    impl Files for Memory {
        fn read(&self, path: &Path) -> Option<String> {
            self.0
                .iter()
                .find(|(p, _)| Path::new(p) == path)
                .map(|(_, t)| (*t).to_string())
        }
        fn list(&self, dir: &Path, ext: &str) -> Vec<PathBuf> {
            let mut found: Vec<PathBuf> = self
                .0
                .iter()
                .map(|(p, _)| PathBuf::from(p))
                .filter(|p| p.parent() == Some(dir) && p.extension().is_some_and(|e| e == ext))
                .collect();
            found.sort();
            found
        }
    }

    fn read(files: &Memory, name: &str) -> (Store, ReadReport) {
        Store::read(files, Path::new("/c"), name, &mut FileCache::default())
            .unwrap()
            .expect("files exist")
    }

    fn get(store: &Store, section: &str, option: &str) -> String {
        store.get(section, option, &Vars::new()).unwrap()
    }

    #[test]
    fn layers_in_fail2ban_order_and_keeps_known_values() {
        let files = Memory(vec![
            (
                "/c/jail.conf",
                "[DEFAULT]\nbantime = 10m\n[sshd]\nport = ssh\nmaxretry = 5\n",
            ),
            ("/c/jail.d/a.conf", "[sshd]\nmaxretry = 4\n"),
            (
                "/c/jail.local",
                "[sshd]\nmaxretry = 3\nbantime = %(known/bantime)s\n",
            ),
            ("/c/jail.d/b.local", "[sshd]\nport = %(known/port)s,2222\n"),
        ]);
        let (store, report) = read(&files, "jail");
        let names: Vec<String> = report
            .files
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "/c/jail.conf",
                "/c/jail.d/a.conf",
                "/c/jail.local",
                "/c/jail.d/b.local"
            ]
        );
        assert_eq!(get(&store, "sshd", "maxretry"), "3");
        assert_eq!(get(&store, "sshd", "port"), "ssh,2222");
        // `known/` reaches the value a later file replaced, else the default.
        assert_eq!(get(&store, "sshd", "bantime"), "10m");
        assert_eq!(store.section_names().collect::<Vec<_>>(), ["sshd"]);
    }

    #[test]
    fn includes_come_before_and_after_with_their_local_files() {
        let files = Memory(vec![
            (
                "/c/filter.d/x.conf",
                "[INCLUDES]\nbefore = common.conf\nafter = x-after.conf\n[Definition]\nd = %(_daemon)s\n",
            ),
            ("/c/filter.d/common.conf", "[DEFAULT]\n_daemon = common\n"),
            ("/c/filter.d/common.local", "[DEFAULT]\n_daemon = local\n"),
            ("/c/filter.d/x-after.conf", "[Definition]\ne = after\n"),
        ]);
        let (store, report) = read(&files, "filter.d/x");
        let names: Vec<String> = report
            .files
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "/c/filter.d/common.conf",
                "/c/filter.d/common.local",
                "/c/filter.d/x.conf",
                "/c/filter.d/x-after.conf"
            ]
        );
        assert_eq!(get(&store, "Definition", "d"), "local");
        assert_eq!(get(&store, "Definition", "e"), "after");
    }

    #[test]
    fn include_loops_are_reported_and_cut() {
        let files = Memory(vec![
            (
                "/c/action.d/a.conf",
                "[INCLUDES]\nbefore = b.conf\n[Definition]\nx = 1\n",
            ),
            (
                "/c/action.d/b.conf",
                "[INCLUDES]\nbefore = a.conf\n[Definition]\ny = 2\n",
            ),
        ]);
        let (store, report) = read(&files, "action.d/a");
        assert_eq!(get(&store, "Definition", "y"), "2");
        assert_eq!(report.loops.len(), 1);
        assert_eq!(report.loops[0].1, Path::new("/c/action.d/a.conf"));
    }

    #[test]
    fn conditional_sections_merge_with_suffixed_names() {
        let files = Memory(vec![(
            "/c/action.d/i.conf",
            "[Init]\nblocktype = REJECT\n[Init?family=inet6]\nblocktype = DROP6\n",
        )]);
        let (store, _) = read(&files, "action.d/i");
        assert_eq!(
            store.own_options("Init"),
            ["blocktype", "blocktype?family=inet6"]
        );
        assert_eq!(get(&store, "Init", "blocktype?family=inet6"), "DROP6");
    }

    #[test]
    fn interpolation_names_sections_escapes_and_vars() {
        let files = Memory(vec![(
            "/c/jail.conf",
            "[DEFAULT]\nname = %(__name__)s\naction_ = %(banaction)s[name=%(__name__)s]\nbanaction = iptables\n[sshd]\npct = 100%%\nother = %(web/port)s\n[web]\nport = 80\n",
        )]);
        let (store, _) = read(&files, "jail");
        assert_eq!(get(&store, "sshd", "name"), "sshd");
        assert_eq!(get(&store, "sshd", "action_"), "iptables[name=sshd]");
        assert_eq!(get(&store, "sshd", "pct"), "100%");
        assert_eq!(get(&store, "sshd", "other"), "80");
        let mut vars = Vars::new();
        vars.insert("banaction".into(), Value::Str("nftables".into()));
        assert_eq!(
            store.get("sshd", "action_", &vars).unwrap(),
            "nftables[name=sshd]"
        );
    }

    #[test]
    fn undefined_and_looping_references_name_file_and_line() {
        let files = Memory(vec![(
            "/c/jail.conf",
            "[sshd]\nport = ssh\naction = %(nosuch)s\nloop = %(loop)s\nbad = 5%x\n",
        )]);
        let (store, _) = read(&files, "jail");
        let e = store.get("sshd", "action", &Vars::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/c/jail.conf:3: option `action` of [sshd]: `%(nosuch)s` is not defined"
        );
        let e = store.get("sshd", "loop", &Vars::new()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/c/jail.conf:4: option `loop` of [sshd]: interpolation nested"),
            "{e}"
        );
        let e = store.get("sshd", "bad", &Vars::new()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/c/jail.conf:5: option `bad` of [sshd]: bad interpolation"),
            "{e}"
        );
    }
}
