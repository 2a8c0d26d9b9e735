//! `cargo xtask bench-drop`: the cost of dropping a flood from one banned source, with banxdp's
//! XDP program and with the netfilter ways fail2ban bans (an nftables set, an ipset matched by
//! iptables, an iptables rule per address), for banned sets of several sizes.
//!
//! Method (see shared/notes/drop-benchmark.md): two namespaces joined by a veth pair. On the
//! attacker's end a one-instruction `XDP_TX` program is run by `BPF_PROG_TEST_RUN` with live
//! frames, so the frames reach the victim's end as XDP frames, as from a NIC driver. The victim
//! runs banxdp's program natively, or an `XDP_PASS` program (so that netfilter pays for skb
//! allocation and the stack, as it does on a real NIC). The victim's cost is the growth of the
//! `softirq` time in /proc/stat per frame; the rate is frames over wall time. Every run checks
//! from the backend's own counters that the frames were really dropped, since a frame the
//! stack discards before netfilter would make the comparison void.
//!
//! Needs root; it creates and removes its own namespaces and sends nothing anywhere else.

use std::{
    fmt::Write as _,
    fs,
    io::Write as _,
    net::Ipv4Addr,
    os::fd::{AsFd as _, OwnedFd},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result, bail, ensure};
use banxdp::enforce::{
    Ban, Enforcer as _, Expiry, JailScope, PortScope,
    xdp::{AttachMode, XdpEnforcer, XdpPlan, ifindex, sys},
};
use banxdp_common::counter;
use banxdp_tests::{
    Topology,
    frame::{ETH_P_IP, UDP, ethernet, ipv4, udp},
    netns::{ATTACKER_MAC, IFACE, VICTIM_MAC, VICTIM_V4},
    with_netns,
};

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const ATTACKER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 66);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// banxdp's XDP program (native mode on the victim's veth).
    Xdp,
    /// An nftables set with timeouts, matched in the input hook (fail2ban's nftables action).
    Nftables,
    /// An ipset (hash:ip) matched by one iptables rule (fail2ban's iptables-ipset action).
    Ipset,
    /// One iptables rule per address (fail2ban's iptables actions).
    Iptables,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Self::Xdp => "banxdp XDP",
            Self::Nftables => "nftables set",
            Self::Ipset => "ipset + iptables",
            Self::Iptables => "iptables, rule per address",
        }
    }
}

#[derive(clap::Args)]
pub struct Options {
    /// Sizes of the banned set.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 10_000, 1_000_000])]
    sizes: Vec<usize>,
    /// Backends to measure.
    #[arg(long, value_delimiter = ',', default_values = ["xdp", "nftables", "ipset", "iptables"])]
    backends: Vec<Backend>,
    /// Frames injected per run (fewer for backends under 500 kpps: about `seconds` worth).
    #[arg(long, default_value_t = 3_000_000)]
    frames: u32,
    /// Length of one run of a slow backend, in seconds.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Runs per measurement; the table shows the median run (by drop rate).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Largest set given to the rule-per-address backend (its cost per packet is linear).
    #[arg(long, default_value_t = 10_000)]
    iptables_max: usize,
    /// Also write the table to this file.
    #[arg(long)]
    output: Option<std::path::PathBuf>,
}

/// One measurement.
struct Row {
    size: usize,
    backend: Backend,
    load: Duration,
    frames: u32,
    wall: Duration,
    softirq_ns: f64,
    dropped: u64,
}

impl Row {
    /// Frames the backend dropped per second: what reached it, not what was injected (a
    /// receiver slower than the injector loses frames in the veth ring before the stack).
    fn mpps(&self) -> f64 {
        #[expect(
            clippy::cast_precision_loss,
            reason = "frame counts are far below 2^52"
        )]
        let dropped = self.dropped as f64;
        dropped / self.wall.as_secs_f64() / 1e6
    }
}

