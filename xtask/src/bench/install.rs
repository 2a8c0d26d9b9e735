//! Putting a banned set in place on the benchmark's victim, for each backend, and reading
//! what it did: frames dropped (from the backend's own counters) or passed (the victim's
//! `Udp: NoPorts`, since the frames go to a port nobody listens on).
//!
//! Load times are measured the same way for every backend: from the request to the bans being
//! in place, the tools' process starts included (`ip netns exec` + `nft`/`ipset`/
//! `iptables-restore`, for the reference rows and banxdp's own fallbacks alike); the XDP rows
//! start no process. Hooks and chains that hold no ban are set up before the clock starts.

use std::{
    fmt::Write as _,
    fs,
    io::Write as _,
    net::Ipv4Addr,
    os::fd::{AsFd as _, OwnedFd},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result, bail};
use banxdp::enforce::{
    Ban, Enforcer, Expiry, JailScope, PortScope,
    exec::Executor,
    ipset::{IpsetEnforcer, IpsetOptions},
    iptables::{IptablesEnforcer, IptablesOptions},
    nftables::{NftEnforcer, NftOptions},
    xdp::{AttachMode, ObjectSource, XdpEnforcer, XdpPlan, ifindex, sys},
};
use banxdp_common::counter;
use banxdp_tests::{Topology, netns::IFACE, with_netns};

use super::{ATTACKER, Backend, minimal::Minimal};

const XDP_PASS: u32 = 2;
const JAIL: &str = "bench";

/// What loading the bans cost: wall time, and CPU time (user and system) of this process and
/// of the tools it ran, which a busy shared machine disturbs far less than the wall time.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub wall: Duration,
    pub cpu: Duration,
}

/// Measures a load from `start` to `stop`.
struct Stopwatch {
    wall: Instant,
    cpu: Duration,
}

impl Stopwatch {
    fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: cpu_time(),
        }
    }

    fn stop(self) -> Load {
        Load {
            wall: self.wall.elapsed(),
            cpu: cpu_time().saturating_sub(self.cpu),
        }
    }
}

/// User and system time of this process and its waited-for children so far.
fn cpu_time() -> Duration {
    let of = |who| {
        // SAFETY: getrusage fills the struct it is given; zeroed is a valid start.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::getrusage(who, &raw mut usage) };
        let tv = |t: libc::timeval| {
            Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
                + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
        };
        tv(usage.ru_utime) + tv(usage.ru_stime)
    };
    of(libc::RUSAGE_SELF) + of(libc::RUSAGE_CHILDREN)
}

/// What keeps a backend in place while frames are sent.
pub enum Installed {
    Xdp(Box<XdpEnforcer>),
    Minimal {
        minimal: Minimal,
        _link: OwnedFd,
    },
    /// Netfilter behind an `XDP_PASS` program; banxdp's own fallback when it is one.
    Netfilter {
        _link: OwnedFd,
        _fallback: Option<Box<dyn Enforcer>>,
    },
}

