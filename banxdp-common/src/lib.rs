//! The contract between banxdp's XDP program and its user side.
//!
//! Everything both sides must agree on lives here and nowhere else: map names, key and value
//! layouts (`#[repr(C)]` with explicit padding, so that no compiler can lay them out
//! differently on either side), counter indices and limits. This crate is `no_std` and has no
//! logic; with the `user` feature it adds the `aya::Pod` impls that user space needs to put
//! these types in maps.
//!
//! Addresses are kept in network byte order (as they stand in the packet), ports in host
//! byte order.
#![no_std]

/// Directory under bpffs where the daemon pins maps and links.
pub const PIN_DIR: &str = "/sys/fs/bpf/banxdp";

/// Exact IPv4 bans: `[u8; 4]` → [`Ban`] (hash map).
pub const MAP_BANS_V4: &str = "BANS_V4";
/// Exact IPv6 bans: `[u8; 16]` → [`Ban`] (hash map).
pub const MAP_BANS_V6: &str = "BANS_V6";
/// IPv4 CIDR bans: LPM key of `[u8; 4]` → [`Ban`] (LPM trie).
pub const MAP_CIDR_V4: &str = "CIDR_V4";
/// IPv6 CIDR bans: LPM key of `[u8; 16]` → [`Ban`] (LPM trie).
pub const MAP_CIDR_V6: &str = "CIDR_V6";
/// IPv4 allow list (ignoreip): LPM key of `[u8; 4]` → `u32` (unused value, LPM trie).
pub const MAP_ALLOW_V4: &str = "ALLOW_V4";
/// IPv6 allow list (ignoreip): LPM key of `[u8; 16]` → `u32` (unused value, LPM trie).
pub const MAP_ALLOW_V6: &str = "ALLOW_V6";
/// Port scopes: [`PortKey`] → `u64` mask of the jails whose bans cover that port.
pub const MAP_PORT_JAILS: &str = "PORT_JAILS";
/// Global switches: one [`Settings`] at index 0 (array). User space's record, which a
/// restarted daemon reads back, and what a program from before [`MAP_SETTINGS_NOW`] reads.
pub const MAP_SETTINGS: &str = "SETTINGS";
/// The settings the program reads: its `SETTINGS_NOW` global ([`GLOBAL_SETTINGS_NOW`]),
/// alone in its section, which aya loads as a one-entry array map of that name. Pinned like
/// the maps, so that the program of a daemon being replaced and its successor's read the
/// same settings; user space writes it with every write of [`MAP_SETTINGS`], and at load
/// sets the section's initial value to what the pin holds, so that loading rewrites it
/// unchanged.
pub const MAP_SETTINGS_NOW: &str = ".data.settings";
/// The global behind [`MAP_SETTINGS_NOW`].
pub const GLOBAL_SETTINGS_NOW: &str = "SETTINGS_NOW";
/// Per-CPU packet counters: [`Counters`] at index `ifindex % COUNTER_SLOTS` (per-CPU array).
pub const MAP_COUNTERS: &str = "COUNTERS";
/// Jail slot names, so that a restarted daemon can adopt the masks: [`JailSlot`] × [`MAX_JAILS`].
pub const MAP_JAILS: &str = "JAILS";

