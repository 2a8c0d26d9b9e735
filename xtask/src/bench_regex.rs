//! `cargo xtask bench-regex`: `banxdp regex --json` against `fail2ban-regex -o row`, side by
//! side in one run, on the same generated logs: an auth.log (a quarter sshd failures from
//! thousands of IPv4 and IPv6 addresses, the rest ordinary sshd, cron, sudo, systemd and
//! kernel lines) read with the installed fail2ban's stock sshd filter and with banxdp's own
//! (`config/filter.d/sshd.conf`), and an access log read with the stock apache-badbots (one
//! pattern with hundreds of alternatives).
//!
//! Both tools must report the same multiset of (time, address) failures, or the benchmark
//! fails. Every tool is run the same number of times (`--runs`), one after the other, and
//! reported by the same statistic: the median run's wall time, CPU time and peak resident
//! memory (from `wait4`), each with its output written to a file. The load average before
//! and after says how busy the machine was.

use std::{
    collections::BTreeMap,
    fs::File,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, Result, bail, ensure};
use banxdp_tests::authlog;

#[derive(clap::Args)]
pub struct Options {
    /// Lines of the auth.log read with the sshd filter.
    #[arg(long, default_value_t = 1_000_000)]
    lines: usize,
    /// Lines of the access log read with the apache-badbots filter (fail2ban reads a few
    /// hundred a second).
    #[arg(long, default_value_t = 20_000)]
    badbots_lines: usize,
    /// Distinct attacker addresses.
    #[arg(long, default_value_t = 5_000)]
    addresses: usize,
    /// Runs of every tool per case; the median run counts.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Keep the logs and outputs in this directory instead of a temporary one.
    #[arg(long)]
    keep: Option<PathBuf>,
}

/// One run of a tool: wall seconds, CPU seconds (user and system), peak resident memory in
/// KiB.
struct Run {
    seconds: f64,
    cpu: f64,
    max_rss_kib: i64,
}

/// Runs `command` with stdout to `out`, measuring wall time and the child's peak memory.
fn measure(mut command: Command, out: &Path) -> Result<Run> {
    // The output file is emptied before the clock starts: truncating the last run's output
    // (tens of MB in the page cache) takes milliseconds that are neither tool's.
    let stdout = File::create(out)?;
    let started = Instant::now();
    let child = command
        .env("TZ", "UTC")
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    let pid = libc::pid_t::try_from(child.id())?;
    let mut status = 0;
    // SAFETY: plain data, filled by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `status` and `usage` are valid for writing. The
    // `Child` is not waited on again.
    let waited = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
    ensure!(waited == pid, "wait4: {}", std::io::Error::last_os_error());
    let seconds = started.elapsed().as_secs_f64();
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{command:?} failed (status {status})"
    );
    #[expect(clippy::cast_precision_loss, reason = "CPU seconds fit a double")]
    let time = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Run {
        seconds,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss,
    })
}

type Failures = BTreeMap<(i64, String), usize>;

/// fail2ban-regex's `-o row` output.
fn fail2ban_failures(out: &Path) -> Result<Failures> {
    let mut found = Failures::new();
    for (time, host) in banxdp_tests::fail2ban_rows(&std::fs::read_to_string(out)?) {
        #[expect(clippy::cast_possible_truncation, reason = "epoch seconds fit an i64")]
        let time = time.floor() as i64;
        *found.entry((time, host)).or_insert(0) += 1;
    }
    Ok(found)
}

/// `banxdp regex --json` lines.
fn banxdp_failures(out: &Path) -> Result<Failures> {
    let text = std::fs::read_to_string(out)?;
    let mut found = Failures::new();
    for line in text.lines() {
        let failure: serde_json::Value = serde_json::from_str(line)?;
        let time = failure["time"].as_str().context("a time")?;
        let host = failure["host"].as_str().context("a host")?.to_string();
        let time = banxdp::filter::report::parse_iso8601(time)
            .with_context(|| format!("bad time `{time}`"))?;
        *found.entry((time, host)).or_insert(0) += 1;
    }
    Ok(found)
}

fn differences(ours: &Failures, theirs: &Failures) -> Vec<String> {
    let mut out = Vec::new();
    for (key, count) in ours {
        let other = theirs.get(key).copied().unwrap_or(0);
        if other != *count {
            out.push(format!("{key:?}: banxdp {count}, fail2ban {other}"));
        }
    }
    for (key, count) in theirs {
        if !ours.contains_key(key) {
            out.push(format!("{key:?}: banxdp 0, fail2ban {count}"));
        }
    }
    out
}

struct Case {
    /// What the table calls the filter.
    name: &'static str,
    /// The filter as both tools are given it: a file.
    filter: PathBuf,
    log: PathBuf,
    lines: usize,
}

/// The median of `runs` (by wall time).
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let middle = runs.len() / 2;
    runs.swap_remove(middle)
}

/// `runs` runs of `command` (made afresh each time), output to `out`; the median.
fn median_of(runs: usize, out: &Path, command: impl Fn() -> Command) -> Result<Run> {
    let runs = (0..runs.max(1))
        .map(|_| measure(command(), out))
        .collect::<Result<Vec<_>>>()?;
    Ok(median(runs))
}

/// The load average over the last minute, from /proc/loadavg.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// The release binary of banxdp, built if needed.
pub(crate) fn banxdp_binary() -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--release", "--locked", "--bin", "banxdp"])
        .status()?;
    ensure!(status.success(), "building banxdp failed");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("release/banxdp"))
}

