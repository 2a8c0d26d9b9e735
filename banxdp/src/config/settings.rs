//! `banxdp.toml`: banxdp's own settings (what fail2ban keeps in fail2ban.conf, plus the XDP
//! data path). Pure: text in, values or an error naming the file and line out. Turning the
//! values into an `XdpPlan` (which needs the interface list of the machine) is the daemon's;
//! this module depends on nothing above it (the XDP plan takes `AttachMode` and `Capacities`
//! from here, not the other way round).

use std::path::{Path, PathBuf};

use banxdp_common::{DEFAULT_ALLOW, DEFAULT_BANS_V4, DEFAULT_BANS_V6, DEFAULT_CIDR};
use serde::{Deserialize, Serialize};

/// The defaults that ship, embedded so that a machine with no configuration still runs.
pub const DEFAULT_TOML: &str = include_str!("../../../config/banxdp.toml");

/// The whole `banxdp.toml`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub daemon: DaemonSettings,
    pub enforce: EnforceSettings,
    pub metrics: MetricsSettings,
    pub xdp: XdpSettings,
}

/// `[daemon]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonSettings {
    /// Empty: /etc/banxdp, else /etc/fail2ban, else built in.
    pub config_dir: PathBuf,
    pub socket: PathBuf,
    pub database: PathBuf,
    pub dbpurgeage: String,
    /// A group whose members may use the control socket besides root; empty: root only.
    pub socket_group: String,
    /// Where the daemon's own log lines go: `stderr` (systemd's journal takes them), or a
    /// file they are appended to (what a `recidive` jail reads).
    pub logtarget: String,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        Self {
            config_dir: PathBuf::new(),
            socket: PathBuf::from("/run/banxdp/banxdp.sock"),
            database: PathBuf::from("/var/lib/banxdp/banxdp.sqlite3"),
            dbpurgeage: "1d".into(),
            socket_group: String::new(),
            logtarget: "stderr".into(),
        }
    }
}

/// Where bans are enforced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Xdp,
    Nftables,
    Ipset,
    Iptables,
    Hostsdeny,
    Actions,
}

impl Backend {
    /// The name as `banxdp.toml` spells it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Xdp => "xdp",
            Self::Nftables => "nftables",
            Self::Ipset => "ipset",
            Self::Iptables => "iptables",
            Self::Hostsdeny => "hostsdeny",
            Self::Actions => "actions",
        }
    }
}

/// Where bans go when XDP cannot serve.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    #[default]
    Nftables,
    Ipset,
    Iptables,
    Hostsdeny,
    /// No fallback: the daemon refuses to start without XDP.
    None,
}

impl Fallback {
    /// The backend it names; `None` for `none`.
    #[must_use]
    pub const fn backend(self) -> Option<Backend> {
        match self {
            Self::Nftables => Some(Backend::Nftables),
            Self::Ipset => Some(Backend::Ipset),
            Self::Iptables => Some(Backend::Iptables),
            Self::Hostsdeny => Some(Backend::Hostsdeny),
            Self::None => None,
        }
    }
}

/// `[enforce]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnforceSettings {
    pub backend: Backend,
    /// With `backend = "xdp"`: where bans go when XDP cannot load or attach.
    pub fallback: Fallback,
}

/// `[metrics]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Empty: no endpoint.
    pub listen: String,
}

/// `[xdp]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct XdpSettings {
    pub enabled: bool,
    /// Empty: every interface that is up, except loopback.
    pub interfaces: Vec<String>,
    pub mode: AttachMode,
    pub pin_dir: PathBuf,
    pub detach_on_exit: bool,
    pub capacity: Capacities,
}

impl Default for XdpSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            interfaces: Vec::new(),
            mode: AttachMode::Auto,
            pin_dir: PathBuf::from(banxdp_common::PIN_DIR),
            detach_on_exit: false,
            capacity: Capacities::default(),
        }
    }
}

/// How to attach to an interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// Native (driver) mode, falling back to generic mode with the reason logged.
    #[default]
    Auto,
    /// Native mode only: fail where the driver has no XDP support.
    Native,
    /// Generic (SKB) mode: works on every interface, after the stack allocated the skb.
    Generic,
}

/// Map capacities (`max_entries`), fixed when the maps are created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Capacities {
    /// Exact IPv4 bans.
    pub bans_v4: u32,
    /// Exact IPv6 bans.
    pub bans_v6: u32,
    /// IPv4 CIDR bans.
    pub cidr_v4: u32,
    /// IPv6 CIDR bans.
    pub cidr_v6: u32,
    /// IPv4 allow-list (ignoreip) networks.
    pub allow_v4: u32,
    /// IPv6 allow-list (ignoreip) networks.
    pub allow_v6: u32,
}

impl Default for Capacities {
    fn default() -> Self {
        Self {
            bans_v4: DEFAULT_BANS_V4,
            bans_v6: DEFAULT_BANS_V6,
            cidr_v4: DEFAULT_CIDR,
            cidr_v6: DEFAULT_CIDR,
            allow_v4: DEFAULT_ALLOW,
            allow_v6: DEFAULT_ALLOW,
        }
    }
}

