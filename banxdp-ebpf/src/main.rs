//! banxdp's XDP program: for every packet, find whether its source address is banned and
//! drop it at the NIC if a ban covers it.
//!
//! It reads only what `banxdp-common` declares, and user space owns every entry: this program
//! never inserts or deletes, it only looks up, counts and decides. The verdict for a packet is
//!
//! 1. parse Ethernet (up to two 802.1Q/802.1ad tags), IPv4 or IPv6 (skipping extension
//!    headers), and the TCP/UDP destination port when there is one;
//! 2. look the source up in the exact-address hash map, then (only when it has entries) in the
//!    CIDR trie of its family;
//! 3. a ban found there drops the packet when it has not expired (`CLOCK_BOOTTIME`, checked
//!    here so that expiry holds while the daemon is down), one of its jails covers the
//!    destination port or bans all ports, that jail is not in shadow mode, and the source is
//!    not on the allow list. The allow list is consulted before any drop, so it always wins;
//!    packets that no ban matches never pay for its lookup.
//!
//! The expiry check bounds `CLOCK_BOOTTIME` from below without reading it: the exact clock's
//! `rdtsc` and fence would cost a dropped frame more than the rest of its work. The bound is
//! `jiffies * tick + base` from [`Clock`], which user space calibrates at load (the kernel
//! inlines `bpf_jiffies64` into one load); before that, or where the kernel's tick could not
//! be identified, it is the coarse monotonic clock (a helper call) plus the time the host
//! spent suspended. A ban the bound finds past its end is expired; within [`EXPIRY_SLACK_NS`]
//! of the end the program asks the exact boot clock. A ban therefore ends on time, daemon or
//! no daemon; the one exception is a host suspended while the daemon is down, whose bans then
//! hold for the time it slept on top.
//!
//! Tracing (`banxdp trace`): after the verdict, every packet reads the `TRACE_SWITCH`
//! global; while no trace runs it is zero and that load and branch are all tracing costs. When
//! it is set for the packet's family and the source is in the `TRACE_V4`/`TRACE_V6` trie (the
//! union of the running traces' filters), the program writes one aya-log record
//! (`verdict=.. reason=.. ifindex=.. jails=.. source=..`, see `banxdp_common::TRACE_KEYS`)
//! to the `AYA_LOGS` ring buffer. Packets the parser gives up on are not traced (they have no
//! source to match).
//!
//! Failing open: a packet the program cannot parse (truncated, not IP, a header that lies
//! about its length) passes and is counted, and a missing map entry that should always exist
//! (the counters) does not stop the verdict. A packet filter that drops what it does not understand
//! would take a server off the network on the first odd frame; one that passes it only lets
//! through what the kernel's own stack will judge next.
#![no_std]
#![no_main]
// The bpf target has no `AtomicU64::fetch_add`; the intrinsic lowers to BPF_XADD, which every
// kernel with XDP supports. Nightly is what builds this crate anyway.
#![feature(core_intrinsics)]
#![expect(
    internal_features,
    reason = "atomic_xadd is the only atomic add on the bpf target"
)]
#![expect(
    clippy::inline_always,
    reason = "bpf-to-bpf calls cost more than these bodies; the verifier sees one flat function"
)]

use core::{
    cell::UnsafeCell,
    intrinsics::{AtomicOrdering, atomic_xadd},
    mem::size_of,
};

use aya_ebpf::{
    bindings::xdp_action,
    helpers::{bpf_jiffies64, bpf_ktime_get_boot_ns, bpf_ktime_get_coarse_ns},
    macros::{map, xdp},
    maps::{Array, HashMap, LpmTrie, PerCpuArray, lpm_trie::Key},
    programs::XdpContext,
};
use aya_log_ebpf::info;
use banxdp_common::{
    Ban, COUNTER_SLOTS, Clock, Counters, DEFAULT_ALLOW, DEFAULT_BANS_V4, DEFAULT_BANS_V6,
    DEFAULT_CIDR, EXPIRY_SLACK_NS, HAS_ALLOW_V4, HAS_ALLOW_V6, HAS_CIDR_V4, HAS_CIDR_V6,
    IPPROTO_TCP, IPPROTO_UDP, JailSlot, MAX_JAILS, PORT_JAILS_ENTRIES, PortKey, Settings,
    TRACE_FILTERS, TRACE_ON_V4, TRACE_ON_V6, counter,
};

