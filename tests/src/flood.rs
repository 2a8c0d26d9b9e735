//! A measured UDP flood across a [`Topology`], for tests that restart the daemon while an
//! attacker sends: every source sends numbered datagrams at a known rate from the attacker's
//! namespace, one listener in the victim's namespace records each arrival with the kernel's
//! receive time, and the tally answers what a restart test must prove: how many of a source's
//! datagrams arrived, which were lost, and how long the path from a source was dark inside a
//! window of time.
//!
//! A datagram carries `MAGIC`, its sequence number and the time it was sent (`CLOCK_REALTIME`
//! in nanoseconds, the clock of `SO_TIMESTAMPNS`), so arrivals and sends compare on one clock.
//! Senders pace themselves against their start (a burst of at most [`MAX_BURST`] per
//! millisecond to catch up after a stall), so the rate holds on average on a loaded machine
//! without bursts that overflow the veth's ring. They run at real-time priority (`SCHED_FIFO`
//! 1, where the kernel allows it; each sleeps every millisecond, so it cannot starve the
//! machine): a sender that a busy machine leaves unscheduled through a whole restart would
//! prove nothing about it.
//!
//! [`pin_incompatible_map`] leaves at a pin path what an older build's map of another layout
//! would be, for tests of an upgrade.

use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket},
    os::fd::AsRawFd as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{
    Topology,
    netns::{VICTIM_V4, VICTIM_V6, retry_in_use},
    with_netns,
};

const MAGIC: [u8; 4] = *b"bxfl";
const PAYLOAD: usize = 20;
/// The most datagrams a sender sends in one go to catch up after a stall.
pub const MAX_BURST: u64 = 64;

/// `CLOCK_REALTIME` in nanoseconds: the clock of the kernel's receive timestamps.
#[must_use]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap() * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap()
}

/// A count or a span of a test run as a float, for reports.
#[expect(
    clippy::cast_precision_loss,
    reason = "counts and nanosecond spans of a test run, far below 2^52"
)]
fn float(n: u64) -> f64 {
    n as f64
}

/// Nanoseconds as milliseconds, for reports.
fn ms(ns: u64) -> f64 {
    float(ns) / 1e6
}

/// One flooding source: an address of the attacker's namespace, and datagrams per second.
#[derive(Clone, Copy, Debug)]
pub struct Source {
    pub addr: IpAddr,
    pub rate: u64,
}

impl Source {
    /// # Panics
    /// On an address that does not parse.
    #[must_use]
    pub fn new(addr: &str, rate: u64) -> Self {
        Self {
            addr: addr.parse().expect("a source address"),
            rate,
        }
    }
}

/// One datagram that reached the listener.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    pub seq: u64,
    pub sent_ns: u64,
    /// The kernel's receive time (`SO_TIMESTAMPNS`).
    pub received_ns: u64,
}

/// A span of time the test marked (a restart), on the clock of [`now_ns`].
#[derive(Clone, Debug)]
pub struct Window {
    pub label: String,
    pub from_ns: u64,
    pub to_ns: u64,
}

impl Window {
    #[must_use]
    pub fn millis(&self) -> f64 {
        ms(self.to_ns - self.from_ns)
    }
}

/// What a source sent and what of it arrived.
#[derive(Debug)]
pub struct SourceTally {
    pub source: Source,
    /// The send time of every datagram the socket accepted, by sequence number.
    pub sends: Vec<u64>,
    /// Sends the socket refused (sequence numbers skipped).
    pub send_errors: u64,
    pub arrivals: Vec<Arrival>,
}

/// How a source's path behaved inside a window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Path {
    /// Datagrams sent inside the window.
    pub sent: u64,
    /// Datagrams that arrived inside the window.
    pub arrived: u64,
    /// Datagrams sent inside the window that never arrived.
    pub lost: u64,
    /// The longest time between two consecutive arrivals around the window, in ms
    /// (includes the sender's own stalls).
    pub longest_gap_ms: f64,
    /// The longest span of sends none of which arrived, in ms: the path was dark that long.
    pub longest_loss_ms: f64,
    /// The longest time from a send to its arrival, in ms.
    pub worst_latency_ms: f64,
}

impl SourceTally {
    #[must_use]
    pub fn sent(&self) -> u64 {
        self.sends.len() as u64
    }

    #[must_use]
    pub fn received(&self) -> u64 {
        self.arrivals.len() as u64
    }

    /// The achieved rate, datagrams per second over the sending time.
    #[must_use]
    pub fn achieved_rate(&self) -> f64 {
        match (self.sends.first(), self.sends.last()) {
            (Some(first), Some(last)) if last > first => {
                float(self.sent()) / (float(last - first) / 1e9)
            }
            _ => 0.0,
        }
    }

