//! What the XDP backend will do, as a value computed from configuration before anything
//! touches the kernel: which object, which interfaces in which mode, how large each map is,
//! and where (whether) state is pinned. `XdpEnforcer::load` carries a plan out.

use std::path::PathBuf;

use banxdp_common::{DEFAULT_ALLOW, DEFAULT_BANS_V4, DEFAULT_BANS_V6, DEFAULT_CIDR, PIN_DIR};
use serde::{Deserialize, Serialize};

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

/// Where the XDP object comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ObjectSource {
    /// The object built by `cargo xtask build-ebpf` and embedded in the binary.
    #[default]
    Embedded,
    /// An object file (tests of a freshly built program).
    File(PathBuf),
}

/// Everything `XdpEnforcer::load` needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpPlan {
    pub object: ObjectSource,
    /// Interface names, attached in this order.
    pub interfaces: Vec<String>,
    pub mode: AttachMode,
    pub capacities: Capacities,
    /// Pin maps and links here so that enforcement outlives the process and a later start
    /// adopts them; `None` keeps everything private to the process (detached on drop).
    pub pin_dir: Option<PathBuf>,
}

impl Default for XdpPlan {
    fn default() -> Self {
        Self {
            object: ObjectSource::Embedded,
            interfaces: Vec::new(),
            mode: AttachMode::Auto,
            capacities: Capacities::default(),
            pin_dir: Some(PathBuf::from(PIN_DIR)),
        }
    }
}