impl Capacities {
    /// `(map name, max_entries)` for every map whose size is configurable.
    #[must_use]
    pub fn by_map(&self) -> [(&'static str, u32); 6] {
        use banxdp_common::{
            MAP_ALLOW_V4, MAP_ALLOW_V6, MAP_BANS_V4, MAP_BANS_V6, MAP_CIDR_V4, MAP_CIDR_V6,
        };
        [
            (MAP_BANS_V4, self.bans_v4),
            (MAP_BANS_V6, self.bans_v6),
            (MAP_CIDR_V4, self.cidr_v4),
            (MAP_CIDR_V6, self.cidr_v6),
            (MAP_ALLOW_V4, self.allow_v4),
            (MAP_ALLOW_V6, self.allow_v6),
        ]
    }
}

/// A `banxdp.toml` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: `daemon.dbpurgeage`: {source}", path.display())]
    PurgeAge {
        path: PathBuf,
        #[source]
        source: super::duration::DurationError,
    },
    #[error("{}: `metrics.listen` `{value}` is not an address:port", path.display())]
    MetricsAddress { path: PathBuf, value: String },
    #[error("{}: `xdp.capacity.{map}` must be at least 1", path.display())]
    Capacity { path: PathBuf, map: &'static str },
}

impl Settings {
    /// Parses `text`, read from `path` (used only in messages).
    pub fn parse(text: &str, path: &Path) -> Result<Self, SettingsError> {
        let settings: Self = toml::from_str(text).map_err(|error| {
            let line = error.span().map_or(0, |span| {
                text[..span.start.min(text.len())].matches('\n').count() + 1
            });
            SettingsError::Syntax {
                path: path.to_path_buf(),
                line,
                message: error.message().to_string(),
            }
        })?;
        super::duration::parse_seconds(&settings.daemon.dbpurgeage).map_err(|source| {
            SettingsError::PurgeAge {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let listen = &settings.metrics.listen;
        if !listen.is_empty() && listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(SettingsError::MetricsAddress {
                path: path.to_path_buf(),
                value: listen.clone(),
            });
        }
        for (map, size) in settings.xdp.capacity.by_map() {
            if size == 0 {
                return Err(SettingsError::Capacity {
                    path: path.to_path_buf(),
                    map: capacity_key(map),
                });
            }
        }
        Ok(settings)
    }
}

fn capacity_key(map: &str) -> &'static str {
    match map {
        banxdp_common::MAP_BANS_V4 => "bans_v4",
        banxdp_common::MAP_BANS_V6 => "bans_v6",
        banxdp_common::MAP_CIDR_V4 => "cidr_v4",
        banxdp_common::MAP_CIDR_V6 => "cidr_v6",
        banxdp_common::MAP_ALLOW_V4 => "allow_v4",
        _ => "allow_v6",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_defaults_equal_the_built_in_ones() {
        let parsed = Settings::parse(DEFAULT_TOML, Path::new("config/banxdp.toml")).unwrap();
        assert_eq!(parsed, Settings::default());
    }

    #[test]
    fn errors_name_file_and_line() {
        let text = "[xdp]\nenabled = true\nmode = \"fast\"\n";
        let error = Settings::parse(text, Path::new("/etc/banxdp/banxdp.toml")).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("/etc/banxdp/banxdp.toml:3: "),
            "{message}"
        );
        assert!(message.contains("fast"), "{message}");

        let error = Settings::parse("[xdp]\nspeed = 1\n", Path::new("b.toml")).unwrap_err();
        assert!(error.to_string().starts_with("b.toml:2: "), "{error}");
        assert!(error.to_string().contains("speed"), "{error}");
    }

    #[test]
    fn rejects_bad_times_backends_and_addresses() {
        let error =
            Settings::parse("[daemon]\ndbpurgeage = \"soon\"\n", Path::new("d.toml")).unwrap_err();
        assert!(
            error.to_string().starts_with("d.toml: `daemon.dbpurgeage`"),
            "{error}"
        );
        let error =
            Settings::parse("[enforce]\nbackend = \"pf\"\n", Path::new("d.toml")).unwrap_err();
        assert!(error.to_string().starts_with("d.toml:2: "), "{error}");
        let error = Settings::parse("[metrics]\nlisten = \"everywhere\"\n", Path::new("d.toml"))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "d.toml: `metrics.listen` `everywhere` is not an address:port"
        );
        let ok = Settings::parse(
            "[enforce]\nbackend = \"nftables\"\n[metrics]\nlisten = \"127.0.0.1:9191\"\n",
            Path::new("d.toml"),
        )
        .unwrap();
        assert_eq!(ok.enforce.backend, Backend::Nftables);
    }

    #[test]
    fn rejects_zero_sizes() {
        let error =
            Settings::parse("[xdp.capacity]\nbans_v6 = 0\n", Path::new("c.toml")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "c.toml: `xdp.capacity.bans_v6` must be at least 1"
        );
    }
}