    /// The path inside `[from_ns, to_ns]`; `..` for the whole run.
    #[must_use]
    pub fn path(&self, from_ns: u64, to_ns: u64) -> Path {
        let inside = |t: u64| t >= from_ns && t <= to_ns;
        let mut arrivals = self.arrivals.clone();
        arrivals.sort_by_key(|a| a.seq);
        arrivals.dedup_by_key(|a| a.seq);
        let arrived_seqs: std::collections::HashSet<u64> = arrivals.iter().map(|a| a.seq).collect();
        let mut path = Path {
            sent: self.sends.iter().filter(|t| inside(**t)).count() as u64,
            arrived: self
                .arrivals
                .iter()
                .filter(|a| inside(a.received_ns))
                .count() as u64,
            ..Path::default()
        };
        // Lost: sent inside, never arrived; dark spans: runs of such sends between arrivals.
        let mut dark_from: Option<u64> = None;
        for (seq, &sent) in self.sends.iter().enumerate() {
            let arrived = arrived_seqs.contains(&(seq as u64));
            if !arrived && inside(sent) {
                path.lost += 1;
            }
            match (arrived, dark_from) {
                (false, None) => dark_from = Some(sent),
                (true, Some(from)) => {
                    if sent >= from_ns && from <= to_ns {
                        path.longest_loss_ms = path.longest_loss_ms.max(ms(sent - from));
                    }
                    dark_from = None;
                }
                _ => {}
            }
        }
        if let (Some(from), Some(&last)) = (dark_from, self.sends.last())
            && last >= from_ns
            && from <= to_ns
        {
            path.longest_loss_ms = path.longest_loss_ms.max(ms(last - from));
        }
        let mut by_time = self.arrivals.clone();
        by_time.sort_by_key(|a| a.received_ns);
        for pair in by_time.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if b.received_ns >= from_ns && a.received_ns <= to_ns {
                let gap = ms(b.received_ns - a.received_ns);
                path.longest_gap_ms = path.longest_gap_ms.max(gap);
            }
        }
        for a in self.arrivals.iter().filter(|a| inside(a.received_ns)) {
            let latency = ms(a.received_ns.saturating_sub(a.sent_ns));
            path.worst_latency_ms = path.worst_latency_ms.max(latency);
        }
        path
    }

    /// The path over the whole run.
    #[must_use]
    pub fn whole(&self) -> Path {
        self.path(0, u64::MAX)
    }
}

/// Everything a flood measured.
#[derive(Debug)]
pub struct Tally {
    pub sources: Vec<SourceTally>,
    pub windows: Vec<Window>,
    /// Datagrams that arrived from an address that is none of the sources.
    pub strangers: u64,
}

impl Tally {
    /// The tally of the source with `addr`.
    ///
    /// # Panics
    /// When no source has that address.
    #[must_use]
    pub fn of(&self, addr: &str) -> &SourceTally {
        let addr: IpAddr = addr.parse().expect("an address");
        self.sources
            .iter()
            .find(|s| s.source.addr == addr)
            .expect("a source of the flood")
    }
}

struct Sender {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Vec<u64>, u64)>,
}

/// A running flood: senders in the attacker's namespace, a listener in the victim's.
pub struct Flood {
    sources: Vec<Source>,
    senders: Vec<Sender>,
    listener: JoinHandle<(Vec<Vec<Arrival>>, u64)>,
    listener_stop: Arc<AtomicBool>,
    received: Arc<Vec<AtomicU64>>,
    windows: Mutex<Vec<Window>>,
}

