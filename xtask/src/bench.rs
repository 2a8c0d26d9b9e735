//! `cargo xtask bench-drop`: the cost of dropping a flood from one banned source, and of
//! passing one from a source that is not banned (what every legitimate client pays), with
//! banxdp's XDP program, a minimal XDP program as the reference of what this machine and its
//! injector allow, the netfilter ways fail2ban bans (an nftables set, an ipset matched by
//! iptables, an iptables rule per address) and banxdp's own fallbacks doing the same, for
//! banned sets of several sizes; and the time to load 100,000 bans into each.
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
//! The backends of one banned-set size are installed side by side, each in namespaces of its
//! own, and measured in rounds: one run of each, in turn, per round. A burst of load on the
//! shared machine then touches every backend of a round alike, and the table compares banxdp
//! with the minimal program round by round (the median of their ratios, with the range).
//!
//! Needs root; it creates and removes its own namespaces and sends nothing anywhere else.
//! Installing each backend and reading its counters is in `bench/install.rs`; the minimal
//! program in `bench/minimal.rs`.

mod install;
pub mod minimal;

use std::{
    fmt::Write as _,
    fs,
    net::Ipv4Addr,
    os::fd::{AsFd as _, OwnedFd},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use banxdp::enforce::xdp::{ifindex, sys};
use banxdp_tests::{
    Topology,
    frame::{ETH_P_IP, UDP, ethernet, ipv4, udp},
    netns::{ATTACKER_MAC, IFACE, VICTIM_MAC, VICTIM_V4},
    with_netns,
};
use install::{Installed, Load, dropped, install, passed};

const XDP_TX: u32 = 3;
const ATTACKER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 66);
/// A source that no backend bans: its frames measure the pass path.
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 77);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The reference: one hash lookup, then drop or pass (native mode).
    Minimal,
    /// banxdp's XDP program (native mode on the victim's veth).
    Xdp,
    /// An nftables set with timeouts, matched in the input hook (fail2ban's nftables action).
    Nftables,
    /// An ipset (hash:ip) matched by one iptables rule (fail2ban's iptables-ipset action).
    Ipset,
    /// One iptables rule per address (fail2ban's iptables actions).
    Iptables,
    /// banxdp's own nftables fallback (`enforce::nftables`).
    OwnNftables,
    /// banxdp's own ipset fallback (`enforce::ipset`).
    OwnIpset,
    /// banxdp's own rule-per-address fallback (`enforce::iptables`).
    OwnIptables,
    /// banxdp's XDP program from another object (`--baseline`), beside the embedded one.
    #[value(skip)]
    Baseline,
}

/// Which frames a run sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Path {
    /// From the banned attacker: the backend drops them.
    Drop,
    /// From a client nobody banned: the backend passes them to the stack.
    Pass,
}

impl Path {
    fn label(self) -> &'static str {
        match self {
            Self::Drop => "drop",
            Self::Pass => "pass",
        }
    }

    fn source(self) -> Ipv4Addr {
        match self {
            Self::Drop => ATTACKER,
            Self::Pass => CLIENT,
        }
    }
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Self::Minimal => "minimal XDP (reference)",
            Self::Xdp => "banxdp XDP",
            Self::Nftables => "nftables set",
            Self::Ipset => "ipset + iptables",
            Self::Iptables => "iptables, rule per address",
            Self::OwnNftables => "banxdp nftables fallback",
            Self::OwnIpset => "banxdp ipset fallback",
            Self::OwnIptables => "banxdp iptables fallback",
            Self::Baseline => "banxdp XDP, baseline object",
        }
    }

    /// Whether the cost per packet grows with the bans (a rule per address).
    fn linear(self) -> bool {
        matches!(self, Self::Iptables | Self::OwnIptables)
    }
}

#[derive(clap::Args)]
pub struct Options {
    /// Sizes of the banned set.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 10_000, 1_000_000])]
    sizes: Vec<usize>,
    /// Backends to measure.
    #[arg(
        long,
        value_delimiter = ',',
        default_values = [
            "minimal", "xdp", "nftables", "own-nftables", "ipset", "own-ipset", "iptables",
            "own-iptables",
        ]
    )]
    backends: Vec<Backend>,
    /// Paths to measure.
    #[arg(long, value_delimiter = ',', default_values = ["drop", "pass"])]
    paths: Vec<Path>,
    /// Bans loaded into each backend for the load-time table (0: no load table).
    #[arg(long, default_value_t = 100_000)]
    load_size: usize,
    /// Frames injected per run (fewer for backends under 500 kpps: about `seconds` worth).
    #[arg(long, default_value_t = 3_000_000)]
    frames: u32,
    /// Length of one run of a slow backend, in seconds.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Rounds per measurement (a round runs each backend once); the table shows each
    /// backend's median run (by rate).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Largest set given to the rule-per-address backend (its cost per packet is linear).
    #[arg(long, default_value_t = 10_000)]
    iptables_max: usize,
    /// Also write the table to this file.
    #[arg(long)]
    output: Option<std::path::PathBuf>,
    /// An earlier build's XDP object (`git show REV:banxdp/bpf/banxdp.bpf.o > old.bpf.o`),
    /// measured in the same rounds as the embedded one.
    #[arg(long)]
    baseline: Option<std::path::PathBuf>,
}