/// Puts the banned set in place on the victim and returns how long loading the bans took.
pub fn install(
    backend: Backend,
    topo: &Topology,
    addresses: &[Ipv4Addr],
    baseline: Option<&std::path::Path>,
) -> Result<(Installed, Load)> {
    let expiry = Expiry::At(SystemTime::now() + Duration::from_secs(3600));
    let bans = || -> Vec<Ban> {
        addresses
            .iter()
            .map(|a| Ban {
                jail: JAIL.into(),
                target: std::net::IpAddr::V4(*a).into(),
                expiry,
            })
            .collect()
    };
    let jail = JailScope {
        name: JAIL.into(),
        ports: PortScope::All,
        shadow: false,
    };
    match backend {
        Backend::Xdp | Backend::Baseline => {
            let object = match (backend, baseline) {
                (Backend::Baseline, Some(path)) => ObjectSource::File(path.to_path_buf()),
                _ => ObjectSource::Embedded,
            };
            let plan = XdpPlan {
                object,
                interfaces: vec![IFACE.into()],
                mode: AttachMode::Native,
                pin_dir: None,
                ..XdpPlan::default()
            };
            let mut xdp = with_netns(&topo.victim, || XdpEnforcer::load(&plan))?;
            xdp.add_jail(&jail)?;
            let bans = bans();
            let watch = Stopwatch::start();
            xdp.ban_many(&bans)?;
            Ok((Installed::Xdp(Box::new(xdp)), watch.stop()))
        }
        Backend::Minimal => {
            let minimal = Minimal::load(addresses.len())?;
            let link = with_netns(&topo.victim, || {
                sys::attach_native(minimal.prog.as_fd(), ifindex(IFACE).expect("victim"))
            })
            .context("attaching the minimal program natively to the victim's veth")?;
            let watch = Stopwatch::start();
            minimal.ban(addresses)?;
            let load = watch.stop();
            Ok((
                Installed::Minimal {
                    minimal,
                    _link: link,
                },
                load,
            ))
        }
        Backend::Nftables | Backend::Ipset | Backend::Iptables => {
            let link = pass_program(topo)?;
            let load = reference_rules(backend, &topo.victim.name, addresses)?;
            let installed = Installed::Netfilter {
                _link: link,
                _fallback: None,
            };
            Ok((installed, load))
        }
        Backend::OwnNftables | Backend::OwnIpset | Backend::OwnIptables => {
            let link = pass_program(topo)?;
            let mut fallback = own_fallback(backend, Executor::in_netns(&topo.victim.name))?;
            fallback.add_jail(&jail)?;
            let bans = bans();
            let watch = Stopwatch::start();
            fallback.ban_many(&bans)?;
            let load = watch.stop();
            let installed = Installed::Netfilter {
                _link: link,
                _fallback: Some(fallback),
            };
            Ok((installed, load))
        }
    }
}

/// One of banxdp's own fallback backends, running its tools through `exec`.
fn own_fallback(backend: Backend, exec: Executor) -> Result<Box<dyn Enforcer>> {
    Ok(match backend {
        Backend::OwnNftables => Box::new(NftEnforcer::new(NftOptions {
            exec,
            ..NftOptions::default()
        })?),
        Backend::OwnIpset => Box::new(IpsetEnforcer::new(IpsetOptions {
            exec,
            ..IpsetOptions::default()
        })?),
        _ => Box::new(IptablesEnforcer::new(IptablesOptions {
            exec,
            ..IptablesOptions::default()
        })?),
    })
}

/// An `XDP_PASS` program on the victim's veth, so that frames arrive as from a NIC driver and
/// netfilter pays for skb allocation and the stack.
fn pass_program(topo: &Topology) -> Result<OwnedFd> {
    let pass = sys::load_constant_xdp(XDP_PASS).context("loading the XDP_PASS receiver")?;
    with_netns(&topo.victim, || {
        sys::attach_native(pass.as_fd(), ifindex(IFACE).expect("victim interface"))
    })
    .context("attaching XDP_PASS natively to the victim's veth")
}

/// Loads a reference rule set into `ns` and returns how long its command took.
fn reference_rules(backend: Backend, ns: &str, addresses: &[Ipv4Addr]) -> Result<Load> {
    let work = tempfile::tempdir()?;
    let file = work.path().join("rules");
    let (text, command) = netfilter_rules(backend, addresses, &file);
    fs::File::create(&file)?.write_all(text.as_bytes())?;
    let watch = Stopwatch::start();
    netns_exec(ns, &command)?;
    let load = watch.stop();
    if backend == Backend::Ipset {
        let rule = [
            "iptables",
            "-I",
            "INPUT",
            "-m",
            "set",
            "--match-set",
            "banxdp_bench",
            "src",
            "-j",
            "DROP",
        ];
        netns_exec(ns, &rule.map(String::from))?;
    }
    Ok(load)
}