impl Flood {
    /// Opens the listener on the victim's `port` (IPv4 and IPv6), then starts one sender
    /// per source.
    ///
    /// # Panics
    /// When a socket cannot be opened.
    #[must_use]
    pub fn start(topo: &Topology, port: u16, sources: &[Source]) -> Self {
        let socket = with_netns(&topo.victim, || {
            retry_in_use(|| UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port)))
        })
        .expect("bind the listener");
        listener_options(&socket);
        let received: Arc<Vec<AtomicU64>> =
            Arc::new(sources.iter().map(|_| AtomicU64::new(0)).collect());
        let listener_stop = Arc::new(AtomicBool::new(false));
        let listener = {
            let (addrs, received, stop) = (
                sources.iter().map(|s| s.addr).collect::<Vec<_>>(),
                Arc::clone(&received),
                Arc::clone(&listener_stop),
            );
            std::thread::spawn(move || listen(&socket, &addrs, &received, &stop))
        };
        let senders = sources
            .iter()
            .map(|source| {
                let target: IpAddr = if source.addr.is_ipv4() {
                    VICTIM_V4.parse().unwrap()
                } else {
                    VICTIM_V6.parse().unwrap()
                };
                let socket = with_netns(&topo.attacker, || {
                    let socket = UdpSocket::bind((source.addr, 0))?;
                    socket.connect((target, port))?;
                    Ok::<_, std::io::Error>(socket)
                })
                .expect("a sender's socket");
                let stop = Arc::new(AtomicBool::new(false));
                let (rate, flag) = (source.rate, Arc::clone(&stop));
                let thread = std::thread::spawn(move || send(&socket, rate, &flag));
                Sender { stop, thread }
            })
            .collect();
        Self {
            sources: sources.to_vec(),
            senders,
            listener,
            listener_stop,
            received,
            windows: Mutex::new(Vec::new()),
        }
    }

    /// Datagrams from `addr` that have arrived so far.
    #[must_use]
    pub fn received(&self, addr: IpAddr) -> u64 {
        let index = self
            .sources
            .iter()
            .position(|s| s.addr == addr)
            .expect("a source of the flood");
        self.received[index].load(Ordering::Relaxed)
    }

    /// Waits (up to `timeout`) until `more` datagrams from `addr` have arrived beyond those
    /// counted now; whether they did.
    #[must_use]
    pub fn wait_for_more(&self, addr: IpAddr, more: u64, timeout: Duration) -> bool {
        let target = self.received(addr) + more;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.received(addr) >= target {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Runs `f` and records the time it took as a window named `label`.
    pub fn window<T>(&self, label: &str, f: impl FnOnce() -> T) -> T {
        let from_ns = now_ns();
        let out = f();
        let to_ns = now_ns();
        self.windows.lock().unwrap().push(Window {
            label: label.into(),
            from_ns,
            to_ns,
        });
        out
    }

    /// Stops the senders, lets the listener drain what is still on its way, and tallies.
    ///
    /// # Panics
    /// When a thread panicked.
    #[must_use]
    pub fn finish(self) -> Tally {
        for sender in &self.senders {
            sender.stop.store(true, Ordering::Relaxed);
        }
        let sent: Vec<(Vec<u64>, u64)> = self
            .senders
            .into_iter()
            .map(|s| s.thread.join().expect("a sender"))
            .collect();
        self.listener_stop.store(true, Ordering::Relaxed);
        let (arrivals, strangers) = self.listener.join().expect("the listener");
        let sources = self
            .sources
            .into_iter()
            .zip(sent)
            .zip(arrivals)
            .map(|((source, (sends, send_errors)), arrivals)| SourceTally {
                source,
                sends,
                send_errors,
                arrivals,
            })
            .collect();
        Tally {
            sources,
            windows: self.windows.into_inner().unwrap(),
            strangers,
        }
    }
}

/// A large receive buffer (a loaded machine may leave the listener unscheduled for a while)
/// and the kernel's receive timestamps; a read timeout so that it notices the stop.
fn listener_options(socket: &UdpSocket) {
    let fd = socket.as_raw_fd();
    let set = |option: i32, value: i32| {
        // SAFETY: setsockopt on a socket we own with an int option.
        let ret = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&raw const value).cast(),
                u32::try_from(std::mem::size_of::<i32>()).unwrap(),
            )
        };
        assert_eq!(ret, 0, "setsockopt: {}", std::io::Error::last_os_error());
    };
    set(libc::SO_RCVBUFFORCE, 16 << 20);
    set(libc::SO_TIMESTAMPNS, 1);
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
}

