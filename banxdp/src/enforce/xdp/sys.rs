//! The few kernel calls aya 0.14 does not wrap: batch map reads and updates, `BPF_PROG_TEST_RUN`
//! (verdict tests and the live-frame injection the drop benchmark uses), the benchmark's
//! constant-verdict programs, the bpffs mount and
//! `CLOCK_BOOTTIME`. Every `bpf(2)` call of this crate that is not aya's goes through one function, `bpf`.

use std::{
    ffi::CString,
    io,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
    path::Path,
    time::{Duration, SystemTime},
};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
/// `BPF_PROG_TEST_RUN` flag: send the frames for real (`XDP_TX` leaves through the interface).
pub const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;
const BPF_FS_MAGIC: libc::c_long = 0xcafe_4a11;

/// `union bpf_attr` for `BPF_MAP_*_BATCH`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// `union bpf_attr` for `BPF_PROG_TEST_RUN`.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// `struct xdp_md`, the context a test run starts from.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

/// `union bpf_attr` for `BPF_PROG_LOAD` (the fields up to `expected_attach_type`).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for `BPF_LINK_CREATE` (the common fields, zero-padded).
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    rest: [u64; 6],
}

/// The one `bpf(2)` entry point of this module.
///
/// # Safety
/// `attr` must be the `bpf_attr` layout the command expects, and every pointer in it valid
/// for the call.
unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: forwarded to the caller.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            std::mem::size_of::<T>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A batch write that stopped: `done` elements were written before `source` happened.
#[derive(Debug)]
pub struct BatchError {
    pub done: usize,
    pub source: io::Error,
}

/// Writes `keys[i] → values[i]` into a hash map in as few calls as the kernel allows
/// (`BPF_MAP_UPDATE_BATCH`; it takes no per-element flags but `BPF_F_LOCK`, so entries are
/// created or overwritten).
pub fn update_batch<K, V>(map: BorrowedFd<'_>, keys: &[K], values: &[V]) -> Result<(), BatchError> {
    assert_eq!(keys.len(), values.len(), "one value per key");
    let mut done = 0;
    while done < keys.len() {
        let count = u32::try_from(keys.len() - done).unwrap_or(u32::MAX);
        let mut attr = BatchAttr {
            keys: keys[done..].as_ptr() as u64,
            values: values[done..].as_ptr() as u64,
            count,
            map_fd: fd_u32(map),
            ..BatchAttr::default()
        };
        // SAFETY: the key and value arrays outlive the call and hold `count` elements each.
        let result = unsafe { bpf(BPF_MAP_UPDATE_BATCH, &mut attr) };
        // The kernel reports in `count` how many it wrote, also when it stops on an error.
        done += attr.count as usize;
        if let Err(source) = result {
            return Err(BatchError { done, source });
        }
        if attr.count == 0 {
            return Err(BatchError {
                done,
                source: io::Error::other("BPF_MAP_UPDATE_BATCH made no progress"),
            });
        }
    }
    Ok(())
}

/// Reads every entry of a hash map in calls of up to `chunk` entries
/// (`BPF_MAP_LOOKUP_BATCH`), handing each call's keys and values to `each`: two system calls
/// per thousand entries where a walk key by key makes two per entry. Entries written or
/// deleted meanwhile may or may not be seen, as with any walk of a live map.
pub fn lookup_batch<K: Copy + Default, V: Copy + Default>(
    map: BorrowedFd<'_>,
    chunk: usize,
    mut each: impl FnMut(&[K], &[V]),
) -> io::Result<()> {
    let chunk = chunk.max(1);
    let mut keys = vec![K::default(); chunk];
    let mut values = vec![V::default(); chunk];
    // The position to go on from: a bucket index for hash maps (the kernel writes as many
    // bytes as the map's key, at most; 8 bytes and the key size cover every case).
    let token_len = std::mem::size_of::<K>().max(8);
    let mut token_in = vec![0u8; token_len];
    let mut token_out = vec![0u8; token_len];
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { token_in.as_ptr() as u64 },
            out_batch: token_out.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: u32::try_from(chunk).unwrap_or(u32::MAX),
            map_fd: fd_u32(map),
            ..BatchAttr::default()
        };
        // SAFETY: the key and value buffers hold `count` elements each and the tokens
        // `token_len` bytes, all outliving the call; the kernel writes at most that.
        let result = unsafe { bpf(BPF_MAP_LOOKUP_BATCH, &mut attr) };
        // `count` says how many entries were copied, also with the last batch's ENOENT.
        let got = (attr.count as usize).min(chunk);
        match result {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                each(&keys[..got], &values[..got]);
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        each(&keys[..got], &values[..got]);
        std::mem::swap(&mut token_in, &mut token_out);
        first = false;
    }
}

fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    u32::try_from(fd.as_raw_fd()).expect("file descriptors are non-negative")
}

/// What a `BPF_PROG_TEST_RUN` of an XDP program returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRun {
    /// The program's return value (`XDP_PASS` = 2, `XDP_DROP` = 1, ...).
    pub action: u32,
    /// Average run time in ns, as the kernel measured it.
    pub duration_ns: u32,
    /// The frame as the program left it (empty for live frames).
    pub frame: Vec<u8>,
}

/// Runs an XDP program on `frame` as if it had arrived on `ifindex`.
///
/// With `live` ([`BPF_F_TEST_XDP_LIVE_FRAMES`]) the kernel builds real frames, `repeat` of
/// them in batches of `batch_size`, and acts on the verdict: `XDP_TX` transmits them out of
/// `ifindex`.
pub fn test_run(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
    live: bool,
    batch_size: u32,
) -> io::Result<TestRun> {
    let len = u32::try_from(frame.len()).map_err(|_| io::Error::other("frame too long"))?;
    let mut ctx = XdpMd {
        data_end: len,
        ingress_ifindex: ifindex,
        ..XdpMd::default()
    };
    let mut out = vec![0u8; frame.len() + 256];
    let mut attr = TestRunAttr {
        prog_fd: fd_u32(prog),
        data_size_in: len,
        data_in: frame.as_ptr() as u64,
        repeat,
        ctx_size_in: u32::try_from(std::mem::size_of::<XdpMd>()).unwrap_or(24),
        ctx_in: std::ptr::from_mut(&mut ctx) as u64,
        flags: if live { BPF_F_TEST_XDP_LIVE_FRAMES } else { 0 },
        batch_size: if live { batch_size } else { 0 },
        ..TestRunAttr::default()
    };
    if !live {
        attr.data_out = out.as_mut_ptr() as u64;
        attr.data_size_out = u32::try_from(out.len()).unwrap_or(u32::MAX);
    }
    // SAFETY: frame, ctx and out outlive the call; sizes are theirs.
    unsafe { bpf(BPF_PROG_TEST_RUN, &mut attr) }?;
    out.truncate(if live {
        0
    } else {
        usize::try_from(attr.data_size_out).unwrap_or(0)
    });
    Ok(TestRun {
        action: attr.retval,
        duration_ns: attr.duration,
        frame: out,
    })
}

/// Loads a two-instruction XDP program that returns `action` for every frame: the
/// `XDP_TX` injector and the `XDP_PASS` receiver of the drop benchmark.
pub fn load_constant_xdp(action: u32) -> io::Result<OwnedFd> {
    let imm = i32::try_from(action).map_err(|_| io::Error::other("action out of range"))?;
    load_xdp(&[insn(0xb7, 0, imm), EXIT], b"banxdp_all")
}

/// `bpf_ktime_get_ns` (`CLOCK_MONOTONIC`).
const BPF_FUNC_KTIME_GET_NS: i32 = 5;
/// `bpf_jiffies64` (Linux 5.5), which the kernel inlines into one load.
const BPF_FUNC_JIFFIES64: i32 = 118;
/// `bpf_ktime_get_coarse_ns` (Linux 5.11).
const BPF_FUNC_KTIME_GET_COARSE_NS: i32 = 160;
const EXIT: u64 = 0x95;

/// One instruction with no registers but `r0` and no offset: `code`, `dst`, `imm`.
fn insn(code: u8, dst: u8, imm: i32) -> u64 {
    op(code, dst, 0, 0, imm)
}

/// One instruction: opcode, destination and source registers, offset, immediate.
fn op(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    let mut bytes = [0u8; 8];
    bytes[0] = code;
    bytes[1] = dst | (src << 4);
    bytes[2..4].copy_from_slice(&off.to_le_bytes());
    bytes[4..].copy_from_slice(&imm.to_le_bytes());
    u64::from_le_bytes(bytes)
}

/// One reading of the kernel's clocks, taken by a program in the kernel between two
/// instructions: `CLOCK_MONOTONIC` first, then the jiffies counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockSample {
    pub monotonic_ns: u64,
    pub jiffies: u64,
}