pub fn run(options: &Options) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    ensure!(unsafe { libc::geteuid() } == 0, "bench-drop needs root");
    let mut rows = Vec::new();
    for &size in &options.sizes {
        ensure!(size >= 1, "a banned set holds at least the attacker");
        for &backend in &options.backends {
            if backend == Backend::Iptables && size > options.iptables_max {
                eprintln!(
                    "{}: {size} bans skipped (over --iptables-max)",
                    backend.label()
                );
                continue;
            }
            eprintln!("{}: {size} bans ...", backend.label());
            let row = measure(backend, size, options)
                .with_context(|| format!("{} with {size} bans", backend.label()))?;
            eprintln!(
                "  load {:.3} s; median run: {:.2} Mpps, {:.0} ns softirq/frame, {} of {} dropped",
                row.load.as_secs_f64(),
                row.mpps(),
                row.softirq_ns,
                row.dropped,
                row.frames
            );
            rows.push(row);
        }
    }
    let table = render(&rows, options);
    println!("{table}");
    if let Some(path) = &options.output {
        fs::write(path, &table).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The banned set: the attacker plus `size - 1` other addresses (entries only; no traffic).
fn banned(size: usize) -> Vec<Ipv4Addr> {
    let base = u32::from(Ipv4Addr::new(10, 0, 0, 0));
    let mut all: Vec<Ipv4Addr> = (0..size - 1)
        .map(|i| Ipv4Addr::from(base + u32::try_from(i).expect("fewer than 2^32")))
        .collect();
    // Last: a rule-per-address chain is scanned in order, so this is what every packet that
    // is not banned pays too.
    all.push(ATTACKER);
    all
}

/// What keeps a backend in place while frames are sent.
enum Installed {
    Xdp(Box<XdpEnforcer>),
    PassProgram { _link: OwnedFd },
}

fn measure(backend: Backend, size: usize, options: &Options) -> Result<Row> {
    let topo = Topology::new(&[], &[]);
    let addresses = banned(size);
    let (installed, load) = install(backend, &topo, &addresses)?;

    let frame = ethernet(
        VICTIM_MAC,
        ATTACKER_MAC,
        &[],
        ETH_P_IP,
        &ipv4(
            ATTACKER,
            VICTIM_V4.parse()?,
            UDP,
            0,
            &udp(40000, 9, &[0; 18]),
        ),
    );
    let injector = sys::load_constant_xdp(XDP_TX).context("loading the XDP_TX injector")?;
    let attacker_ifindex = with_netns(&topo.attacker, || ifindex(IFACE))?;
    let inject = |count: u32| -> Result<Duration> {
        let start = Instant::now();
        with_netns(&topo.attacker, || {
            sys::test_run(injector.as_fd(), &frame, attacker_ifindex, count, true, 64)
        })
        .context("BPF_PROG_TEST_RUN with live frames (kernel 5.18 or later)")?;
        Ok(start.elapsed())
    };

    // Warm up (first touches of the maps, the rings and the stack). Fast backends get the
    // full `--frames` per run; one slower than 500 kpps (a long rule chain) gets about
    // `--seconds` worth, so that it finishes in reasonable time.
    let probe = 100_000;
    let probe_time = inject(probe)?;
    let rate = f64::from(probe) / probe_time.as_secs_f64().max(1e-6);
    let frames = if rate >= 500_000.0 {
        options.frames
    } else {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "clamped"
        )]
        let sized = (rate * options.seconds).clamp(20_000.0, f64::from(options.frames)) as u32;
        sized
    };

    let mut runs = Vec::with_capacity(options.runs.max(1));
    for _ in 0..options.runs.max(1) {
        runs.push(one_run(backend, &topo, &installed, frames, &inject)?);
    }
    runs.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    let median = runs.swap_remove(runs.len() / 2);
    drop(installed);
    Ok(Row {
        size,
        backend,
        load,
        frames,
        wall: median.wall,
        softirq_ns: median.softirq_ns,
        dropped: median.dropped,
    })
}

/// One injection of `frames` frames and what it cost the victim.
struct Run {
    wall: Duration,
    softirq_ns: f64,
    dropped: u64,
}