/// The rules file for a reference netfilter backend and the command that loads it, laid out
/// as fail2ban's actions do (matching drop instead of REJECT, to compare the match). The rule
/// per address is inserted (`-I`, newest first) as fail2ban's `actionban` does, so the first
/// address given (the attacker) ends up last.
fn netfilter_rules(
    backend: Backend,
    addresses: &[Ipv4Addr],
    file: &std::path::Path,
) -> (String, Vec<String>) {
    let mut text = String::with_capacity(addresses.len() * 30);
    let path = file.display().to_string();
    let command: Vec<String> = match backend {
        Backend::Nftables => {
            text.push_str(
                "table ip banxdp_bench {\n  set banned { type ipv4_addr; flags timeout; }\n  \
                 chain input { type filter hook input priority -1; ip saddr @banned counter drop; }\n}\n",
            );
            for chunk in addresses.chunks(10_000) {
                text.push_str("add element ip banxdp_bench banned { ");
                for (i, a) in chunk.iter().enumerate() {
                    let _ = write!(text, "{}{a} timeout 1h", if i == 0 { "" } else { ", " });
                }
                text.push_str(" }\n");
            }
            vec!["nft".into(), "-f".into(), path]
        }
        Backend::Ipset => {
            let max = addresses.len().max(65_536) * 2;
            let _ = writeln!(
                text,
                "create banxdp_bench hash:ip family inet hashsize {} maxelem {max} timeout 3600",
                addresses.len().next_power_of_two().max(1024)
            );
            for a in addresses {
                let _ = writeln!(text, "add banxdp_bench {a}");
            }
            vec!["ipset".into(), "-file".into(), path, "restore".into()]
        }
        _ => {
            text.push_str("*filter\n:banxdp-bench - [0:0]\n-I INPUT -j banxdp-bench\n");
            for a in addresses {
                let _ = writeln!(text, "-I banxdp-bench 1 -s {a}/32 -j DROP");
            }
            text.push_str("COMMIT\n");
            vec!["iptables-restore".into(), "--noflush".into(), path]
        }
    };
    (text, command)
}

pub fn netns_exec(ns: &str, command: &[String]) -> Result<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns])
        .args(command)
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Packets the backend has dropped so far, from its own counters.
pub fn dropped(backend: Backend, topo: &Topology, installed: &Installed) -> Result<u64> {
    let ns = &topo.victim.name;
    let run = |args: &[&str]| {
        netns_exec(
            ns,
            &args.iter().map(|a| (*a).to_string()).collect::<Vec<_>>(),
        )
    };
    match (backend, installed) {
        (_, Installed::Xdp(xdp)) => Ok(xdp.counters()?[0].packets[counter::DROP_V4]),
        (_, Installed::Minimal { minimal, .. }) => minimal.drops(ATTACKER),
        // `-t`: without the set's elements, which nft would otherwise fetch and print.
        (Backend::Nftables, _) => nft_drops(&run(&[
            "nft",
            "-t",
            "list",
            "chain",
            "ip",
            "banxdp_bench",
            "input",
        ])?),
        (Backend::OwnNftables, _) => nft_drops(&run(&[
            "nft", "-t", "list", "chain", "inet", "banxdp", "input",
        ])?),
        (backend, _) => {
            let chain = match backend {
                Backend::Ipset => "INPUT",
                Backend::Iptables => "banxdp-bench",
                Backend::OwnIpset => "banxdp-ipset",
                _ => "bx-bench",
            };
            Ok(iptables_drops(&run(&["iptables", "-w", "-nvxL", chain])?))
        }
    }
}

/// The packets of the `drop` rules of an `nft list chain` listing.
fn nft_drops(listing: &str) -> Result<u64> {
    let mut total = 0;
    for line in listing.lines().filter(|l| l.contains(" drop")) {
        let packets = line
            .split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .context("no counter on an nftables drop rule")?;
        total += packets.parse::<u64>()?;
    }
    Ok(total)
}

/// The packets of the `DROP` rules of an `iptables -nvxL` listing.
fn iptables_drops(listing: &str) -> u64 {
    listing
        .lines()
        .skip(2)
        .filter(|l| l.contains("DROP"))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Datagrams that reached the victim's UDP layer for a port nobody listens on (`NoPorts` in
/// the victim's /proc/net/snmp): the frames a backend passed.
pub fn passed(topo: &Topology) -> Result<u64> {
    let snmp = netns_exec(&topo.victim.name, &["cat".into(), "/proc/net/snmp".into()])?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        bail!("no Udp lines in /proc/net/snmp");
    };
    let column = names
        .split_whitespace()
        .position(|n| n == "NoPorts")
        .context("no NoPorts column in /proc/net/snmp")?;
    let value = values
        .split_whitespace()
        .nth(column)
        .context("short Udp line in /proc/net/snmp")?;
    Ok(value.parse()?)
}
