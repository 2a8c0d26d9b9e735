//! The drop benchmark's reference row: the least an XDP ban can do. A hand-assembled program
//! reads the IPv4 source of an untagged Ethernet frame, looks it up in one hash map and drops
//! the frame on a hit (adding one to the entry's value, so that the run can be checked) or
//! passes it. banxdp's program does more (VLAN, IPv6, allow list, networks, port scopes,
//! per-interface counters); the table shows how close it stays to this.

use std::{
    io,
    net::Ipv4Addr,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
};

use anyhow::{Context as _, Result};
use banxdp::enforce::xdp::sys;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;

/// The loaded program and its map of banned IPv4 sources (key: address in network order,
/// value: frames dropped).
pub struct Minimal {
    pub prog: OwnedFd,
    pub map: OwnedFd,
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    rest: [u32; 11],
}

#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

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

/// `bpf(2)`.
///
/// # Safety
/// `attr` must be the layout `cmd` expects, its pointers valid for the call.
unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<i32> {
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
        return Err(io::Error::last_os_error());
    }
    i32::try_from(ret).map_err(|_| io::Error::other("bpf returned an out-of-range value"))
}

/// One instruction: opcode, registers (`dst | src << 4`), offset, immediate.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = dst | (src << 4);
    b[2..4].copy_from_slice(&off.to_le_bytes());
    b[4..].copy_from_slice(&imm.to_le_bytes());
    u64::from_le_bytes(b)
}

/// The program, with `map` as its hash map.
fn program(map: i32) -> Vec<u64> {
    // Jump offsets count from the next instruction; `pass` is instruction 20.
    vec![
        insn(0x61, 2, 1, 0, 0),       // r2 = ctx->data
        insn(0x61, 3, 1, 4, 0),       // r3 = ctx->data_end
        insn(0xbf, 4, 2, 0, 0),       // r4 = r2
        insn(0x07, 4, 0, 0, 30),      // r4 += 30 (Ethernet + IPv4 up to the source)
        insn(0x2d, 4, 3, 15, 0),      // if r4 > r3 goto pass
        insn(0x69, 5, 2, 12, 0),      // r5 = ethertype (u16, as stored)
        insn(0x55, 5, 0, 13, 0x0008), // if r5 != htons(0x0800) goto pass
        insn(0x61, 5, 2, 26, 0),      // r5 = source address
        insn(0x63, 10, 5, -4, 0),     // *(u32 *)(fp - 4) = r5
        insn(0x18, 1, 1, 0, map),     // r1 = map (ld_imm64, pseudo map fd)
        insn(0, 0, 0, 0, 0),
        insn(0xbf, 2, 10, 0, 0), // r2 = fp
        insn(0x07, 2, 0, 0, -4), // r2 -= 4
        insn(0x85, 0, 0, 0, 1),  // r0 = bpf_map_lookup_elem(r1, r2)
        insn(0x15, 0, 0, 5, 0),  // if r0 == 0 goto pass
        insn(0x79, 1, 0, 0, 0),  // r1 = *(u64 *)r0
        insn(0x07, 1, 0, 0, 1),  // r1 += 1
        insn(0x7b, 0, 1, 0, 0),  // *(u64 *)r0 = r1
        insn(0xb7, 0, 0, 0, 1),  // r0 = XDP_DROP; exit
        insn(0x95, 0, 0, 0, 0),
        insn(0xb7, 0, 0, 0, 2), // pass: r0 = XDP_PASS; exit
        insn(0x95, 0, 0, 0, 0),
    ]
}

impl Minimal {
    /// Creates the map (room for `capacity` sources) and loads the program.
    pub fn load(capacity: usize) -> Result<Self> {
        let mut attr = MapCreateAttr {
            map_type: BPF_MAP_TYPE_HASH,
            key_size: 4,
            value_size: 8,
            max_entries: u32::try_from(capacity.max(16))?,
            ..MapCreateAttr::default()
        };
        // SAFETY: plain integers.
        let map = unsafe { bpf(BPF_MAP_CREATE, &mut attr) }.context("creating the hash map")?;
        // SAFETY: a new descriptor nothing else owns.
        let map = unsafe { OwnedFd::from_raw_fd(map) };
        let insns = program(map.as_raw_fd());
        let mut log = vec![0u8; 64 * 1024];
        let mut name = [0u8; 16];
        name[..10].copy_from_slice(b"bx_minimal");
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: u32::try_from(insns.len())?,
            insns: insns.as_ptr() as u64,
            license: c"GPL".as_ptr() as u64,
            log_level: 1,
            log_size: u32::try_from(log.len())?,
            log_buf: log.as_mut_ptr() as u64,
            prog_name: name,
            expected_attach_type: BPF_XDP,
            ..ProgLoadAttr::default()
        };
        // SAFETY: instructions, licence and log outlive the call.
        let prog = unsafe { bpf(BPF_PROG_LOAD, &mut attr) }.with_context(|| {
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            format!(
                "loading the minimal program: {}",
                String::from_utf8_lossy(&log[..end])
            )
        })?;
        // SAFETY: as above.
        let prog = unsafe { OwnedFd::from_raw_fd(prog) };
        Ok(Self { prog, map })
    }

    /// Bans `sources` (one batch).
    pub fn ban(&self, sources: &[Ipv4Addr]) -> Result<()> {
        let keys: Vec<[u8; 4]> = sources.iter().map(Ipv4Addr::octets).collect();
        let values = vec![0u64; keys.len()];
        sys::update_batch(self.map.as_fd(), &keys, &values)
            .map_err(|stop| stop.source)
            .context("writing the minimal program's map")
    }

    /// Frames dropped for `source` so far.
    pub fn drops(&self, source: Ipv4Addr) -> Result<u64> {
        let key = source.octets();
        let mut value = 0u64;
        let mut attr = ElemAttr {
            map_fd: fd_u32(self.map.as_fd()),
            key: key.as_ptr() as u64,
            value: std::ptr::from_mut(&mut value) as u64,
            ..ElemAttr::default()
        };
        // SAFETY: key and value outlive the call.
        unsafe { bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) }.context("reading the minimal map")?;
        Ok(value)
    }
}

fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    u32::try_from(fd.as_raw_fd()).expect("descriptors are non-negative")
}