/// Trace switch: the program's `TRACE_SWITCH` global, alone in its section, which aya loads
/// as a one-entry array map of that name holding one `u32`: a mask of [`TRACE_ON_V4`] and
/// [`TRACE_ON_V6`]. Zero while no `banxdp trace` runs: the program then pays one load and
/// one branch per packet for tracing. Never pinned (a trace ends with its daemon), so it is
/// not in [`MAP_NAMES`].
pub const MAP_TRACE: &str = ".data.trace";
/// The program's clock: its `CLOCK` global ([`Clock`]), alone in its section, which aya loads
/// as a one-entry array map of that name. User space sets it at load and refreshes it
/// whenever it writes bans; zeroes (unset) only make the program's bound of the boot clock
/// lower, never higher. Never pinned.
pub const MAP_CLOCK: &str = ".data.clock";
/// The program's `COARSE_CLOCK` constant (`.rodata`, a `u32`), which user space sets at load
/// to 1 where the kernel has `bpf_ktime_get_coarse_ns` (Linux 5.11) and to 0 before, so that
/// the verifier never sees a helper the kernel lacks.
pub const GLOBAL_COARSE_CLOCK: &str = "COARSE_CLOCK";
/// The program's `JIFFY_CLOCK` constant (`.rodata`, a `u32`): 1 where the kernel has
/// `bpf_jiffies64` (Linux 5.5) and user space will calibrate it, else 0 (the verifier then
/// drops that branch).
pub const GLOBAL_JIFFY_CLOCK: &str = "JIFFY_CLOCK";
/// Within this many ns of a ban's end the program reads the exact boot clock; further away,
/// a cheap lower bound of it decides. It covers that bound's lag (a few ticks and a margin:
/// tens of ms) many times over.
pub const EXPIRY_SLACK_NS: u64 = 1_000_000_000;

/// What the program's expiry check needs to bound `CLOCK_BOOTTIME` from below without
/// reading it (see [`EXPIRY_SLACK_NS`]). All three are written with wrapping arithmetic in
/// mind and each only ever moves the bound down when it is stale, so a reader that sees one
/// field before an update and another after it still gets a lower bound.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    /// `CLOCK_BOOTTIME - CLOCK_MONOTONIC` in ns (the time the host spent suspended), read by
    /// user space in that order so that it never exceeds the kernel's: added to the coarse
    /// monotonic clock.
    pub boot_offset: u64,
    /// The kernel's tick in ns (`1e9 / HZ`, rounded as the kernel rounds it), once user space
    /// has identified it; 0 until then, and where it cannot.
    pub jiffy_ns: u64,
    /// The boot-clock ns at jiffy 0 on the line `jiffies * jiffy_ns + jiffy_base`, which stays
    /// at or below `CLOCK_BOOTTIME` (wrapping: it is far below zero, as jiffies start near
    /// 2^32). Written before `jiffy_ns` becomes non-zero.
    pub jiffy_base: u64,
}

/// Traced IPv4 sources: LPM key of `[u8; 4]` → `u32` (unused value, LPM trie); the union of
/// the running traces' filters. Never pinned.
pub const MAP_TRACE_V4: &str = "TRACE_V4";
/// Traced IPv6 sources: LPM key of `[u8; 16]` → `u32` (unused value, LPM trie). Never pinned.
pub const MAP_TRACE_V6: &str = "TRACE_V6";
/// [`MAP_TRACE`]: IPv4 sources in [`MAP_TRACE_V4`] are traced.
pub const TRACE_ON_V4: u32 = 1;
/// [`MAP_TRACE`]: IPv6 sources in [`MAP_TRACE_V6`] are traced.
pub const TRACE_ON_V6: u32 = 1 << 1;
/// Capacity of each trace filter trie: distinct filters of the traces running at once.
pub const TRACE_FILTERS: u32 = 64;
/// Keys of the aya-log message of one traced verdict, in order:
/// `verdict=1 reason=8 ifindex=3 jails=1 source=192.0.2.7`. The XDP action is 1 (drop) or 2
/// (pass), the reason a [`counter`] index, `jails` the mask of the ban that matched the
/// source (0: none), `source` the address as aya-log prints it. The program's format string
/// must be a literal, so it repeats these; user space checks every key.
pub const TRACE_KEYS: [&str; 5] = ["verdict", "reason", "ifindex", "jails", "source"];

