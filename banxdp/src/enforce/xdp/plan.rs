//! What the XDP backend will do, as a value computed from configuration before anything
//! touches the kernel: which object, which interfaces in which mode, how large each map is,
//! and where (whether) state is pinned. `XdpEnforcer::load` carries a plan out.

use std::path::PathBuf;

use banxdp_common::PIN_DIR;

/// Attach modes and map sizes are settings (`[xdp]` in banxdp.toml); the plan carries them.
pub use crate::config::settings::{AttachMode, Capacities};

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
    /// The cheapest bound of the boot clock the program may check expiries on far from a
    /// ban's end, where the kernel offers it; the others serve the tests of the paths older
    /// kernels take.
    pub clock: ExpiryClock,
}

/// A lower bound of the boot clock for the program's expiry checks, cheapest first. Near a
/// ban's end the program reads the exact clock whatever this says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiryClock {
    /// Jiffies on a line user space calibrates (one inlined load; Linux 5.5), else as
    /// `Coarse`.
    Jiffies,
    /// The coarse monotonic clock (a helper call; Linux 5.11), else as `Exact`.
    Coarse,
    /// The exact boot clock for every banned packet.
    Exact,
}

impl Default for XdpPlan {
    fn default() -> Self {
        Self {
            object: ObjectSource::Embedded,
            interfaces: Vec::new(),
            mode: AttachMode::Auto,
            capacities: Capacities::default(),
            pin_dir: Some(PathBuf::from(PIN_DIR)),
            clock: ExpiryClock::Jiffies,
        }
    }
}