#[map]
static BANS_V4: HashMap<[u8; 4], Ban> = HashMap::with_max_entries(DEFAULT_BANS_V4, 0);
#[map]
static BANS_V6: HashMap<[u8; 16], Ban> = HashMap::with_max_entries(DEFAULT_BANS_V6, 0);
#[map]
static CIDR_V4: LpmTrie<[u8; 4], Ban> = LpmTrie::with_max_entries(DEFAULT_CIDR, 0);
#[map]
static CIDR_V6: LpmTrie<[u8; 16], Ban> = LpmTrie::with_max_entries(DEFAULT_CIDR, 0);
#[map]
static ALLOW_V4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(DEFAULT_ALLOW, 0);
#[map]
static ALLOW_V6: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(DEFAULT_ALLOW, 0);
#[map]
static PORT_JAILS: HashMap<PortKey, u64> = HashMap::with_max_entries(PORT_JAILS_ENTRIES, 0);
/// Read by user space only (the settings a restarted daemon reads back, and those a program
/// from before `SETTINGS_NOW` reads during an upgrade).
#[map]
static SETTINGS: Array<Settings> = Array::with_max_entries(1, 0);
#[map]
static COUNTERS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);
/// Read by user space only (jail names of the mask bits); declared here so that it is pinned
/// with the others.
#[map]
static JAILS: Array<JailSlot> = Array::with_max_entries(MAX_JAILS, 0);
/// A global that user space writes through the one-entry array map aya makes of its section,
/// and the program only reads: one load, no lookup, no null check.
#[repr(transparent)]
struct Global<T>(UnsafeCell<T>);
// SAFETY: the program only reads it (volatile); user space writes it through the map.
unsafe impl<T> Sync for Global<T> {}
impl<T: Copy> Global<T> {
    #[inline(always)]
    fn get(&self) -> T {
        // SAFETY: a volatile read of an aligned value the program never writes.
        unsafe { core::ptr::read_volatile(self.0.get()) }
    }
}
/// Readers of a global's fields, each read alone (volatile: user space rewrites them), as
/// the others may not be needed.
macro_rules! fields {
    ($global:ty { $($field:ident: $type:ty),* }) => {
        impl Global<$global> {
            $(
                #[inline(always)]
                fn $field(&self) -> $type {
                    // SAFETY: as `get`, for one field of the global.
                    unsafe { core::ptr::read_volatile(&raw const (*self.0.get()).$field) }
                }
            )*
        }
    };
}
fields!(Clock {
    boot_offset: u64,
    jiffy_ns: u64,
    jiffy_base: u64
});
fields!(Settings {
    allports: u64,
    shadow: u64,
    flags: u32
});
/// The settings the program reads (map `.data.settings`, pinned beside the others, so that
/// the program of a daemon being replaced reads what its successor writes): a field is one
/// load, where the `SETTINGS` map costs a lookup through the stack and a null check.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".data.settings")]
static SETTINGS_NOW: Global<Settings> = Global(UnsafeCell::new(Settings {
    allports: 0,
    shadow: 0,
    flags: 0,
    pad: 0,
}));
/// Trace switch (`TRACE_ON_*` bits, map `.data.trace`), which the daemon sets while
/// `banxdp trace` runs.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".data.trace")]
static TRACE_SWITCH: Global<u32> = Global(UnsafeCell::new(0));
/// `banxdp_common::GLOBAL_COARSE_CLOCK`: a `.rodata` constant, frozen before the program
/// loads, so the verifier drops the branch not taken.
#[unsafe(no_mangle)]
static COARSE_CLOCK: u32 = 1;
/// `banxdp_common::GLOBAL_JIFFY_CLOCK`, likewise.
#[unsafe(no_mangle)]
static JIFFY_CLOCK: u32 = 1;
/// What bounds the boot clock from below (map `.data.clock`), as user space last set it.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".data.clock")]
static CLOCK: Global<Clock> = Global(UnsafeCell::new(Clock {
    boot_offset: 0,
    jiffy_ns: 0,
    jiffy_base: 0,
}));
/// Trace filters: written by the daemon while `banxdp trace` runs, never pinned.
#[map]
static TRACE_V4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(TRACE_FILTERS, 0);
#[map]
static TRACE_V6: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(TRACE_FILTERS, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const VLAN_HLEN: usize = 4;
const IPV4_MIN_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
const IPV6_MAX_EXT_HEADERS: usize = 6;

#[xdp]
#[expect(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] entry point takes its context by value"
)]
pub fn banxdp(ctx: XdpContext) -> u32 {
    let (action, reason) = judge(&ctx);
    count(&ctx, reason);
    // The one load and branch tracing costs while no trace runs. Nothing of the verdict's
    // work is kept for it: the traced path parses the packet again.
    let tracing = TRACE_SWITCH.get();
    if tracing != 0 {
        trace(&ctx, (action, reason), tracing);
    }
    action
}