/// Every map the program declares, in the order user space pins and checks them.
pub const MAP_NAMES: [&str; 11] = [
    MAP_BANS_V4,
    MAP_BANS_V6,
    MAP_CIDR_V4,
    MAP_CIDR_V6,
    MAP_ALLOW_V4,
    MAP_ALLOW_V6,
    MAP_PORT_JAILS,
    MAP_SETTINGS,
    MAP_SETTINGS_NOW,
    MAP_COUNTERS,
    MAP_JAILS,
];

/// The file a map is pinned as in the pin directory: its name, but for
/// [`MAP_SETTINGS_NOW`], whose dots bpffs refuses in a file name.
#[must_use]
pub fn pin_file(map: &str) -> &str {
    if map == MAP_SETTINGS_NOW {
        GLOBAL_SETTINGS_NOW
    } else {
        map
    }
}

/// Name of the XDP program in the object file.
pub const PROGRAM_NAME: &str = "banxdp";

/// Jails are bits of a `u64` mask.
pub const MAX_JAILS: u32 = 64;
/// Bytes of a jail name kept in [`JailSlot`] (longer names are refused by user space).
pub const JAIL_NAME_LEN: usize = 48;
/// Counter slots: interfaces are counted at `ifindex % COUNTER_SLOTS`.
pub const COUNTER_SLOTS: u32 = 256;
/// Entries of the port-scope map: every TCP and UDP port.
pub const PORT_JAILS_ENTRIES: u32 = 2 * 65_536;

/// Default capacities, overridden by the daemon at load time from `banxdp.toml`.
pub const DEFAULT_BANS_V4: u32 = 1_000_000;
/// Default capacity of the exact IPv6 ban map.
pub const DEFAULT_BANS_V6: u32 = 250_000;
/// Default capacity of each CIDR trie.
pub const DEFAULT_CIDR: u32 = 65_536;
/// Default capacity of each allow-list trie.
pub const DEFAULT_ALLOW: u32 = 16_384;

/// A ban as the XDP program reads it.
///
/// `expires_ns` is `CLOCK_BOOTTIME` in nanoseconds (0 = permanent), so that expiry holds even
/// while the daemon is down. `jails` is the mask of the jails that ban the address; the
/// program drops a packet when one of them covers its destination port (see [`PortKey`] and
/// [`Settings::allports`]). When several jails ban one address, `expires_ns` is the latest of
/// their expiries; the daemon clears a jail's bit when that jail's ban ends before it.
/// `drops` and `shadow_hits` are incremented by the program (atomically); user space
/// preserves them when it rewrites an entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ban {
    pub expires_ns: u64,
    pub jails: u64,
    pub drops: u64,
    pub shadow_hits: u64,
}

/// Key of the port-scope map: an IP protocol number and a destination port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortKey {
    pub protocol: u8,
    /// Explicit padding; always zero.
    pub pad: u8,
    pub port: u16,
}

impl PortKey {
    #[must_use]
    pub const fn new(protocol: u8, port: u16) -> Self {
        Self {
            protocol,
            pad: 0,
            port,
        }
    }
}

/// IP protocol numbers the program reads ports for.
pub const IPPROTO_TCP: u8 = 6;
/// UDP.
pub const IPPROTO_UDP: u8 = 17;

/// [`Settings::flags`]: the IPv4 CIDR trie has entries.
pub const HAS_CIDR_V4: u32 = 1;
/// [`Settings::flags`]: the IPv6 CIDR trie has entries.
pub const HAS_CIDR_V6: u32 = 1 << 1;
/// [`Settings::flags`]: the IPv4 allow trie has entries.
pub const HAS_ALLOW_V4: u32 = 1 << 2;
/// [`Settings::flags`]: the IPv6 allow trie has entries.
pub const HAS_ALLOW_V6: u32 = 1 << 3;

/// Switches that user space sets and the program reads for every banned packet.
///
/// The `HAS_*` flags let the program skip a trie lookup while the trie is empty; user space
/// sets a flag before it inserts the first entry and clears it after it removes the last.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Jails whose bans drop every port.
    pub allports: u64,
    /// Jails in shadow mode: they count what they would drop and pass it.
    pub shadow: u64,
    pub flags: u32,
    /// Explicit padding; always zero.
    pub pad: u32,
}