/// One measurement.
struct Row {
    size: usize,
    backend: Backend,
    path: Path,
    load: Load,
    frames: u32,
    wall: Duration,
    softirq_ns: f64,
    /// Frames the backend dropped (drop path) or passed to the stack (pass path).
    counted: u64,
    /// The rate of each round's run, in frames per second, in round order.
    rounds: Vec<f64>,
}

impl Row {
    /// Frames the backend dropped or passed per second: what reached it, not what was
    /// injected (a receiver slower than the injector loses frames in the veth ring first).
    fn mpps(&self) -> f64 {
        #[expect(
            clippy::cast_precision_loss,
            reason = "frame counts are far below 2^52"
        )]
        let counted = self.counted as f64;
        counted / self.wall.as_secs_f64() / 1e6
    }
}

pub fn run(options: &Options) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    ensure!(unsafe { libc::geteuid() } == 0, "bench-drop needs root");
    let mut rows = Vec::new();
    for &size in &options.sizes {
        ensure!(size >= 1, "a banned set holds at least the attacker");
        let baseline = options.baseline.as_ref().map(|_| Backend::Baseline);
        let backends: Vec<Backend> = options
            .backends
            .iter()
            .copied()
            .chain(baseline)
            .filter(|backend| {
                let skip = backend.linear() && size > options.iptables_max;
                if skip {
                    eprintln!(
                        "{}: {size} bans skipped (over --iptables-max)",
                        backend.label()
                    );
                }
                !skip
            })
            .collect();
        for row in measure(&backends, size, options)? {
            eprintln!(
                "{}, {size} bans, {}: median run {:.3} Mpps, {:.0} ns softirq/frame, {} of {}",
                row.backend.label(),
                row.path.label(),
                row.mpps(),
                row.softirq_ns,
                row.counted,
                row.frames
            );
            rows.push(row);
        }
    }
    let mut table = render(&rows, options);
    if options.load_size > 0 {
        table += &load_table(options)?;
    }
    println!("{table}");
    if let Some(path) = &options.output {
        fs::write(path, &table).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The banned set: the attacker first (a rule-per-address chain filled with `-I` puts it
/// last, so that dropping it walks every rule), then `size - 1` other addresses (entries
/// only; no traffic). The pass path's client is in none.
fn banned(size: usize) -> Vec<Ipv4Addr> {
    let base = u32::from(Ipv4Addr::new(10, 0, 0, 0));
    std::iter::once(ATTACKER)
        .chain((0..size - 1).map(|i| Ipv4Addr::from(base + u32::try_from(i).expect("< 2^32"))))
        .collect()
}

/// The time to load `--load-size` bans into each backend, each into fresh namespaces.
fn load_table(options: &Options) -> Result<String> {
    let size = options.load_size;
    let addresses = banned(size);
    let mut out = format!(
        "\n| backend | time to load {size} bans | CPU time (user + system, tools included) |\n\
         | --- | ---: | ---: |\n"
    );
    for &backend in &options.backends {
        eprintln!("{}: loading {size} bans ...", backend.label());
        let topo = Topology::new(&[], &[]);
        let (installed, load) = install(backend, &topo, &addresses, options.baseline.as_deref())
            .with_context(|| format!("{} loading {size} bans", backend.label()))?;
        drop(installed);
        let (wall, cpu) = (load.wall.as_secs_f64(), load.cpu.as_secs_f64());
        eprintln!("  {wall:.3} s, {cpu:.3} s of CPU");
        let _ = writeln!(out, "| {} | {wall:.3} s | {cpu:.3} s |", backend.label());
    }
    Ok(out)
}

/// The frame a path sends: UDP from its source to the victim's port 9 (nobody listens).
fn frame(path: Path) -> Result<Vec<u8>> {
    Ok(ethernet(
        VICTIM_MAC,
        ATTACKER_MAC,
        &[],
        ETH_P_IP,
        &ipv4(
            path.source(),
            VICTIM_V4.parse()?,
            UDP,
            0,
            &udp(40000, 9, &[0; 18]),
        ),
    ))
}

/// A backend installed in namespaces of its own.
struct Bench {
    backend: Backend,
    topo: Topology,
    installed: Installed,
    load: Load,
    attacker_ifindex: u32,
}

impl Bench {
    fn install(backend: Backend, size: usize, options: &Options) -> Result<Self> {
        eprintln!("{}: installing {size} bans ...", backend.label());
        let topo = Topology::new(&[], &[]);
        let (installed, load) = install(backend, &topo, &banned(size), options.baseline.as_deref())
            .with_context(|| format!("{} with {size} bans", backend.label()))?;
        let attacker_ifindex = with_netns(&topo.attacker, || ifindex(IFACE))?;
        Ok(Self {
            backend,
            topo,
            installed,
            load,
            attacker_ifindex,
        })
    }

    /// Sends `count` copies of `frame` from the attacker's end; the wall time it took.
    fn inject(&self, injector: &OwnedFd, frame: &[u8], count: u32) -> Result<Duration> {
        let start = Instant::now();
        with_netns(&self.topo.attacker, || {
            sys::test_run(
                injector.as_fd(),
                frame,
                self.attacker_ifindex,
                count,
                true,
                64,
            )
        })
        .context("BPF_PROG_TEST_RUN with live frames (kernel 5.18 or later)")?;
        Ok(start.elapsed())
    }

    /// One run, tried again (twice) when most of its frames died in the veth ring: on a busy
    /// VM the victim sometimes falls behind the injector for a whole run.
    fn run(
        &self,
        path: Path,
        frames: u32,
        inject: &dyn Fn(u32) -> Result<Duration>,
    ) -> Result<Run> {
        let once = || {
            one_run(
                self.backend,
                path,
                &self.topo,
                &self.installed,
                frames,
                inject,
            )
        };
        let mut run = once()?;
        for _ in 0..2 {
            if run.counted >= u64::from(frames) / 2 {
                break;
            }
            eprintln!(
                "  {}: only {} of {frames} frames reached the backend; running again",
                self.backend.label(),
                run.counted
            );
            run = once()?;
        }
        Ok(run)
    }
}

/// Installs every backend with `size` bans, then measures each path in rounds.
fn measure(backends: &[Backend], size: usize, options: &Options) -> Result<Vec<Row>> {
    let injector = sys::load_constant_xdp(XDP_TX).context("loading the XDP_TX injector")?;
    let benches = backends
        .iter()
        .map(|&backend| Bench::install(backend, size, options))
        .collect::<Result<Vec<_>>>()?;
    let mut rows = Vec::new();
    for &path in &options.paths {
        let frame = frame(path)?;
        let injectors: Vec<_> = benches
            .iter()
            .map(|bench| {
                let frame = &frame;
                let injector = &injector;
                move |count| bench.inject(injector, frame, count)
            })
            .collect();
        let frames = injectors
            .iter()
            .map(|inject| frames_per_run(inject, options))
            .collect::<Result<Vec<_>>>()?;
        let mut runs: Vec<Vec<Run>> = benches.iter().map(|_| Vec::new()).collect();
        for _ in 0..options.runs.max(1) {
            for (i, bench) in benches.iter().enumerate() {
                let run = bench
                    .run(path, frames[i], &injectors[i])
                    .with_context(|| format!("{} with {size} bans", bench.backend.label()))?;
                runs[i].push(run);
            }
        }
        for ((bench, mut runs), frames) in benches.iter().zip(runs).zip(frames) {
            let rounds = runs.iter().map(Run::rate).collect();
            runs.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
            let median = runs.swap_remove(runs.len() / 2);
            rows.push(Row {
                size,
                backend: bench.backend,
                path,
                load: bench.load,
                frames,
                wall: median.wall,
                softirq_ns: median.softirq_ns,
                counted: median.counted,
                rounds,
            });
        }
    }
    Ok(rows)
}

/// Warms up (first touches of the maps, the rings and the stack) and sizes a run: fast
/// backends get the full `--frames`; one slower than 500 kpps (a long rule chain) gets about
/// `--seconds` worth, so that it finishes in reasonable time.
fn frames_per_run(inject: &dyn Fn(u32) -> Result<Duration>, options: &Options) -> Result<u32> {
    let probe = 100_000;
    let probe_time = inject(probe)?;
    let rate = f64::from(probe) / probe_time.as_secs_f64().max(1e-6);
    if rate >= 500_000.0 {
        return Ok(options.frames);
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "clamped"
    )]
    let sized = (rate * options.seconds).clamp(20_000.0, f64::from(options.frames)) as u32;
    Ok(sized)
}

/// One injection of `frames` frames and what it cost the victim.
struct Run {
    wall: Duration,
    softirq_ns: f64,
    counted: u64,
}

impl Run {
    fn rate(&self) -> f64 {
        #[expect(
            clippy::cast_precision_loss,
            reason = "frame counts are far below 2^52"
        )]
        let counted = self.counted as f64;
        counted / self.wall.as_secs_f64()
    }
}