impl Run {
    fn rate(&self) -> f64 {
        #[expect(
            clippy::cast_precision_loss,
            reason = "frame counts are far below 2^52"
        )]
        let dropped = self.dropped as f64;
        dropped / self.wall.as_secs_f64()
    }
}

fn one_run(
    backend: Backend,
    topo: &Topology,
    installed: &Installed,
    frames: u32,
    inject: &dyn Fn(u32) -> Result<Duration>,
) -> Result<Run> {
    let dropped_before = dropped(backend, topo, installed)?;
    let softirq_before = softirq_ticks()?;
    let wall = inject(frames)?;
    std::thread::sleep(Duration::from_millis(100));
    let softirq_after = softirq_ticks()?;
    let dropped = dropped(backend, topo, installed)? - dropped_before;
    // Frames lost in the veth ring never reach the victim, so they cost it nothing; but if
    // most are missing, something before the backend is discarding them and the run is void.
    ensure!(
        dropped >= u64::from(frames) / 2,
        "only {dropped} of {frames} frames were dropped by the backend: the comparison is void"
    );
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    #[expect(clippy::cast_precision_loss, reason = "tick counts are far below 2^52")]
    let softirq_ns = (softirq_after - softirq_before) as f64 * 1e9
        / ticks_per_second as f64
        / dropped.max(1) as f64;
    Ok(Run {
        wall,
        softirq_ns,
        dropped,
    })
}

/// Puts the banned set in place on the victim and returns how long loading it took.
fn install(
    backend: Backend,
    topo: &Topology,
    addresses: &[Ipv4Addr],
) -> Result<(Installed, Duration)> {
    if backend == Backend::Xdp {
        let plan = XdpPlan {
            interfaces: vec![IFACE.into()],
            mode: AttachMode::Native,
            pin_dir: None,
            ..XdpPlan::default()
        };
        let mut xdp = with_netns(&topo.victim, || XdpEnforcer::load(&plan))?;
        xdp.add_jail(&JailScope {
            name: "bench".into(),
            ports: PortScope::All,
            shadow: false,
        })?;
        let expiry = Expiry::At(SystemTime::now() + Duration::from_secs(3600));
        let bans: Vec<Ban> = addresses
            .iter()
            .map(|a| Ban {
                jail: "bench".into(),
                target: std::net::IpAddr::V4(*a).into(),
                expiry,
            })
            .collect();
        let start = Instant::now();
        xdp.ban_many(&bans)?;
        return Ok((Installed::Xdp(Box::new(xdp)), start.elapsed()));
    }

    let pass = sys::load_constant_xdp(XDP_PASS).context("loading the XDP_PASS receiver")?;
    let link = with_netns(&topo.victim, || {
        sys::attach_native(pass.as_fd(), ifindex(IFACE).expect("victim interface"))
    })
    .context("attaching XDP_PASS natively to the victim's veth")?;
    let work = tempfile::tempdir()?;
    let file = work.path().join("rules");
    let (text, command) = netfilter_rules(backend, addresses, &file);
    let ns = topo.victim.name.clone();
    fs::File::create(&file)?.write_all(text.as_bytes())?;
    let start = Instant::now();
    netns_exec(&ns, &command)?;
    if backend == Backend::Ipset {
        netns_exec(
            &ns,
            &[
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
            ]
            .map(String::from),
        )?;
    }
    let load = start.elapsed();
    Ok((Installed::PassProgram { _link: link }, load))
}