/// The source address of a traced packet.
#[derive(Clone, Copy)]
enum Family {
    V4([u8; 4]),
    V6([u8; 16]),
}

/// What the parser learned of an IPv4 (`A = u32`) or IPv6 (`A = [u8; 16]`) packet: the
/// source, and where the TCP or UDP header starts when the packet is the first (or only)
/// fragment of such a datagram. The port itself is read only when a ban's scope asks for it
/// (a flood banned on every port never does). The IPv4 source is its bytes as they stand in
/// the packet, held in a `u32` (`to_ne_bytes` gives them back): loaded at once, where a
/// `[u8; 4]` is stored byte by byte and then loaded whole as the map key, a store-forwarding
/// stall.
struct Packet<A> {
    source: A,
    protocol: u8,
    l4: Option<usize>,
}

/// A parse failure: the packet passes, counted under this reason.
struct Unjudged(usize);

/// Each family is judged in a branch of its own, from its parse to its verdict: a packet type
/// that could hold either address makes the compiler carry both through the stack, byte by
/// byte, on every packet.
fn judge(ctx: &XdpContext) -> (u32, usize) {
    let judged = match network_layer(ctx) {
        Ok((ETH_P_IP, l3)) => parse_ipv4(ctx, l3).map(|packet| judge_v4(ctx, &packet)),
        Ok((ETH_P_IPV6, l3)) => parse_ipv6(ctx, l3).map(|packet| judge_v6(ctx, &packet)),
        Ok(_) => Err(Unjudged(counter::PASS_NOT_IP)),
        Err(unjudged) => Err(unjudged),
    };
    judged.unwrap_or_else(|Unjudged(reason)| (xdp_action::XDP_PASS, reason))
}

#[inline(always)]
fn judge_v4(ctx: &XdpContext, packet: &Packet<u32>) -> (u32, usize) {
    let settings = &SETTINGS_NOW;
    let addr = packet.source.to_ne_bytes();
    let exact = BANS_V4.get_ptr_mut(addr);
    let cidr = || {
        if settings.flags() & HAS_CIDR_V4 == 0 {
            return None;
        }
        CIDR_V4
            .get(Key::new(32, addr))
            .map(|ban| core::ptr::from_ref(ban).cast_mut())
    };
    let allowed =
        || settings.flags() & HAS_ALLOW_V4 != 0 && ALLOW_V4.get(Key::new(32, addr)).is_some();
    decide(
        ctx,
        packet,
        settings,
        exact,
        cidr,
        allowed,
        (counter::DROP_V4, counter::DROP_CIDR_V4),
    )
}

#[inline(always)]
fn judge_v6(ctx: &XdpContext, packet: &Packet<[u8; 16]>) -> (u32, usize) {
    let settings = &SETTINGS_NOW;
    let addr = packet.source;
    let exact = BANS_V6.get_ptr_mut(addr);
    let cidr = || {
        if settings.flags() & HAS_CIDR_V6 == 0 {
            return None;
        }
        CIDR_V6
            .get(Key::new(128, addr))
            .map(|ban| core::ptr::from_ref(ban).cast_mut())
    };
    let allowed =
        || settings.flags() & HAS_ALLOW_V6 != 0 && ALLOW_V6.get(Key::new(128, addr)).is_some();
    decide(
        ctx,
        packet,
        settings,
        exact,
        cidr,
        allowed,
        (counter::DROP_V6, counter::DROP_CIDR_V6),
    )
}

/// The source of a packet the verdict parsed, for the traced path.
#[inline(always)]
fn source(ctx: &XdpContext) -> Option<Family> {
    match network_layer(ctx) {
        Ok((ETH_P_IP, l3)) => parse_ipv4(ctx, l3)
            .ok()
            .map(|p| Family::V4(p.source.to_ne_bytes())),
        Ok((ETH_P_IPV6, l3)) => parse_ipv6(ctx, l3).ok().map(|p| Family::V6(p.source)),
        _ => None,
    }
}