/// A loaded program that reads [`ClockSample`]s (through `BPF_PROG_TEST_RUN`, which runs it
/// once on a scratch frame and returns the frame it wrote them into). Loading it fails where
/// the kernel has no `bpf_jiffies64` (before Linux 5.5).
pub struct ClockProbe {
    prog: OwnedFd,
}

impl ClockProbe {
    pub fn load() -> io::Result<Self> {
        let program = [
            op(0xbf, 6, 1, 0, 0),                 // r6 = ctx
            insn(0x85, 0, BPF_FUNC_KTIME_GET_NS), // r0 = monotonic ns
            op(0xbf, 7, 0, 0, 0),                 // r7 = r0
            insn(0x85, 0, BPF_FUNC_JIFFIES64),    // r0 = jiffies
            op(0x61, 2, 6, 0, 0),                 // r2 = ctx->data
            op(0x61, 3, 6, 4, 0),                 // r3 = ctx->data_end
            op(0xbf, 4, 2, 0, 0),                 // r4 = r2
            op(0x07, 4, 0, 0, 16),                // r4 += 16
            op(0x2d, 4, 3, 2, 0),                 // if r4 > r3 goto +2
            op(0x7b, 2, 7, 0, 0),                 // *(u64 *)(r2 + 0) = r7
            op(0x7b, 2, 0, 8, 0),                 // *(u64 *)(r2 + 8) = r0
            insn(0xb7, 0, 2),                     // r0 = XDP_PASS
            EXIT,
        ];
        Ok(Self {
            prog: load_xdp(&program, b"banxdp_clock")?,
        })
    }

    pub fn sample(&self) -> io::Result<ClockSample> {
        // The kernel wants at least an Ethernet header's worth of frame.
        let run = test_run(self.prog.as_fd(), &[0u8; 64], 1, 1, false, 0)?;
        let word = |at: usize| {
            run.frame
                .get(at..at + 8)
                .and_then(|bytes| bytes.try_into().ok())
                .map(u64::from_ne_bytes)
                .ok_or_else(|| io::Error::other("the clock probe returned a short frame"))
        };
        Ok(ClockSample {
            monotonic_ns: word(0)?,
            jiffies: word(8)?,
        })
    }
}

/// Whether the kernel lets XDP programs read the coarse monotonic clock: a three-instruction
/// program that calls it loads, or the kernel refuses it (before Linux 5.11, or a kernel
/// that refuses BPF: then the real program does not load either).
#[must_use]
pub fn has_coarse_clock() -> bool {
    // call bpf_ktime_get_coarse_ns; r0 = XDP_PASS; exit.
    let program = [
        insn(0x85, 0, BPF_FUNC_KTIME_GET_COARSE_NS),
        insn(0xb7, 0, 2),
        EXIT,
    ];
    load_xdp(&program, b"banxdp_probe").is_ok()
}

/// Loads a hand-assembled XDP program.
fn load_xdp(insns: &[u64], program_name: &[u8]) -> io::Result<OwnedFd> {
    let license = c"GPL";
    let mut name = [0u8; 16];
    let len = program_name.len().min(15);
    name[..len].copy_from_slice(&program_name[..len]);
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: u32::try_from(insns.len()).map_err(|_| io::Error::other("too long"))?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_XDP,
        ..ProgLoadAttr::default()
    };
    // SAFETY: instructions and licence outlive the call.
    let fd = unsafe { bpf(BPF_PROG_LOAD, &mut attr) }?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("fd out of range"))?;
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Attaches an XDP program natively to `ifindex` (in the calling thread's namespace) with a
/// BPF link; closing the returned descriptor detaches it.
pub fn attach_native(prog: BorrowedFd<'_>, ifindex: u32) -> io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: fd_u32(prog),
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags: XDP_FLAGS_DRV_MODE,
        ..LinkCreateAttr::default()
    };
    // SAFETY: plain integers only.
    let fd = unsafe { bpf(BPF_LINK_CREATE, &mut attr) }?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("fd out of range"))?;
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Mounts bpffs at `dir` unless one is mounted there already. Returns whether it mounted.
pub fn ensure_bpffs(dir: &Path) -> io::Result<bool> {
    let path = CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::other("bpffs path has a NUL byte"))?;
    // SAFETY: `statfs` is plain data; zeroed is a valid initial value.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out-pointer.
    if unsafe { libc::statfs(path.as_ptr(), &raw mut stat) } == 0
        && stat.f_type as libc::c_long == BPF_FS_MAGIC
    {
        return Ok(false);
    }
    std::fs::create_dir_all(dir)?;
    // SAFETY: valid C strings; no data argument.
    let ret = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            path.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(true)
}

