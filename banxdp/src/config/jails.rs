//! What banxdp uses of a jail, typed and checked: times in seconds, counts as numbers, the
//! filter's regular expressions as lists, the port scope. Built from what `fail2ban` read;
//! every error names the jail, and the file and line where the value was written.

use super::{
    duration::parse_seconds,
    fail2ban::{Jail, JailAction, JailError, Value, store::Where},
};

/// How long a ban lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bantime {
    Seconds(i64),
    /// `bantime = -1` (any negative value).
    Permanent,
}

/// `bantime.*`: bans that grow for repeat offenders.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Increment {
    pub enabled: bool,
    pub factor: Option<String>,
    pub formula: Option<String>,
    pub multipliers: Option<String>,
    pub maxtime: Option<i64>,
    pub rndtime: Option<i64>,
    pub overalljails: bool,
}

/// A jail as banxdp runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JailConfig {
    pub name: String,
    pub backend: String,
    pub logpaths: Vec<String>,
    pub logencoding: Option<String>,
    pub logtimezone: Option<String>,
    pub failregex: Vec<String>,
    pub ignoreregex: Vec<String>,
    pub prefregex: Option<String>,
    pub datepattern: Option<String>,
    pub journalmatch: Vec<String>,
    pub maxlines: u32,
    pub usedns: String,
    pub maxretry: u32,
    pub maxmatches: Option<u32>,
    pub findtime: i64,
    pub bantime: Bantime,
    pub increment: Increment,
    pub ignoreip: Vec<String>,
    pub ignoreself: bool,
    pub ignorecommand: Option<String>,
    pub port: Option<String>,
    pub protocol: Option<String>,
    pub chain: Option<String>,
    /// banxdp's own `shadow` (count what the jail's bans would drop, and pass it), as
    /// written; unset means off.
    pub shadow: Option<String>,
    pub actions: Vec<ActionConfig>,
}

/// One of a jail's action.d actions, as far as banxdp's own enforcement reads it: which
/// action it is, and the parameters it gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionConfig {
    /// The action's name (`actname`: `iptables-multiport`, `iptables-multiport-SSH` when
    /// given `name=SSH`), which tells a firewall action from a notification.
    pub name: String,
    /// The action.d file it comes from (`iptables-multiport`), when known.
    pub file: String,
    /// Its parameters as fail2ban hands them to the action: those written in the jail's
    /// `action = file[key=value, ...]` (unquoted, `%(...)s` already interpolated), then the
    /// action file's `[Init]` defaults for the others (`port = ssh` in `iptables.conf`).
    pub params: Vec<(String, String)>,
}

impl ActionConfig {
    /// The value of parameter `key`, when the action has one.
    #[must_use]
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// What a jail's `action` line names, read without the action file: `iptables`,
    /// `iptables-multiport[name=SSH, port="22,2222"]` (fail2ban's `name[key=value, ...]`
    /// syntax, quotes removed). Text that is not that syntax is taken as a bare name.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        if let Ok((file, params)) = super::fail2ban::readers::extract_options(text.trim()) {
            return Self {
                name: file.clone(),
                file,
                params: params.into_iter().collect(),
            };
        }
        let name = text.split('[').next().unwrap_or("").trim().to_string();
        Self {
            file: name.clone(),
            name,
            params: Vec::new(),
        }
    }

    /// A jail's action as the configuration reader resolved it. The action.d file is told
    /// from the name by undoing fail2ban's naming (`file` + `-NAME` when `name` differs from
    /// the jail's); where an `actname` was given outright, the reader no longer knows the
    /// file, and this is a guess from that name.
    fn resolved(jail: &str, action: &JailAction) -> Self {
        let (name, params) = match action {
            JailAction::Command { name, params, .. } => (name.clone(), params.clone()),
            JailAction::Python { name, params, .. } => (
                name.clone(),
                params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            ),
        };
        let instance = params
            .iter()
            .find(|(k, _)| k == "name")
            .map_or(jail, |(_, v)| v.as_str());
        let suffix = match instance.strip_prefix(jail) {
            _ if instance == jail => String::new(),
            Some(rest) => rest.to_string(),
            None => format!("-{instance}"),
        };
        let file = name
            .strip_suffix(suffix.as_str())
            .filter(|f| !f.is_empty())
            .unwrap_or(&name)
            .to_string();
        Self { name, file, params }
    }
}

impl From<&str> for ActionConfig {
    fn from(text: &str) -> Self {
        Self::parse(text)
    }
}

/// Defaults of fail2ban's server for what a configuration leaves unset.
const DEFAULT_MAXRETRY: u32 = 3;
const DEFAULT_FINDTIME: i64 = 600;
const DEFAULT_BANTIME: i64 = 600;