/// A jail's name in its slot; `used == 0` marks a free slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JailSlot {
    pub used: u32,
    pub name_len: u32,
    pub name: [u8; JAIL_NAME_LEN],
}

impl Default for JailSlot {
    fn default() -> Self {
        Self {
            used: 0,
            name_len: 0,
            name: [0; JAIL_NAME_LEN],
        }
    }
}

/// Why the program passed or dropped a packet: indices into [`Counters::packets`].
pub mod counter {
    /// Every packet the program saw: the sum of the others, which user space computes (the
    /// program counts each packet once, under its reason, and leaves this slot at zero).
    pub const SEEN: usize = 0;
    /// Passed: an IP packet whose source is not banned.
    pub const PASS_CLEAN: usize = 1;
    /// Passed: not IPv4 or IPv6 (ARP, LLDP, ...).
    pub const PASS_NOT_IP: usize = 2;
    /// Passed: truncated or malformed; the program fails open.
    pub const PASS_MALFORMED: usize = 3;
    /// Passed: banned, but the source is on the allow list.
    pub const PASS_ALLOWED: usize = 4;
    /// Passed: the ban has expired (the daemon has not removed it yet).
    pub const PASS_EXPIRED: usize = 5;
    /// Passed: banned by jails whose ports do not include this packet's.
    pub const PASS_OTHER_PORT: usize = 6;
    /// Passed: only shadow-mode jails would have dropped it.
    pub const PASS_SHADOW: usize = 7;
    /// Dropped: exact IPv4 ban.
    pub const DROP_V4: usize = 8;
    /// Dropped: exact IPv6 ban.
    pub const DROP_V6: usize = 9;
    /// Dropped: IPv4 CIDR ban.
    pub const DROP_CIDR_V4: usize = 10;
    /// Dropped: IPv6 CIDR ban.
    pub const DROP_CIDR_V6: usize = 11;
    /// Number of counters.
    pub const COUNT: usize = 12;
    /// Names, as `banxdp stats` prints them.
    pub const NAMES: [&str; COUNT] = [
        "seen",
        "pass_clean",
        "pass_not_ip",
        "pass_malformed",
        "pass_allowed",
        "pass_expired",
        "pass_other_port",
        "pass_shadow",
        "drop_v4",
        "drop_v6",
        "drop_cidr_v4",
        "drop_cidr_v6",
    ];
    /// The first drop counter; all counters from here on are drops.
    pub const FIRST_DROP: usize = DROP_V4;
}

/// Packet counts of one interface slot on one CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets: [u64; counter::COUNT],
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: every type here is `#[repr(C)]`, `Copy`, made only of integers and arrays of
    // integers, with explicit padding fields, so any bit pattern is valid and no byte is
    // uninitialised.
    unsafe impl aya::Pod for super::Ban {}
    unsafe impl aya::Pod for super::PortKey {}
    unsafe impl aya::Pod for super::Settings {}
    unsafe impl aya::Pod for super::JailSlot {}
    unsafe impl aya::Pod for super::Counters {}
    unsafe impl aya::Pod for super::Clock {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<Ban>(), 32);
        assert_eq!(size_of::<PortKey>(), 4);
        assert_eq!(size_of::<Settings>(), 24);
        assert_eq!(size_of::<JailSlot>(), 8 + JAIL_NAME_LEN);
        assert_eq!(size_of::<Counters>(), 8 * counter::COUNT);
    }

    #[test]
    fn map_names_fit_the_kernel_limit() {
        // BPF_OBJ_NAME_LEN is 16 including the terminating NUL.
        for name in MAP_NAMES {
            assert!(name.len() < 16, "{name}");
        }
        assert_eq!(counter::NAMES.len(), counter::COUNT);
    }
}