/// `CLOCK_BOOTTIME`, the clock the XDP program compares expiries with.
#[must_use]
pub fn boottime() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer; CLOCK_BOOTTIME exists on every kernel with XDP.
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &raw mut ts) };
    assert_eq!(ret, 0, "clock_gettime(CLOCK_BOOTTIME) cannot fail");
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// What `CLOCK_BOOTTIME` is ahead of `CLOCK_MONOTONIC` (the time the host has spent
/// suspended), in ns: the XDP program's `BOOT_OFFSET`. The boot clock is read first, so the
/// result never exceeds the kernel's offset, and the program's coarse bound of the boot clock
/// stays a lower bound.
#[must_use]
pub fn boot_offset_ns() -> u64 {
    let boot = boottime();
    let mono = monotonic();
    u64::try_from(boot.saturating_sub(mono).as_nanos()).unwrap_or(u64::MAX)
}

fn monotonic() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer; CLOCK_MONOTONIC always exists.
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    assert_eq!(ret, 0, "clock_gettime(CLOCK_MONOTONIC) cannot fail");
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// The pair of clocks that converts wall-clock expiries into `CLOCK_BOOTTIME` for the kernel.
#[derive(Clone, Copy, Debug)]
pub struct Clocks {
    pub wall: SystemTime,
    pub boot: Duration,
}

impl Clocks {
    #[must_use]
    pub fn now() -> Self {
        Self {
            wall: SystemTime::now(),
            boot: boottime(),
        }
    }

    /// The `CLOCK_BOOTTIME` nanoseconds at which wall-clock `at` happens (at least 1, since 0
    /// means permanent; a time already past maps to now, which the program treats as expired).
    #[must_use]
    pub fn boot_ns(&self, at: SystemTime) -> u64 {
        let boot = match at.duration_since(self.wall) {
            Ok(ahead) => self.boot + ahead,
            Err(_) => self.boot,
        };
        u64::try_from(boot.as_nanos()).unwrap_or(u64::MAX).max(1)
    }

    /// The wall-clock time of `CLOCK_BOOTTIME` `ns` (the inverse of [`Clocks::boot_ns`]).
    #[must_use]
    pub fn wall_time(&self, ns: u64) -> SystemTime {
        let boot = Duration::from_nanos(ns);
        match boot.checked_sub(self.boot) {
            Some(ahead) => self.wall + ahead,
            None => self.wall - self.boot.saturating_sub(boot),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layouts_match_the_kernel() {
        assert_eq!(std::mem::size_of::<BatchAttr>(), 56);
        assert_eq!(std::mem::size_of::<TestRunAttr>(), 80);
        assert_eq!(std::mem::size_of::<XdpMd>(), 24);
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 72);
    }

    #[test]
    fn the_boot_offset_is_boot_minus_monotonic() {
        let offset = i128::from(boot_offset_ns());
        let mono = i128::try_from(monotonic().as_nanos()).unwrap();
        let boot = i128::try_from(boottime().as_nanos()).unwrap();
        // Read in the other order here, so this difference is at least the offset.
        assert!(boot - mono >= offset, "{} < {offset}", boot - mono);
        assert!(
            boot - mono - offset < 10_000_000,
            "{} vs {offset}",
            boot - mono
        );
    }

    #[test]
    fn boot_and_wall_clocks_convert_both_ways() {
        let clocks = Clocks {
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
            boot: Duration::from_secs(500),
        };
        let at = clocks.wall + Duration::from_secs(60);
        assert_eq!(clocks.boot_ns(at), 560_000_000_000);
        assert_eq!(clocks.wall_time(560_000_000_000), at);
        // A time already past is "now": expired at once, never "permanent" (0).
        assert_eq!(
            clocks.boot_ns(clocks.wall - Duration::from_secs(5)),
            500_000_000_000
        );
        let at_boot = Clocks {
            wall: clocks.wall,
            boot: Duration::ZERO,
        };
        assert_eq!(at_boot.boot_ns(at_boot.wall), 1);
    }
}