fn one_run(
    backend: Backend,
    path: Path,
    topo: &Topology,
    installed: &Installed,
    frames: u32,
    inject: &dyn Fn(u32) -> Result<Duration>,
) -> Result<Run> {
    let count = || match path {
        Path::Drop => dropped(backend, topo, installed),
        Path::Pass => passed(topo),
    };
    let before = count()?;
    let softirq_before = softirq_ticks()?;
    let wall = inject(frames)?;
    std::thread::sleep(Duration::from_millis(100));
    let softirq_after = softirq_ticks()?;
    let counted = count()? - before;
    // Frames lost in the veth ring never reach the victim, so they cost it nothing (the rate
    // and the softirq time count only those that reached the backend); `measure` runs again
    // one that lost most of them, and the table shows how many reached it.
    ensure!(
        counted > 0,
        "no frame of {frames} was {}ed by the backend: the comparison is void",
        if path == Path::Drop { "dropp" } else { "pass" }
    );
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    #[expect(clippy::cast_precision_loss, reason = "tick counts are far below 2^52")]
    let softirq_ns = (softirq_after - softirq_before) as f64 * 1e9
        / ticks_per_second as f64
        / counted.max(1) as f64;
    Ok(Run {
        wall,
        softirq_ns,
        counted,
    })
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

/// `x`'s rate over `m`'s, round by round: the median, the lowest and the highest.
fn round_ratios(x: &Row, m: &Row) -> (f64, f64, f64) {
    let mut ratios: Vec<f64> = x.rounds.iter().zip(&m.rounds).map(|(x, m)| x / m).collect();
    ratios.sort_by(f64::total_cmp);
    match (ratios.first(), ratios.last()) {
        (Some(&low), Some(&high)) => (ratios[ratios.len() / 2], low, high),
        _ => (x.mpps() / m.mpps(), 0.0, 0.0),
    }
}

fn render(rows: &[Row], options: &Options) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| banned | backend | path | load time | rate | softirq per frame | injected | counted |"
    );
    let _ = writeln!(
        out,
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.3} s | {:.3} Mpps | {:.0} ns | {} | {} |",
            r.size,
            r.backend.label(),
            r.path.label(),
            r.load.wall.as_secs_f64(),
            r.mpps(),
            r.softirq_ns,
            r.frames,
            r.counted
        );
    }
    for &path in &options.paths {
        let xdp: Vec<&Row> = rows
            .iter()
            .filter(|r| r.backend == Backend::Xdp && r.path == path)
            .collect();
        if let (Some(first), Some(last)) = (xdp.first(), xdp.last()) {
            if first.size != last.size {
                let ratio = last.mpps() / first.mpps();
                let _ = writeln!(
                    out,
                    "\nXDP {} rate at {} bans is {:.1}% of the rate at {} bans ({}: at most a 10% fall).",
                    path.label(),
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
            let at: Vec<&Row> = rows
                .iter()
                .filter(|r| r.size == size && r.path == path)
                .collect();
            let find = |b: Backend| at.iter().find(|r| r.backend == b);
            let Some(x) = find(Backend::Xdp) else {
                continue;
            };
            if let Some(m) = find(Backend::Minimal) {
                for x in [Some(x), find(Backend::Baseline)].into_iter().flatten() {
                    let (ratio, low, high) = round_ratios(x, m);
                    let _ = writeln!(
                        out,
                        "At {size} bans ({}), {} runs at {:.1}% of the minimal program's rate \
                         (median of {} rounds side by side; {:.1}% to {:.1}%; {:.1}% by the \
                         median runs), {:.0} ns against {:.0} ns of softirq per frame in the \
                         median runs (goal: within 5%: {}).",
                        path.label(),
                        x.backend.label(),
                        ratio * 100.0,
                        x.rounds.len().min(m.rounds.len()),
                        low * 100.0,
                        high * 100.0,
                        x.mpps() / m.mpps() * 100.0,
                        x.softirq_ns,
                        m.softirq_ns,
                        if ratio >= 0.95 { "met" } else { "NOT MET" }
                    );
                }
            }
            let others: Vec<String> = at
                .iter()
                .filter(|r| !matches!(r.backend, Backend::Xdp | Backend::Minimal))
                .map(|r| format!("{:.1}x {}", x.mpps() / r.mpps(), r.backend.label()))
                .collect();
            if !others.is_empty() {
                let _ = writeln!(
                    out,
                    "At {size} bans ({}), banxdp XDP's rate against the others: {}.",
                    path.label(),
                    others.join(", ")
                );
            }
        }
    }
    out
}