/// Writes the verdict's aya-log record when the source is in a running trace's filter.
/// Inlined: a function of its own would carry a symbol mangled with the crate's hash, which
/// cargo derives from where the checkout lives (`banxdp-common` is a path dependency outside
/// this crate's workspace), and the committed object would then differ on every machine.
#[inline(always)]
fn trace(ctx: &XdpContext, (action, reason): (u32, usize), on: u32) {
    let Some(source) = source(ctx) else {
        return;
    };
    // SAFETY: `ctx.ctx` is the kernel's `xdp_md` for this run.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    #[expect(
        clippy::cast_possible_truncation,
        reason = "reasons are counter indices, below 16"
    )]
    let reason32 = reason as u32;
    let cidr_first = reason == counter::DROP_CIDR_V4 || reason == counter::DROP_CIDR_V6;
    match source {
        Family::V4(addr) => {
            if on & TRACE_ON_V4 == 0 || TRACE_V4.get(Key::new(32, addr)).is_none() {
                return;
            }
            // SAFETY: plain reads of map values, live for this run.
            let exact = || BANS_V4.get_ptr(addr).map(|ban| unsafe { (*ban).jails });
            let cidr = || CIDR_V4.get(Key::new(32, addr)).map(|ban| ban.jails);
            let jails = ban_jails(cidr_first, exact, cidr);
            let source = core::net::Ipv4Addr::from(addr);
            info!(
                ctx,
                "verdict={} reason={} ifindex={} jails={} source={:i}",
                action,
                reason32,
                ifindex,
                jails,
                source
            );
        }
        Family::V6(addr) => {
            if on & TRACE_ON_V6 == 0 || TRACE_V6.get(Key::new(128, addr)).is_none() {
                return;
            }
            // SAFETY: plain reads of map values, live for this run.
            let exact = || BANS_V6.get_ptr(addr).map(|ban| unsafe { (*ban).jails });
            let cidr = || CIDR_V6.get(Key::new(128, addr)).map(|ban| ban.jails);
            let jails = ban_jails(cidr_first, exact, cidr);
            let source = core::net::Ipv6Addr::from(addr);
            info!(
                ctx,
                "verdict={} reason={} ifindex={} jails={} source={:i}",
                action,
                reason32,
                ifindex,
                jails,
                source
            );
        }
    }
}

/// The jail mask of the ban that decided: the CIDR ban first when a CIDR ban dropped.
#[inline(always)]
fn ban_jails(
    cidr_first: bool,
    exact: impl Fn() -> Option<u64>,
    cidr: impl Fn() -> Option<u64>,
) -> u64 {
    let found = if cidr_first {
        cidr().or_else(&exact)
    } else {
        exact().or_else(&cidr)
    };
    found.unwrap_or(0)
}

/// The verdict from the exact ban, else the CIDR ban covering the source. The CIDR trie is
/// consulted when the exact entry does not drop (absent, expired, other port, shadow), so
/// that a range banned by another jail still applies to an address with its own ban.
#[inline(always)]
fn decide<A>(
    ctx: &XdpContext,
    packet: &Packet<A>,
    settings: &Global<Settings>,
    exact: Option<*mut Ban>,
    cidr: impl FnOnce() -> Option<*mut Ban>,
    allowed: impl Fn() -> bool,
    (exact_reason, cidr_reason): (usize, usize),
) -> (u32, usize) {
    let mut pass_reason = counter::PASS_CLEAN;
    if let Some(ban) = exact {
        match covers(ctx, ban, packet, settings, &allowed) {
            Ok(()) => return (xdp_action::XDP_DROP, exact_reason),
            Err(reason) => pass_reason = reason,
        }
    }
    if let Some(ban) = cidr() {
        match covers(ctx, ban, packet, settings, &allowed) {
            Ok(()) => return (xdp_action::XDP_DROP, cidr_reason),
            Err(reason) if pass_reason == counter::PASS_CLEAN => pass_reason = reason,
            Err(_) => {}
        }
    }
    (xdp_action::XDP_PASS, pass_reason)
}

