//! Network namespaces and veth pairs for tests, removed on drop even when a test panics.

use std::{fs::File, os::fd::AsRawFd as _, path::PathBuf};

use crate::{sh, unique};

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    #[must_use]
    pub fn new(prefix: &str) -> Self {
        let name = unique(prefix);
        sh(&["ip", "netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs `ip ARGS` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "-n", &self.name];
        all.extend_from_slice(args);
        sh(&all)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        sh(&all)
    }

    #[must_use]
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// The index of `interface` inside the namespace.
    #[must_use]
    pub fn ifindex(&self, interface: &str) -> u32 {
        with_netns(self, || {
            banxdp::enforce::xdp::ifindex(interface).expect("interface exists")
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `f` with the current thread inside `ns`, and returns to the original namespace
/// afterwards (also when `f` panics). Sockets and XDP attachments made inside stay there.
pub fn with_netns<T>(ns: &Netns, f: impl FnOnce() -> T) -> T {
    struct Restore(File);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: a namespace fd we opened.
            let ret = unsafe { libc::setns(self.0.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(ret, 0, "cannot return to the original network namespace");
        }
    }
    let original = File::open("/proc/thread-self/ns/net").expect("own netns");
    let target = File::open(ns.path()).expect("namespace file");
    let _restore = Restore(original);
    // SAFETY: a namespace fd we opened.
    let ret = unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(ret, 0, "setns: {}", std::io::Error::last_os_error());
    f()
}

/// Two namespaces joined by a veth pair: an attacker (`a`, interface `eth0`) and a victim
/// (`v`, interface `eth0`). The victim has `198.51.100.1/24` and `2001:db8:1::1/64`; the
/// attacker has the `attacker_v4`/`attacker_v6` addresses. Each side routes everything to
/// the other, and reverse-path filtering is off, so any source address on the attacker
/// reaches the victim.
pub struct Topology {
    pub attacker: Netns,
    pub victim: Netns,
}

pub const VICTIM_V4: &str = "198.51.100.1";
/// MAC addresses of the two ends, fixed so that tests can build frames for them.
pub const ATTACKER_MAC: [u8; 6] = [0x02, 0xba, 0x4e, 0, 0, 0x0a];
pub const VICTIM_MAC: [u8; 6] = [0x02, 0xba, 0x4e, 0, 0, 0x0b];
pub const VICTIM_V6: &str = "2001:db8:1::1";
pub const IFACE: &str = "eth0";

impl Topology {
    #[must_use]
    pub fn new(attacker_v4: &[&str], attacker_v6: &[&str]) -> Self {
        let attacker = Netns::new("bxa");
        let victim = Netns::new("bxv");
        let (a_end, v_end) = (unique("va"), unique("vv"));
        let (a_mac, v_mac) = (mac(ATTACKER_MAC), mac(VICTIM_MAC));
        sh(&[
            "ip", "link", "add", &a_end, "address", &a_mac, "type", "veth", "peer", "name", &v_end,
            "address", &v_mac,
        ]);
        sh(&["ip", "link", "set", &a_end, "netns", &attacker.name]);
        sh(&["ip", "link", "set", &v_end, "netns", &victim.name]);
        attacker.ip(&["link", "set", &a_end, "name", IFACE]);
        victim.ip(&["link", "set", &v_end, "name", IFACE]);
        for ns in [&attacker, &victim] {
            ns.exec(&["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);
            ns.exec(&["sysctl", "-qw", "net.ipv4.conf.default.rp_filter=0"]);
            ns.exec(&["sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=0"]);
            ns.ip(&["link", "set", IFACE, "up"]);
        }
        victim.ip(&["addr", "add", &format!("{VICTIM_V4}/24"), "dev", IFACE]);
        victim.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{VICTIM_V6}/64"),
            "dev",
            IFACE,
            "nodad",
        ]);
        for addr in attacker_v4 {
            attacker.ip(&["addr", "add", &format!("{addr}/32"), "dev", IFACE]);
        }
        for addr in attacker_v6 {
            attacker.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{addr}/128"),
                "dev",
                IFACE,
                "nodad",
            ]);
        }
        for ns in [&attacker, &victim] {
            ns.ip(&["route", "add", "default", "dev", IFACE]);
            ns.ip(&["-6", "route", "add", "default", "dev", IFACE]);
        }
        // Static neighbours: address resolution must not depend on the attacker's own
        // solicitations, which come from its (banned) addresses and are dropped.
        for victim_addr in [VICTIM_V4, VICTIM_V6] {
            attacker.ip(&[
                "neigh",
                "replace",
                victim_addr,
                "lladdr",
                &v_mac,
                "dev",
                IFACE,
                "nud",
                "permanent",
            ]);
        }
        for addr in attacker_v4.iter().chain(attacker_v6) {
            victim.ip(&[
                "neigh",
                "replace",
                addr,
                "lladdr",
                &a_mac,
                "dev",
                IFACE,
                "nud",
                "permanent",
            ]);
        }
        Self { attacker, victim }
    }

    /// Sends raw Ethernet frames out of the attacker's interface (`AF_PACKET`), as they are.
    pub fn send_frames(&self, frames: &[Vec<u8>]) {
        with_netns(&self.attacker, || {
            let ifindex = banxdp::enforce::xdp::ifindex(IFACE).expect("attacker interface");
            // SAFETY: a packet socket we own, closed below; addresses outlive the calls.
            unsafe {
                let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
                assert!(
                    fd >= 0,
                    "AF_PACKET socket: {}",
                    std::io::Error::last_os_error()
                );
                let mut addr: libc::sockaddr_ll = std::mem::zeroed();
                addr.sll_family = u16::try_from(libc::AF_PACKET).unwrap();
                addr.sll_ifindex = i32::try_from(ifindex).unwrap();
                addr.sll_halen = 6;
                for frame in frames {
                    let sent = libc::sendto(
                        fd,
                        frame.as_ptr().cast(),
                        frame.len(),
                        0,
                        (&raw const addr).cast(),
                        u32::try_from(std::mem::size_of::<libc::sockaddr_ll>()).unwrap(),
                    );
                    assert_eq!(
                        sent,
                        isize::try_from(frame.len()).unwrap(),
                        "{}",
                        std::io::Error::last_os_error()
                    );
                }
                libc::close(fd);
            }
        });
    }

    /// Sends `count` UDP datagrams from `source` to the victim's `port` and returns how many
    /// the victim received.
    #[must_use]
    pub fn udp_delivered(&self, source: &str, port: u16, count: usize) -> usize {
        use std::{net::UdpSocket, time::Duration};
        let (source, target) = victim_for(source);
        let receiver = with_netns(&self.victim, || {
            retry_in_use(|| UdpSocket::bind((target, port)))
        })
        .expect("bind the victim's socket");
        receiver
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let sender =
            with_netns(&self.attacker, || UdpSocket::bind((source, 0))).expect("bind sender");
        for i in 0..count {
            sender
                .send_to(format!("probe {i}").as_bytes(), (target, port))
                .expect("send");
        }
        let mut buf = [0u8; 64];
        let mut delivered = 0;
        while receiver.recv(&mut buf).is_ok() {
            delivered += 1;
        }
        delivered
    }

    /// Whether a TCP connection from `source` to the victim's `port` succeeds (a listener is
    /// opened there for the attempt).
    #[must_use]
    pub fn tcp_connects(&self, source: &str, port: u16) -> bool {
        use std::{
            net::{SocketAddr, TcpListener},
            time::Duration,
        };
        let (source, target) = victim_for(source);
        let _listener = with_netns(&self.victim, || {
            retry_in_use(|| TcpListener::bind((target, port)))
        })
        .expect("bind the victim's listener");
        with_netns(&self.attacker, || {
            let socket = socket2_connect(SocketAddr::new(source, 0), SocketAddr::new(target, port));
            socket.is_ok_and(|s| {
                let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
                true
            })
        })
    }
}

/// `bind`, tried again for up to 2 s while the port is in use: the socket a call before this
/// one closed can outlive it for a moment, when another test's thread forked a child just
/// then (the child holds every descriptor until its `exec` closes them).
pub fn retry_in_use<S>(bind: impl Fn() -> std::io::Result<S>) -> std::io::Result<S> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match bind() {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// `source` parsed, and the victim's address of the same family.
fn victim_for(source: &str) -> (std::net::IpAddr, std::net::IpAddr) {
    let source: std::net::IpAddr = source.parse().expect("address");
    let target = if source.is_ipv4() {
        VICTIM_V4
    } else {
        VICTIM_V6
    };
    (source, target.parse().expect("victim address"))
}

fn mac(bytes: [u8; 6]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A TCP connect from a chosen source address with a 1-second timeout, through libc (std
/// cannot bind before connecting).
fn socket2_connect(
    source: std::net::SocketAddr,
    target: std::net::SocketAddr,
) -> std::io::Result<std::net::TcpStream> {
    use std::os::fd::FromRawFd as _;
    let (domain, src, dst, len) = sockaddrs(source, target);
    // SAFETY: plain socket calls on a socket we own; sockaddr buffers outlive the calls.
    unsafe {
        let fd = libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = std::net::TcpStream::from_raw_fd(fd);
        let timeout = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&raw const timeout).cast(),
            u32::try_from(std::mem::size_of::<libc::timeval>()).unwrap(),
        );
        if libc::bind(fd, (&raw const src).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::connect(fd, (&raw const dst).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

fn sockaddrs(
    source: std::net::SocketAddr,
    target: std::net::SocketAddr,
) -> (i32, libc::sockaddr_storage, libc::sockaddr_storage, u32) {
    fn storage(addr: std::net::SocketAddr) -> (libc::sockaddr_storage, u32) {
        // SAFETY: zeroed sockaddr_storage is valid; we write the variant that fits.
        let mut s: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        match addr {
            std::net::SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: u16::try_from(libc::AF_INET).unwrap(),
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_in fits in sockaddr_storage.
                unsafe { std::ptr::write((&raw mut s).cast(), sin) };
                (
                    s,
                    u32::try_from(std::mem::size_of::<libc::sockaddr_in>()).unwrap(),
                )
            }
            std::net::SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: u16::try_from(libc::AF_INET6).unwrap(),
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: 0,
                };
                // SAFETY: sockaddr_in6 fits in sockaddr_storage.
                unsafe { std::ptr::write((&raw mut s).cast(), sin6) };
                (
                    s,
                    u32::try_from(std::mem::size_of::<libc::sockaddr_in6>()).unwrap(),
                )
            }
        }
    }
    let domain = if source.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let (src, len) = storage(source);
    let (dst, _) = storage(target);
    (domain, src, dst, len)
}