fn lines(value: Option<&Value>) -> Vec<String> {
    value
        .map(Value::text)
        .unwrap_or_default()
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

impl JailConfig {
    /// The jail's filter as the filter engine takes it: `Scanner::new(&jail.filter_spec(),
    /// year)` is how the daemon reads the jail's logs.
    #[must_use]
    pub fn filter_spec(&self) -> crate::filter::FilterSpec {
        crate::filter::FilterSpec {
            prefregex: self.prefregex.clone().filter(|p| !p.is_empty()),
            failregex: self.failregex.clone(),
            ignoreregex: self.ignoreregex.clone(),
            usedns: self.usedns.clone(),
            maxlines: usize::try_from(self.maxlines).unwrap_or(1).max(1),
            datepattern: self.datepattern.clone().filter(|p| !p.trim().is_empty()),
        }
    }

    /// Checks and types what `jail` read. The jail's own filter options win over its
    /// filter's, as in fail2ban.
    pub fn resolve(jail: &Jail) -> Result<Self, JailError> {
        let opts = &jail.options;
        let filter = jail.filter.clone().unwrap_or_default();
        // A filter option set in the jail replaces the filter's.
        let pick = |name: &str| opts.get(name).or_else(|| filter.get(name));
        let text = |name: &str| pick(name).map(Value::text);
        let at = |name: &str| Where(jail.origins.get(name).cloned());
        let time = |name: &str, default: i64| -> Result<i64, JailError> {
            match opts.get(name) {
                None => Ok(default),
                Some(v) => parse_seconds(&v.text()).map_err(|source| JailError::BadTime {
                    at: at(name),
                    jail: jail.name.clone(),
                    option: name.into(),
                    source,
                }),
            }
        };
        let count = |name: &str| -> Result<Option<u32>, JailError> {
            match pick(name) {
                None => Ok(None),
                Some(Value::Int(n)) => {
                    u32::try_from(*n)
                        .map(Some)
                        .map_err(|_| JailError::NotANumber {
                            at: at(name),
                            jail: jail.name.clone(),
                            option: name.into(),
                            value: n.to_string(),
                        })
                }
                Some(other) => Err(JailError::NotANumber {
                    at: at(name),
                    jail: jail.name.clone(),
                    option: name.into(),
                    value: other.text(),
                }),
            }
        };
        let flag = |name: &str| matches!(opts.get(name), Some(Value::Bool(true)));
        let optional_time = |name: &str| -> Result<Option<i64>, JailError> {
            if opts.contains_key(name) {
                time(name, 0).map(Some)
            } else {
                Ok(None)
            }
        };
        let bantime = match time("bantime", DEFAULT_BANTIME)? {
            s if s < 0 => Bantime::Permanent,
            s => Bantime::Seconds(s),
        };
        Ok(Self {
            name: jail.name.clone(),
            backend: text("backend").unwrap_or_else(|| "auto".into()),
            logpaths: lines(opts.get("logpath")),
            logencoding: text("logencoding"),
            logtimezone: text("logtimezone"),
            failregex: lines(pick("failregex")),
            ignoreregex: lines(pick("ignoreregex")),
            prefregex: text("prefregex"),
            datepattern: text("datepattern"),
            journalmatch: lines(pick("journalmatch")),
            maxlines: count("maxlines")?.unwrap_or(1),
            usedns: text("usedns").unwrap_or_else(|| "warn".into()),
            maxretry: count("maxretry")?.unwrap_or(DEFAULT_MAXRETRY),
            maxmatches: count("maxmatches")?,
            findtime: time("findtime", DEFAULT_FINDTIME)?,
            bantime,
            increment: Increment {
                enabled: flag("bantime.increment"),
                factor: text("bantime.factor"),
                formula: text("bantime.formula"),
                multipliers: text("bantime.multipliers"),
                maxtime: optional_time("bantime.maxtime")?,
                rndtime: optional_time("bantime.rndtime")?,
                overalljails: flag("bantime.overalljails"),
            },
            ignoreip: text("ignoreip")
                .map(|v| super::fail2ban::jail::split_words(&v))
                .unwrap_or_default(),
            ignoreself: !matches!(opts.get("ignoreself"), Some(Value::Bool(false))),
            ignorecommand: text("ignorecommand").filter(|c| !c.is_empty()),
            port: jail.scope.get("port").cloned(),
            protocol: jail.scope.get("protocol").cloned(),
            chain: jail.scope.get("chain").cloned(),
            shadow: jail.scope.get("shadow").cloned(),
            actions: jail
                .actions
                .iter()
                .map(|a| ActionConfig::resolved(&jail.name, a))
                .collect(),
        })
    }
}
