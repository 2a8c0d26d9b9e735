//! Project chores that need more than `cargo build`: installing the eBPF toolchain, building
//! the XDP object that `banxdp` embeds, checking that the committed object matches its
//! sources, and the benchmarks (packet drops; filters against fail2ban-regex).
//!
//! It shells out to rustup, cargo and (for the benchmark) ip/nft/iptables/ipset; it never
//! touches the project's sources except to write the object and its record.

mod bench;
mod bench_daemon;
mod bench_prog;
mod bench_regex;
mod ebpf;
mod setup;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "banxdp project chores")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what the eBPF build needs: nightly with rust-src, and bpf-linker built against
    /// the nightly toolchain's own LLVM (idempotent).
    Setup,
    /// Build banxdp-ebpf and write the object and its record into banxdp/bpf/.
    BuildEbpf,
    /// Packets per second dropped on a veth pair: banxdp's XDP program against nftables,
    /// ipset and iptables, with 10, 10,000 and 1,000,000 banned addresses (needs root).
    BenchDrop(bench::Options),
    /// `banxdp run` against fail2ban 1.0.2 in the same run: reaction time to failures, CPU
    /// per million lines and the highest rate kept up with, restore time, memory (needs root).
    BenchDaemon(bench_daemon::Options),
    /// banxdp's XDP program alone against the minimal one, through `BPF_PROG_TEST_RUN`: ns
    /// per run on a dropped and a passed frame, steadier than `bench-drop` (needs root).
    BenchProg(bench_prog::Options),
    /// `banxdp regex` against `fail2ban-regex` on generated logs (sshd on an auth.log of
    /// 1,000,000 lines, apache-badbots on an access log): same failures, lines/s, memory.
    BenchRegex(bench_regex::Options),
    /// Fail when the committed object does not match its sources (and, where the recorded
    /// toolchain is present, when a rebuild is not byte-for-byte identical).
    CheckEbpf,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::run(),
        Command::BuildEbpf => ebpf::build(),
        Command::CheckEbpf => ebpf::check(),
        Command::BenchDrop(options) => bench::run(&options),
        Command::BenchRegex(options) => bench_regex::run(&options),
        Command::BenchDaemon(options) => bench_daemon::run(&options),
        Command::BenchProg(options) => bench_prog::run(&options),
    }
}