/// The rules file for a netfilter backend and the command that loads it, written as the
/// fail2ban action would lay them out (matching drop instead of REJECT, to compare the match).
fn netfilter_rules(
    backend: Backend,
    addresses: &[Ipv4Addr],
    file: &std::path::Path,
) -> (String, Vec<String>) {
    let mut text = String::with_capacity(addresses.len() * 20);
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
            vec!["nft".into(), "-f".into(), file.display().to_string()]
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
            vec![
                "ipset".into(),
                "-file".into(),
                file.display().to_string(),
                "restore".into(),
            ]
        }
        Backend::Iptables => {
            text.push_str("*filter\n:banxdp-bench - [0:0]\n-A INPUT -j banxdp-bench\n");
            for a in addresses {
                let _ = writeln!(text, "-A banxdp-bench -s {a}/32 -j DROP");
            }
            text.push_str("COMMIT\n");
            vec![
                "iptables-restore".into(),
                "--noflush".into(),
                file.display().to_string(),
            ]
        }
        Backend::Xdp => unreachable!("handled above"),
    };
    (text, command)
}

fn netns_exec(ns: &str, command: &[String]) -> Result<String> {
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
fn dropped(backend: Backend, topo: &Topology, installed: &Installed) -> Result<u64> {
    let ns = &topo.victim.name;
    match (backend, installed) {
        (Backend::Xdp, Installed::Xdp(xdp)) => {
            let counters = xdp.counters()?;
            Ok(counters[0].packets[counter::DROP_V4])
        }
        (Backend::Nftables, _) => {
            let text = netns_exec(
                ns,
                &["nft", "-t", "list", "chain", "ip", "banxdp_bench", "input"].map(String::from),
            )?;
            let packets = text
                .split_whitespace()
                .skip_while(|w| *w != "packets")
                .nth(1)
                .context("no counter in the nftables chain")?;
            Ok(packets.parse()?)
        }
        (Backend::Ipset | Backend::Iptables, _) => {
            let chain = if backend == Backend::Ipset {
                "INPUT"
            } else {
                "banxdp-bench"
            };
            let text = netns_exec(ns, &["iptables", "-nvxL", chain].map(String::from))?;
            Ok(text
                .lines()
                .skip(2)
                .filter(|l| l.contains("DROP"))
                .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
                .sum())
        }
        (Backend::Xdp, Installed::PassProgram { .. }) => unreachable!("xdp installs the enforcer"),
    }
}

/// The `softirq` column of the `cpu` line of /proc/stat (all CPUs, in clock ticks).
fn softirq_ticks() -> Result<u64> {
    let stat = fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let field = line
        .split_whitespace()
        .nth(7)
        .context("no softirq column in /proc/stat")?;
    Ok(field.parse()?)
}

fn render(rows: &[Row], options: &Options) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| banned | backend | load time | drop rate | softirq per dropped frame | injected | dropped |"
    );
    let _ = writeln!(out, "| ---: | --- | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} s | {:.2} Mpps | {:.0} ns | {} | {} |",
            r.size,
            r.backend.label(),
            r.load.as_secs_f64(),
            r.mpps(),
            r.softirq_ns,
            r.frames,
            r.dropped
        );
    }
    let xdp: Vec<&Row> = rows.iter().filter(|r| r.backend == Backend::Xdp).collect();
    if let (Some(first), Some(last)) = (xdp.first(), xdp.last()) {
        if first.size != last.size {
            let ratio = last.mpps() / first.mpps();
            let _ = writeln!(
                out,
                "\nXDP drop rate at {} bans is {:.1}% of the rate at {} bans ({}: at most a 10% fall).",
                last.size,
                ratio * 100.0,
                first.size,
                if ratio >= 0.9 {
                    "holds"
                } else {
                    "DOES NOT HOLD"
                }
            );
        }
    }
    for &size in &options.sizes {
        let at: Vec<&Row> = rows.iter().filter(|r| r.size == size).collect();
        let Some(x) = at.iter().find(|r| r.backend == Backend::Xdp) else {
            continue;
        };
        let others: Vec<String> = at
            .iter()
            .filter(|r| r.backend != Backend::Xdp)
            .map(|r| format!("{:.1}x {}", x.mpps() / r.mpps(), r.backend.label()))
            .collect();
        if !others.is_empty() {
            let _ = writeln!(
                out,
                "At {size} bans, banxdp's rate against the others: {}.",
                others.join(", ")
            );
        }
    }
    out
}