#[expect(clippy::cast_precision_loss, reason = "KiB counts fit a double")]
fn mib(kib: i64) -> f64 {
    kib as f64 / 1024.0
}

/// Writes the two logs line by line: this process stays small, since a child started with
/// `posix_spawn` is charged the parent's peak memory in its own.
fn write_logs(options: &Options, auth: &Path, access: &Path) -> Result<()> {
    let mut file = std::io::BufWriter::new(File::create(auth)?);
    authlog::write_auth_log(&mut file, options.lines, options.addresses, 1)?;
    std::io::Write::flush(&mut file)?;
    let mut file = std::io::BufWriter::new(File::create(access)?);
    authlog::write_access_log(&mut file, options.badbots_lines, options.addresses, 2)?;
    std::io::Write::flush(&mut file)?;
    Ok(())
}

/// The three cases: the auth.log with the stock sshd filter and with banxdp's, the access
/// log with the stock apache-badbots.
fn cases(options: &Options, auth: PathBuf, access: PathBuf) -> [Case; 3] {
    let stock = Path::new("/etc/fail2ban/filter.d");
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/filter.d/sshd.conf");
    [
        Case {
            name: "sshd (stock)",
            filter: stock.join("sshd.conf"),
            log: auth.clone(),
            lines: options.lines,
        },
        Case {
            name: "sshd (banxdp's)",
            filter: ours,
            log: auth,
            lines: options.lines,
        },
        Case {
            name: "apache-badbots (stock)",
            filter: stock.join("apache-badbots.conf"),
            log: access,
            lines: options.badbots_lines,
        },
    ]
}

pub fn run(options: &Options) -> Result<()> {
    ensure!(
        Command::new("fail2ban-regex")
            .arg("--help")
            .output()
            .is_ok(),
        "fail2ban-regex is missing (apt-get install fail2ban)"
    );
    let banxdp = banxdp_binary()?;
    let temp = tempfile::tempdir()?;
    let dir = options
        .keep
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let (auth, access) = (dir.join("auth.log"), dir.join("access.log"));
    write_logs(options, &auth, &access)?;
    let cases = cases(options, auth, access);
    let load_before = load();
    let mut measured = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let runs = options.runs;
        eprintln!(
            "{}: fail2ban-regex on {} lines, {runs} runs...",
            case.name, case.lines
        );
        let theirs_out = dir.join(format!("{n}.fail2ban"));
        let theirs = median_of(runs, &theirs_out, || {
            let mut command = Command::new("fail2ban-regex");
            command.args(["-o", "row"]).arg(&case.log).arg(&case.filter);
            command
        })?;
        let mut rows = vec![("fail2ban-regex".to_string(), theirs, theirs_out)];
        // banxdp on every core (its default), and on one.
        for (label, threads) in [
            ("banxdp regex", None),
            ("banxdp regex --threads 1", Some(1)),
        ] {
            eprintln!("{}: {label}, {runs} runs...", case.name);
            let out = dir.join(format!("{n}.banxdp{}", threads.map_or("", |_| "1")));
            let run = median_of(runs, &out, || {
                let mut command = Command::new(&banxdp);
                command.args(["regex", "--json"]);
                if let Some(threads) = threads {
                    command.arg(format!("--threads={threads}"));
                }
                command.arg(&case.log).arg(&case.filter);
                command
            })?;
            rows.push((label.to_string(), run, out));
        }
        measured.push((case, rows));
    }
    let load_after = load();
    // Outputs are read only now, after every run, for the same reason.
    println!(
        "| filter | lines | failures | tool | seconds | CPU seconds | lines/s | peak RSS | speed-up |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|");
    for (case, rows) in &measured {
        let theirs_found = fail2ban_failures(&rows[0].2)?;
        for (label, _, out) in &rows[1..] {
            let diff = differences(&banxdp_failures(out)?, &theirs_found);
            if !diff.is_empty() {
                bail!(
                    "{} ({label}): the failures differ in {} places, first:\n{}",
                    case.name,
                    diff.len(),
                    diff[..diff.len().min(20)].join("\n")
                );
            }
        }
        let failures: usize = theirs_found.values().sum();
        print_rows(case, rows, failures);
    }
    println!(
        "\nAll tools reported the same (time, address) failures in every case. Each row is the \
         median of {} runs. Cores: {}. Load average (1 min): {load_before} before, \
         {load_after} after.",
        options.runs.max(1),
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    Ok(())
}

/// One case's rows of the results table.
fn print_rows(case: &Case, rows: &[(String, Run, PathBuf)], failures: usize) {
    #[expect(clippy::cast_precision_loss, reason = "line counts fit a double")]
    let rate = |run: &Run| case.lines as f64 / run.seconds;
    let theirs = &rows[0].1;
    for (n, (tool, run, _)) in rows.iter().enumerate() {
        println!(
            "| {} | {} | {failures} | {tool} | {:.3} | {:.3} | {:.0} | {:.1} MiB | {} |",
            case.name,
            case.lines,
            run.seconds,
            run.cpu,
            rate(run),
            mib(run.max_rss_kib),
            if n == 0 {
                String::new()
            } else {
                format!("{:.1}×", theirs.seconds / run.seconds)
            }
        );
    }
}
