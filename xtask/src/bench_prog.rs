//! `cargo xtask bench-prog`: what banxdp's XDP program costs by itself, per frame, against
//! the minimal program of the drop benchmark, through `BPF_PROG_TEST_RUN` with `repeat`.
//!
//! The kernel runs each program `--repeat` times on one frame and reports the average time
//! of a run; no driver, ring or stack is involved, so this isolates the program and is far
//! steadier than the veth benchmark (`bench-drop`) on a shared machine. Rounds alternate the
//! programs (minimal, the embedded banxdp object, then each `--objects` file), so that a
//! burst of load elsewhere touches them all alike; the table gives the minimum and the median
//! of the rounds. The frames are `bench-drop`'s: UDP from a source banned by one all-ports
//! jail (drop), and from one nobody banned (pass). Each run's verdict is checked.
//!
//! Needs root (loading programs); attaches nothing and sends nothing.

use std::{
    fmt::Write as _,
    net::Ipv4Addr,
    os::fd::AsFd as _,
    path::PathBuf,
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, Result, ensure};
use banxdp::enforce::{
    Ban, Enforcer as _, Expiry, JailScope, PortScope,
    xdp::{ObjectSource, XdpEnforcer, XdpPlan, sys},
};
use banxdp_tests::{
    frame::{ETH_P_IP, UDP, ethernet, ipv4, udp},
    netns::{ATTACKER_MAC, VICTIM_MAC, VICTIM_V4},
};

use crate::bench::minimal::Minimal;

const ATTACKER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 66);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 77);
/// Loopback, which every namespace has: the kernel resolves a test run's ingress device.
const IFINDEX: u32 = 1;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

#[derive(clap::Args)]
pub struct Options {
    /// Other banxdp objects to measure beside the embedded one (earlier builds, scratch
    /// builds with a piece removed).
    #[arg(long, value_delimiter = ',')]
    objects: Vec<PathBuf>,
    /// Runs per test run (the kernel reports their average).
    #[arg(long, default_value_t = 1_000_000)]
    repeat: u32,
    /// Rounds; each runs every program once on each frame.
    #[arg(long, default_value_t = 21)]
    rounds: usize,
    /// Also measure ban sets this large (the attacker among others), besides 1.
    #[arg(long, default_value_t = 10_000)]
    bans: usize,
}

/// Runs a program `repeat` times on a frame.
type Runner = Box<dyn FnMut(&[u8], u32) -> Result<sys::TestRun>>;

/// A program under test.
struct Subject {
    label: String,
    run: Runner,
}

fn frame(source: Ipv4Addr) -> Result<Vec<u8>> {
    Ok(ethernet(
        VICTIM_MAC,
        ATTACKER_MAC,
        &[],
        ETH_P_IP,
        &ipv4(source, VICTIM_V4.parse()?, UDP, 0, &udp(40000, 9, &[0; 18])),
    ))
}

/// The attacker, then `others` addresses nobody sends from.
fn banned(others: usize) -> Vec<Ipv4Addr> {
    let base = u32::from(Ipv4Addr::new(10, 0, 0, 0));
    std::iter::once(ATTACKER)
        .chain((0..others).map(|i| Ipv4Addr::from(base + u32::try_from(i).expect("< 2^32"))))
        .collect()
}

fn minimal(bans: &[Ipv4Addr]) -> Result<Subject> {
    let minimal = Minimal::load(bans.len())?;
    minimal.ban(bans)?;
    Ok(Subject {
        label: "minimal XDP (reference)".into(),
        run: Box::new(move |frame, repeat| {
            sys::test_run(minimal.prog.as_fd(), frame, IFINDEX, repeat, false, 0)
                .context("BPF_PROG_TEST_RUN of the minimal program")
        }),
    })
}

fn banxdp(object: ObjectSource, label: String, bans: &[Ipv4Addr]) -> Result<Subject> {
    let mut xdp = XdpEnforcer::load(&XdpPlan {
        object,
        interfaces: Vec::new(),
        pin_dir: None,
        ..XdpPlan::default()
    })
    .with_context(|| format!("loading {label}"))?;
    xdp.add_jail(&JailScope {
        name: "bench".into(),
        ports: PortScope::All,
        shadow: false,
    })?;
    let expiry = Expiry::At(SystemTime::now() + Duration::from_secs(3600));
    let bans: Vec<Ban> = bans
        .iter()
        .map(|a| Ban {
            jail: "bench".into(),
            target: std::net::IpAddr::V4(*a).into(),
            expiry,
        })
        .collect();
    xdp.ban_many(&bans)?;
    Ok(Subject {
        label,
        run: Box::new(move |frame, repeat| {
            xdp.test_run_repeat(frame, IFINDEX, repeat)
                .context("BPF_PROG_TEST_RUN of banxdp's program")
        }),
    })
}

fn subjects(options: &Options, bans: &[Ipv4Addr]) -> Result<Vec<Subject>> {
    let mut all = vec![
        minimal(bans)?,
        banxdp(ObjectSource::Embedded, "banxdp XDP".into(), bans)?,
    ];
    for path in &options.objects {
        let label = format!("banxdp XDP, {}", path.display());
        all.push(banxdp(ObjectSource::File(path.clone()), label, bans)?);
    }
    Ok(all)
}

/// `min/median` of the samples.
fn stat(mut samples: Vec<u32>) -> (u32, u32) {
    samples.sort_unstable();
    (samples[0], samples[samples.len() / 2])
}

pub fn run(options: &Options) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    ensure!(unsafe { libc::geteuid() } == 0, "bench-prog needs root");
    ensure!(options.rounds >= 1, "at least one round");
    let frames = [
        ("drop", frame(ATTACKER)?, XDP_DROP),
        ("pass", frame(CLIENT)?, XDP_PASS),
    ];
    let mut out = format!(
        "BPF_PROG_TEST_RUN, {} rounds of {} runs, ns per run (min / median)\n\n\
         | bans | program | drop | pass |\n| ---: | --- | ---: | ---: |\n",
        options.rounds, options.repeat
    );
    let mut sizes = vec![1];
    if options.bans > 1 {
        sizes.push(options.bans);
    }
    for size in sizes {
        let mut subjects = subjects(options, &banned(size - 1))?;
        // samples[subject][frame]
        let mut samples = vec![[Vec::new(), Vec::new()]; subjects.len()];
        for _ in 0..options.rounds {
            for (subject, taken) in subjects.iter_mut().zip(samples.iter_mut()) {
                for ((name, frame, action), taken) in frames.iter().zip(taken.iter_mut()) {
                    let run = (subject.run)(frame, options.repeat)?;
                    ensure!(
                        run.action == *action,
                        "{}: the {name} frame got action {}",
                        subject.label,
                        run.action
                    );
                    taken.push(run.duration_ns);
                }
            }
        }
        for (subject, [drop, pass]) in subjects.iter().zip(samples) {
            let (drop, pass) = (stat(drop), stat(pass));
            let _ = writeln!(
                out,
                "| {size} | {} | {} / {} ns | {} / {} ns |",
                subject.label, drop.0, drop.1, pass.0, pass.1
            );
        }
    }
    println!("{out}");
    Ok(())
}