/// `Ok` when `ban` drops this packet (and counts the drop on the ban), else the pass reason.
#[inline(always)]
fn covers<A>(
    ctx: &XdpContext,
    ban: *mut Ban,
    packet: &Packet<A>,
    settings: &Global<Settings>,
    allowed: &impl Fn() -> bool,
) -> Result<(), usize> {
    // SAFETY: `ban` points at a live map value for the duration of this program run (RCU).
    let (expires_ns, jails) = unsafe { ((*ban).expires_ns, (*ban).jails) };
    if expires_ns != 0 && expired(expires_ns) {
        return Err(counter::PASS_EXPIRED);
    }
    // An enforcing all-ports jail settles it without the port lookup: the common case (a
    // flood from one source banned by an allports action) pays one hash lookup, not two.
    let shadow = settings.shadow();
    let mut covering = jails & settings.allports();
    if covering & !shadow == 0 {
        covering |= jails & port_jails(ctx, packet);
    }
    if covering == 0 {
        return Err(counter::PASS_OTHER_PORT);
    }
    if allowed() {
        return Err(counter::PASS_ALLOWED);
    }
    if covering & !shadow == 0 {
        // SAFETY: as above; the field is 8-byte aligned and the program only adds atomically.
        unsafe {
            atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*ban).shadow_hits, 1)
        };
        return Err(counter::PASS_SHADOW);
    }
    // SAFETY: as above.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*ban).drops, 1) };
    Ok(())
}

/// Whether `CLOCK_BOOTTIME` has reached `expires_ns`: decided on a lower bound of it while
/// the end is more than [`EXPIRY_SLACK_NS`] away, by the exact clock near it.
#[inline(always)]
fn expired(expires_ns: u64) -> bool {
    if let Some(floor) = boot_floor() {
        if floor >= expires_ns {
            return true;
        }
        if expires_ns - floor > EXPIRY_SLACK_NS {
            return false;
        }
    }
    // SAFETY: a helper with no arguments and no preconditions.
    unsafe { bpf_ktime_get_boot_ns() >= expires_ns }
}

/// A lower bound of `CLOCK_BOOTTIME`, where this kernel offers a cheap one: the jiffies line
/// once user space has calibrated it, else the coarse monotonic clock.
#[inline(always)]
fn boot_floor() -> Option<u64> {
    // SAFETY: volatile reads of aligned constants (volatile: their values are set at load).
    let (jiffy_clock, coarse_clock) = unsafe {
        (
            core::ptr::read_volatile(&raw const JIFFY_CLOCK),
            core::ptr::read_volatile(&raw const COARSE_CLOCK),
        )
    };
    if jiffy_clock != 0 {
        let tick = CLOCK.jiffy_ns();
        if tick != 0 {
            // SAFETY: a helper with no arguments; the verifier inlines it into one load.
            let jiffies = unsafe { bpf_jiffies64() };
            let base = CLOCK.jiffy_base();
            return Some(jiffies.wrapping_mul(tick).wrapping_add(base));
        }
    }
    if coarse_clock != 0 {
        let offset = CLOCK.boot_offset();
        // SAFETY: as above.
        return Some(unsafe { bpf_ktime_get_coarse_ns() }.wrapping_add(offset));
    }
    None
}

/// The jails whose port scope includes this packet's destination port.
#[inline(always)]
fn port_jails<A>(ctx: &XdpContext, packet: &Packet<A>) -> u64 {
    let Some(port) = packet.l4.and_then(|l4| read_be16(ctx, l4 + 2).ok()) else {
        return 0;
    };
    PORT_JAILS
        // SAFETY: plain read of a `u64` value.
        .get_ptr(PortKey::new(packet.protocol, port))
        .map_or(0, |mask| unsafe { *mask })
}

/// Counts the packet under its reason, once: every packet has exactly one, so user space
/// reads [`counter::SEEN`] as their sum and the program leaves that slot alone (one store and
/// one cache line less per packet).
#[inline(always)]
fn count(ctx: &XdpContext, reason: usize) {
    // SAFETY: `ctx.ctx` is the kernel's `xdp_md` for this run.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    if let Some(counters) = COUNTERS.get_ptr_mut(ifindex % COUNTER_SLOTS) {
        // SAFETY: a per-CPU value; nothing else on this CPU touches it during the run.
        let counters = unsafe { &mut *counters };
        if let Some(slot) = counters.packets.get_mut(reason) {
            *slot += 1;
        }
    }
}

/// A pointer to a `T` at `offset` bytes into the packet, bounds-checked for the verifier.
#[inline(always)]
fn at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, Unjudged> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return Err(Unjudged(counter::PASS_MALFORMED));
    }
    Ok((start + offset) as *const T)
}