/// Sends numbered datagrams at `rate` per second until `stop`; the send time of each one
/// the socket took, and the count of refused sends.
fn send(socket: &UdpSocket, rate: u64, stop: &AtomicBool) -> (Vec<u64>, u64) {
    realtime();
    let start = Instant::now();
    let mut sends = Vec::with_capacity(usize::try_from(rate * 30).unwrap_or(0));
    let mut seq = 0u64;
    let mut errors = 0;
    let mut payload = [0u8; PAYLOAD];
    payload[..4].copy_from_slice(&MAGIC);
    while !stop.load(Ordering::Relaxed) {
        let due = u64::try_from(start.elapsed().as_nanos() * u128::from(rate) / 1_000_000_000)
            .unwrap_or(u64::MAX);
        for _ in 0..due.saturating_sub(seq + errors).min(MAX_BURST) {
            let sent_ns = now_ns();
            payload[4..12].copy_from_slice(&seq.to_le_bytes());
            payload[12..20].copy_from_slice(&sent_ns.to_le_bytes());
            if socket.send(&payload).is_ok() {
                sends.push(sent_ns);
                seq += 1;
            } else {
                errors += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    (sends, errors)
}

/// Puts the calling thread in `SCHED_FIFO` at the lowest real-time priority; whether the
/// kernel allowed it (without it, the thread keeps its ordinary share).
fn realtime() -> bool {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: 0 names the calling thread; `param` is valid.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &raw const param) == 0 }
}

/// Receives until `stop`, then until 300 ms pass with nothing more; every source's arrivals
/// and the count of datagrams from elsewhere.
fn listen(
    socket: &UdpSocket,
    addrs: &[IpAddr],
    received: &[AtomicU64],
    stop: &AtomicBool,
) -> (Vec<Vec<Arrival>>, u64) {
    let mut arrivals = vec![Vec::new(); addrs.len()];
    let mut strangers = 0;
    let mut quiet_since: Option<Instant> = None;
    loop {
        match receive(socket) {
            Some((from, payload, received_ns)) => {
                quiet_since = None;
                let from = from.ip().to_canonical();
                let index = addrs.iter().position(|a| *a == from);
                let (Some(index), Some((seq, sent_ns))) = (index, decode(&payload)) else {
                    strangers += 1;
                    continue;
                };
                arrivals[index].push(Arrival {
                    seq,
                    sent_ns,
                    received_ns,
                });
                received[index].fetch_add(1, Ordering::Relaxed);
            }
            None if stop.load(Ordering::Relaxed) => {
                let since = *quiet_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(300) {
                    return (arrivals, strangers);
                }
            }
            None => {}
        }
    }
}

fn decode(payload: &[u8]) -> Option<(u64, u64)> {
    if payload.len() != PAYLOAD || payload[..4] != MAGIC {
        return None;
    }
    let seq = u64::from_le_bytes(payload[4..12].try_into().ok()?);
    let sent_ns = u64::from_le_bytes(payload[12..20].try_into().ok()?);
    Some((seq, sent_ns))
}

/// One datagram with its sender and the kernel's receive time; `None` on the read timeout.
fn receive(socket: &UdpSocket) -> Option<(SocketAddr, Vec<u8>, u64)> {
    let mut buf = [0u8; 64];
    // SAFETY: zeroed plain C structs are valid.
    let mut from: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&raw mut from).cast();
    msg.msg_namelen = u32::try_from(std::mem::size_of::<libc::sockaddr_in6>()).unwrap();
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: every buffer msg points to lives until the call returns.
    let len = unsafe { libc::recvmsg(socket.as_raw_fd(), &raw mut msg, 0) };
    let len = usize::try_from(len).ok()?;
    let mut received_ns = None;
    // SAFETY: walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SO_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                received_ns = Some(
                    u64::try_from(ts.tv_sec).unwrap() * 1_000_000_000
                        + u64::try_from(ts.tv_nsec).unwrap(),
                );
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    let addr = SocketAddr::new(
        IpAddr::V6(Ipv6Addr::from(from.sin6_addr.s6_addr)),
        u16::from_be(from.sin6_port),
    );
    Some((
        addr,
        buf[..len].to_vec(),
        received_ns.unwrap_or_else(now_ns),
    ))
}

/// Replaces the map pinned at `path` with an empty hash map of another layout (4-byte keys,
/// 8-byte values), as an older build of banxdp would have left it: what an upgrade that
/// changes a map's layout finds. A program that holds the old map keeps using it.
///
/// # Panics
/// When the kernel refuses.
pub fn pin_incompatible_map(path: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt as _;
    /// `union bpf_attr` for `BPF_MAP_CREATE` (the first fields, zero-padded).
    #[repr(C)]
    struct Create {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        rest: [u32; 28],
    }
    /// `union bpf_attr` for `BPF_OBJ_PIN`.
    #[repr(C)]
    struct Pin {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
        rest: [u32; 28],
    }
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_OBJ_PIN: libc::c_long = 6;
    const BPF_MAP_TYPE_HASH: u32 = 1;
    let mut create = Create {
        map_type: BPF_MAP_TYPE_HASH,
        key_size: 4,
        value_size: 8,
        max_entries: 16,
        rest: [0; 28],
    };
    // SAFETY: a zero-padded attr of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            &raw mut create,
            std::mem::size_of::<Create>(),
        )
    };
    assert!(
        fd >= 0,
        "BPF_MAP_CREATE: {}",
        std::io::Error::last_os_error()
    );
    let _ = std::fs::remove_file(path);
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut pin = Pin {
        pathname: name.as_ptr() as u64,
        bpf_fd: u32::try_from(fd).unwrap(),
        file_flags: 0,
        rest: [0; 28],
    };
    // SAFETY: as above; `name` outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_PIN,
            &raw mut pin,
            std::mem::size_of::<Pin>(),
        )
    };
    let error = std::io::Error::last_os_error();
    // SAFETY: the map's fd, ours; the pin keeps the map.
    unsafe { libc::close(i32::try_from(fd).unwrap()) };
    assert_eq!(ret, 0, "BPF_OBJ_PIN `{}`: {error}", path.display());
}