/// A big-endian `u16` at `offset`, in one load.
#[inline(always)]
fn read_be16(ctx: &XdpContext, offset: usize) -> Result<u16, Unjudged> {
    // SAFETY: `at` checked both bytes; the read makes no assumption of alignment.
    Ok(u16::from_be(unsafe {
        at::<u16>(ctx, offset)?.read_unaligned()
    }))
}

/// The ethertype after up to two VLAN tags, and the offset of the header it announces.
// Inlined into both callers (the verdict and the traced path), as every parser here: the
// verifier refuses packet pointers handed to a subprogram after arithmetic LLVM may do on them.
#[inline(always)]
fn network_layer(ctx: &XdpContext) -> Result<(u16, usize), Unjudged> {
    let mut offset = ETH_HLEN - 2;
    let mut ethertype = read_be16(ctx, offset)?;
    offset += 2;
    // Up to two VLAN tags (802.1ad outer, 802.1Q inner): each is TCI then the next type.
    for _ in 0..2 {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        ethertype = read_be16(ctx, offset + 2)?;
        offset += VLAN_HLEN;
    }
    Ok((ethertype, offset))
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext, l3: usize) -> Result<Packet<u32>, Unjudged> {
    let header = at::<[u8; IPV4_MIN_HLEN]>(ctx, l3)?.cast::<u8>();
    // SAFETY: `at` checked the 20 bytes of the fixed header; the reads make no assumption of
    // alignment, and each is one load.
    let (first, source, protocol, fragment) = unsafe {
        (
            header.read(),
            header.add(12).cast::<u32>().read_unaligned(),
            header.add(9).read(),
            header.add(6).cast::<u16>().read_unaligned(),
        )
    };
    let header_len = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || header_len < IPV4_MIN_HLEN {
        return Err(Unjudged(counter::PASS_MALFORMED));
    }
    let fragment_offset = u16::from_be(fragment) & 0x1fff;
    Ok(Packet {
        source,
        protocol,
        l4: transport(protocol, fragment_offset == 0, l3 + header_len),
    })
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, l3: usize) -> Result<Packet<[u8; 16]>, Unjudged> {
    // SAFETY: `at` checked the 40 bytes of the fixed header.
    let header = unsafe { *at::<[u8; IPV6_HLEN]>(ctx, l3)? };
    if header[0] >> 4 != 6 {
        return Err(Unjudged(counter::PASS_MALFORMED));
    }
    let mut source = [0u8; 16];
    source.copy_from_slice(&header[8..24]);
    let mut next = header[6];
    let mut offset = l3 + IPV6_HLEN;
    let mut first_fragment = true;
    // Walk a bounded number of extension headers to reach TCP or UDP. Anything past the
    // bound, or a header cut short, leaves the port unknown: port-scoped bans then pass the
    // packet, all-port bans still drop it.
    for _ in 0..IPV6_MAX_EXT_HEADERS {
        match next {
            // Hop-by-hop, routing, destination options: length in 8-byte units, excluding
            // the first 8.
            0 | 43 | 60 => {
                let Ok(ext) = at::<[u8; 2]>(ctx, offset) else {
                    first_fragment = false;
                    break;
                };
                // SAFETY: `at` checked both bytes.
                let ext = unsafe { *ext };
                next = ext[0];
                offset += (usize::from(ext[1]) + 1) * 8;
            }
            // Fragment header: 8 bytes; only the first fragment carries the L4 header.
            44 => {
                let Ok(ext) = at::<[u8; 4]>(ctx, offset) else {
                    first_fragment = false;
                    break;
                };
                // SAFETY: `at` checked the four bytes.
                let ext = unsafe { *ext };
                next = ext[0];
                if u16::from_be_bytes([ext[2], ext[3]]) & 0xfff8 != 0 {
                    first_fragment = false;
                }
                offset += 8;
            }
            _ => break,
        }
    }
    Ok(Packet {
        source,
        protocol: next,
        l4: transport(next, first_fragment, offset),
    })
}

/// Where the TCP or UDP header starts, for a first fragment of either.
#[inline(always)]
fn transport(protocol: u8, first_fragment: bool, l4: usize) -> Option<usize> {
    (first_fragment && (protocol == IPPROTO_TCP || protocol == IPPROTO_UDP)).then_some(l4)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable: the program has no panicking paths (no indexing without checks, no
    // unwraps); the verifier would reject a program that could get here.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
