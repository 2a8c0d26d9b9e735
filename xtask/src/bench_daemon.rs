//! `cargo xtask bench-daemon`: the daemon at work, against fail2ban 1.0.2 in the same run
//! (needs root and the installed fail2ban).
//!
//! - **reaction**: one address's failure lines appended at 20, 200 and 2,000 lines/s with
//!   `maxretry = 3`: how many lines were written before the ban took effect (for banxdp: the
//!   address appeared in the pinned XDP map, polled every 100 µs; for fail2ban, with the
//!   pyinotify backend: its only action recorded the ban), and the latency from the write
//!   of the third line, median and p99 over the trials.
//! - **load**: the stock sshd jail following an auth.log (stamped with the time of the run)
//!   that grows at a fixed rate, then as fast as it can be written: CPU seconds per million
//!   lines, the rate each tool kept up with (lines / time until its CPU went idle), and the
//!   bans each made.
//! - **restore**: bans in the store enforced after a start: time from the process's start to
//!   its log saying so, with empty maps (as after a reboot) and again with the maps pinned by
//!   the first run (a restart, which reconciles both sides); beside fail2ban, both tools
//!   restore the same smaller number of bans from their own databases (fail2ban: until its
//!   action recorded the last).
//! - **memory**: RSS with many active bans, and with many addresses that failed once.
//!
//! fail2ban's action is a Python one by default (in its process: what fail2ban itself
//! costs), or a command run through a shell as iptables' and nftables' are
//! (`--fail2ban-action command`); see `fail2ban.rs`, which also says why fail2ban's
//! namespace needs its name servers unreachable. Every table prints fail2ban's row under
//! banxdp's and their ratio.
//!
//! Every daemon runs in a network namespace of its own with a veth pair (banxdp attaches
//! there); the addresses in the logs are text, never a network target.

use std::{
    fmt::Write as _,
    fs::OpenOptions,
    io::Write as _,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, bail, ensure};
use banxdp_tests::{
    Topology,
    daemon::{Daemon, Pins},
    netns::IFACE,
};

mod fail2ban;
mod tables;

use tables::{LoadRow, ReactionRow};

/// What to measure.
#[derive(clap::Args)]
pub struct Options {
    /// Line rates of the reaction test, per second.
    #[arg(long, value_delimiter = ',', default_value = "20,200,2000")]
    rates: Vec<u32>,
    /// Addresses (trials) per rate.
    #[arg(long, default_value_t = 10)]
    trials: usize,
    /// Lines of the load test at the fixed rate (written at `--load-rate` lines/s).
    #[arg(long, default_value_t = 10_000)]
    load_lines: usize,
    #[arg(long, default_value_t = 1_000)]
    load_rate: usize,
    /// Lines written at once for the highest rate.
    #[arg(long, default_value_t = 1_000_000)]
    burst_lines: usize,
    /// Bans in the store for the restore test (banxdp).
    #[arg(long, default_value_t = 100_000)]
    restore: usize,
    /// Bans restored by both tools for the restore row beside fail2ban (which takes seconds
    /// per thousand).
    #[arg(long, default_value_t = 2_000)]
    fail2ban_restore: usize,
    /// Active bans, and distinct failing addresses, of the memory test.
    #[arg(long, default_value_t = 1_000_000)]
    memory: usize,
    /// fail2ban's recording action in the reaction and load tests: `python` runs inside
    /// fail2ban (what fail2ban itself costs), `command` through a shell per ban as its
    /// iptables and nftables actions do. The restore table shows both.
    #[arg(long, value_enum, default_value = "python")]
    fail2ban_action: fail2ban::Recorder,
    /// Only banxdp (no fail2ban).
    #[arg(long)]
    no_fail2ban: bool,
    /// Which parts to run.
    #[arg(long, value_delimiter = ',', default_value = "reaction,load,restore")]
    parts: Vec<String>,
}

/// The failregex both tools use in the reaction test.
const FAILREGEX: &str = r"^ login failed for \S+ from <HOST>$";

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `2026-12-05T10:00:00Z` (UTC), which both tools read.
fn iso_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    banxdp::filter::report::iso8601(i64::try_from(secs).unwrap_or(0))
}

fn append(path: &Path, text: &str) -> Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// CPU time (user + system, waited-for children included) of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(')').context("stat")?.1;
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    #[expect(clippy::cast_precision_loss, reason = "clock ticks fit a double")]
    Ok(fields.iter().sum::<u64>() as f64 / hz as f64)
}

/// Resident memory of `pid`, in MiB.
fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")?;
    Ok(kib / 1024.0)
}

/// Waits until `pid`'s CPU time has not grown for `quiet`; returns when it last grew.
fn wait_idle(pid: u32, quiet: Duration, limit: Duration) -> Result<Instant> {
    let start = Instant::now();
    let mut last = cpu_seconds(pid)?;
    let mut last_change = Instant::now();
    while start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(20));
        let now = cpu_seconds(pid)?;
        if (now - last).abs() > f64::EPSILON {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() >= quiet {
            return Ok(last_change);
        }
    }
    bail!("pid {pid} still busy after {limit:?}")
}

/// One tool under test: started in its namespace, with its log file to write to.
struct Tool {
    daemon: Daemon,
    dir: tempfile::TempDir,
    log: PathBuf,
    /// Whether `address` is banned now (banxdp: in the pinned map; fail2ban: recorded).
    banned: Box<dyn Fn(&str) -> bool + Send + Sync>,
    pins: Option<Pins>,
}

impl Tool {
    fn pid(&self) -> u32 {
        self.daemon.child.id()
    }
}

/// banxdp with one jail (`jail_conf`), attached to the victim's veth.
fn start_banxdp(
    banxdp: &Path,
    topo: &Topology,
    jail_conf: &str,
    filters: &[(&str, &str)],
    prepare: impl FnOnce(&Path) -> Result<()>,
) -> Result<Tool> {
    let dir = tempfile::tempdir()?;
    let pins = Pins::unique();
    let root = dir.path();
    std::fs::create_dir_all(root.join("filter.d"))?;
    for (name, text) in filters {
        std::fs::write(root.join(format!("filter.d/{name}.conf")), text)?;
    }
    let log = root.join("app.log");
    std::fs::write(&log, "")?;
    std::fs::write(
        root.join("jail.conf"),
        jail_conf.replace("LOGPATH", &log.display().to_string()),
    )?;
    let config = root.join("banxdp.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nconfig_dir = \"{r}\"\nsocket = \"{r}/banxdp.sock\"\ndatabase = \"{r}/banxdp.sqlite3\"\n\
             [xdp]\ninterfaces = [\"{IFACE}\"]\npin_dir = \"{p}\"\n",
            r = root.display(),
            p = pins.0.display()
        ),
    )?;
    prepare(&root.join("banxdp.sqlite3"))?;
    let args = ["run", "--config", &config.display().to_string()];
    let mut daemon = Daemon::start_program(banxdp, &topo.victim, &args, root.join("daemon.log"));
    daemon.wait_for_log("enforcing");
    let map = pins.0.join(banxdp_common::MAP_BANS_V4);
    let banned = Box::new(move |address: &str| in_map(&map, address));
    Ok(Tool {
        daemon,
        dir,
        log,
        banned,
        pins: Some(pins),
    })
}

/// Whether the pinned IPv4 ban map holds `address`.
fn in_map(map: &Path, address: &str) -> bool {
    use aya::maps::{HashMap, Map, MapData};
    let Ok(addr) = address.parse::<std::net::Ipv4Addr>() else {
        return false;
    };
    let Ok(data) = MapData::from_pin(map) else {
        return false;
    };
    let Ok(table) = HashMap::<_, [u8; 4], banxdp_common::Ban>::try_from(Map::HashMap(data)) else {
        return false;
    };
    table.get(&addr.octets(), 0).is_ok()
}

/// The reaction test's jail: both tools read it.
fn reaction_jail(backend: &str) -> String {
    format!(
        "[bench]\nenabled = true\nfilter = bench\nlogpath = LOGPATH\nbackend = {backend}\n\
         maxretry = 3\nfindtime = 600\nbantime = 3600\nport = 22\n"
    )
}

fn reaction_filter() -> String {
    format!("[Definition]\nfailregex = {FAILREGEX}\n")
}

/// One trial: lines for `address` at `rate`/s until it is banned (at most 5 s of lines).
/// Returns (lines written before the ban, seconds from the third line to the ban).
fn trial(tool: &Tool, address: &str, rate: u32) -> Result<(usize, f64)> {
    let done = Arc::new(AtomicBool::new(false));
    let banned_at = std::thread::scope(|scope| {
        let done_poll = Arc::clone(&done);
        let banned = &tool.banned;
        let poller = scope.spawn(move || {
            let limit = Instant::now() + Duration::from_secs(10);
            while Instant::now() < limit {
                if banned(address) {
                    done_poll.store(true, Ordering::SeqCst);
                    return Some(unix_now());
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            None
        });
        let start = Instant::now();
        let mut writes = Vec::new();
        let period = Duration::from_secs_f64(1.0 / f64::from(rate));
        let most = (rate * 5).max(10) as usize;
        for i in 0..most {
            if done.load(Ordering::SeqCst) {
                break;
            }
            let due = start + period * u32::try_from(i).unwrap_or(u32::MAX);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if done.load(Ordering::SeqCst) {
                break;
            }
            // The time a write starts: a ban seen before the write returns still follows it.
            let line = format!("{} login failed for user{i} from {address}\n", iso_now());
            writes.push(unix_now());
            append(&tool.log, &line)?;
        }
        let at = poller.join().expect("poller");
        Ok::<_, anyhow::Error>((writes, at))
    })?;
    let (writes, at) = banned_at;
    let at = at.context("no ban within 10 s")?;
    let before = writes.iter().filter(|w| **w <= at).count();
    let third = writes
        .get(2)
        .copied()
        .context("fewer than 3 lines written")?;
    Ok((before, at - third))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short list"
    )]
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

/// Starts one tool in a topology of its own.
type Starter<'a> = Box<dyn Fn() -> Result<(Topology, Tool)> + 'a>;

/// `rate` trials of one tool.
fn reaction_rows(
    tool: &Tool,
    name: &'static str,
    options: &Options,
    rows: &mut Vec<ReactionRow>,
) -> Result<()> {
    for (r, rate) in options.rates.iter().enumerate() {
        let mut counts = Vec::new();
        let mut latencies = Vec::new();
        for t in 0..options.trials {
            let address = format!("198.18.{}.{}", 10 + r, t + 1);
            let (before, latency) = trial(tool, &address, *rate)
                .with_context(|| format!("{name} at {rate}/s, {address}"))?;
            counts.push(before);
            latencies.push(latency);
        }
        counts.sort_unstable();
        latencies.sort_by(f64::total_cmp);
        let row = ReactionRow {
            tool: name,
            rate: *rate,
            lines: (
                counts[counts.len() / 2],
                counts.last().copied().unwrap_or(0),
            ),
            latency: (percentile(&latencies, 0.5), percentile(&latencies, 0.99)),
        };
        eprintln!(
            "reaction: {name} at {rate}/s: {} ({}) lines, {:.2} ms, p99 {:.2} ms",
            row.lines.0,
            row.lines.1,
            row.latency.0 * 1e3,
            row.latency.1 * 1e3
        );
        rows.push(row);
    }
    Ok(())
}

fn reaction(banxdp: &Path, options: &Options, out: &mut String) -> Result<()> {
    let filter = reaction_filter();
    let filters = [("bench", filter.as_str())];
    let mut tools: Vec<(&'static str, Starter<'_>)> = vec![(
        "banxdp",
        Box::new(|| {
            let topo = Topology::new(&[], &[]);
            let tool = start_banxdp(banxdp, &topo, &reaction_jail("auto"), &filters, |_| Ok(()))?;
            Ok((topo, tool))
        }),
    )];
    if !options.no_fail2ban {
        let recorder = options.fail2ban_action;
        tools.push((
            recorder.name(),
            Box::new(move || {
                let topo = Topology::new(&[], &[]);
                let jail = reaction_jail("pyinotify");
                let tool = fail2ban::start(&topo, &jail, &filters, false, recorder)?;
                Ok((topo, tool))
            }),
        ));
    }
    let mut rows = Vec::new();
    for (name, start) in &tools {
        let (_topo, tool) = start()?;
        reaction_rows(&tool, name, options, &mut rows)?;
    }
    tables::reaction_table(&rows, &options.rates, out)?;
    print!("{out}");
    out.clear();
    Ok(())
}

/// The stock sshd jail on LOGPATH, the same for both tools.
fn sshd_jail(backend: &str) -> String {
    format!(
        "[sshd]\nenabled = true\nfilter = sshd\nlogpath = LOGPATH\nbackend = {backend}\n\
         maxretry = 5\nfindtime = 600\nbantime = 600\nport = ssh\n"
    )
}

/// CPU seconds and wall time to read `lines` lines of auth.log written at `rate` lines/s
/// (`None`: all at once).
fn load_run(tool: &Tool, text: &[String], rate: Option<usize>) -> Result<(f64, f64)> {
    let pid = tool.pid();
    wait_idle(pid, Duration::from_millis(500), Duration::from_secs(60))?;
    let cpu0 = cpu_seconds(pid)?;
    let start = Instant::now();
    match rate {
        None => append(&tool.log, &text.concat())?,
        Some(rate) => {
            // Chunks every 10 ms.
            let per_chunk = (rate / 100).max(1);
            for (i, chunk) in text.chunks(per_chunk).enumerate() {
                let due = start + Duration::from_millis(10) * u32::try_from(i).unwrap_or(0);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                append(&tool.log, &chunk.concat())?;
            }
        }
    }
    let last = wait_idle(pid, Duration::from_millis(500), Duration::from_secs(600))?;
    Ok((cpu_seconds(pid)? - cpu0, (last - start).as_secs_f64()))
}

/// A syslog time stamp of the local time now: `Mmm dd hh:mm:ss`.
fn syslog_now() -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // SAFETY: time and localtime_r write only into the values we pass.
    let tm = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&raw const now, &raw mut tm);
        tm
    };
    let month = usize::try_from(tm.tm_mon).unwrap_or(0).min(11);
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[month], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec
    )
}

/// The generated auth.log's lines, stamped with the time now: a line older than
/// `findtime` is dropped by banxdp, and taken as now by fail2ban 1.0.2 in operation, so
/// the generator's October dates had the two tools doing different work.
fn auth_lines(count: usize) -> Vec<String> {
    let now = syslog_now();
    banxdp_tests::authlog::auth_log(count, 5_000, 7)
        .lines()
        .map(|l| format!("{now}{}\n", l.get(now.len()..).unwrap_or_default()))
        .collect()
}

fn load(banxdp: &Path, options: &Options, out: &mut String) -> Result<()> {
    let steady = auth_lines(options.load_lines);
    let burst = auth_lines(options.burst_lines);
    let mut tools = vec![("banxdp", true)];
    if !options.no_fail2ban {
        tools.push((options.fail2ban_action.name(), false));
    }
    let mut rows = Vec::new();
    for (name, ours) in tools {
        let topo = Topology::new(&[], &[]);
        let tool = if ours {
            let sshd = std::fs::read_to_string("/etc/fail2ban/filter.d/sshd.conf")?;
            let common = std::fs::read_to_string("/etc/fail2ban/filter.d/common.conf")?;
            start_banxdp(
                banxdp,
                &topo,
                &sshd_jail("auto"),
                &[("sshd", &sshd), ("common", &common)],
                |_| Ok(()),
            )?
        } else {
            fail2ban::start(
                &topo,
                &sshd_jail("pyinotify"),
                &[],
                true,
                options.fail2ban_action,
            )?
        };
        for (lines, rate) in [(&steady, Some(options.load_rate)), (&burst, None)] {
            let bans = bans_so_far(&tool);
            let (cpu, wall) = load_run(&tool, lines, rate)?;
            let row = LoadRow {
                tool: name,
                lines: lines.len(),
                rate,
                cpu,
                wall,
                bans: bans_so_far(&tool) - bans,
            };
            eprintln!(
                "load: {name}, {} lines at {}: {cpu:.2} CPU s in {wall:.2} s, {} bans",
                row.lines,
                row.written(),
                row.bans
            );
            rows.push(row);
        }
    }
    tables::load_table(&rows, out)?;
    print!("{out}");
    out.clear();
    Ok(())
}

/// Bans the tool made so far: banxdp's `[JAIL] Ban ADDRESS` log lines, the addresses
/// fail2ban's action recorded.
fn bans_so_far(tool: &Tool) -> usize {
    if tool.pins.is_some() {
        tool.daemon.log().matches("] Ban ").count()
    } else {
        fail2ban::recorded(&tool.dir.path().join("bans.txt")).len()
    }
}

/// Writes `count` active bans of jail `bench` into the store at `db`.
fn fill_store(db: &Path, count: usize) -> Result<()> {
    use banxdp::store::{BanRecord, Writer, WriterOptions};
    let writer = Writer::spawn(db, WriterOptions::default())?;
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )?;
    for i in 0..count {
        let n = u32::try_from(i)?;
        let addr = std::net::Ipv4Addr::from(0x0a00_0000 | n);
        writer.add_ban(BanRecord {
            jail: "bench".into(),
            target: ipnet::IpNet::from(std::net::IpAddr::V4(addr)),
            start: now,
            duration: Some(86_400),
            ban_count: 1,
            failures: 3,
            matches: Vec::new(),
        });
    }
    writer.close()?;
    Ok(())
}

fn restore_and_memory(banxdp: &Path, options: &Options, out: &mut String) -> Result<()> {
    writeln!(out, "\nrestore and memory\n")?;
    writeln!(
        out,
        "| case | tool | count | time | RSS |\n|---|---|---:|---:|---:|"
    )?;
    let filter = reaction_filter();
    let filters = [("bench", filter.as_str())];
    for count in [options.restore, options.memory] {
        let topo = Topology::new(&[], &[]);
        // The process starts right after the store is filled.
        let spawned = std::cell::Cell::new(SystemTime::now());
        let tool = start_banxdp(banxdp, &topo, &reaction_jail("auto"), &filters, |db| {
            fill_store(db, count)?;
            spawned.set(SystemTime::now());
            Ok(())
        })?;
        let mut daemon = tool.daemon;
        daemon.wait_for_log(&format!("enforcing {count} ban(s)"));
        let enforced = restore_time(&daemon.log(), spawned.get()).unwrap_or(f64::NAN);
        writeln!(
            out,
            "| restore, empty maps (a reboot) | banxdp | {count} | {enforced:.3} s | {:.1} MiB |",
            rss_mib(daemon.child.id())?
        )?;
        // A restart: the pinned maps hold every ban, and are reconciled with the store.
        ensure!(daemon.stop(), "banxdp run did not stop cleanly");
        let config = tool.dir.path().join("banxdp.toml").display().to_string();
        let started = SystemTime::now();
        let mut daemon = Daemon::start_program(
            banxdp,
            &topo.victim,
            &["run", "--config", &config],
            tool.dir.path().join("daemon2.log"),
        );
        daemon.wait_for_log(&format!("enforcing {count} ban(s)"));
        let enforced = restore_time(&daemon.log(), started).unwrap_or(f64::NAN);
        writeln!(
            out,
            "| restore, pinned maps (a restart) | banxdp | {count} | {enforced:.3} s | {:.1} MiB |",
            rss_mib(daemon.child.id())?
        )?;
        print!("{out}");
        out.clear();
        drop((daemon, tool.dir, tool.pins));
    }
    // Distinct addresses failing once each.
    let topo = Topology::new(&[], &[]);
    let tool = start_banxdp(banxdp, &topo, &reaction_jail("auto"), &filters, |_| Ok(()))?;
    let stamp = iso_now();
    let mut text = String::with_capacity(options.memory * 60);
    for i in 0..options.memory {
        let addr = std::net::Ipv4Addr::from(0x0b00_0000 | u32::try_from(i)?);
        let _ = writeln!(text, "{stamp} login failed for u from {addr}");
    }
    let rss0 = rss_mib(tool.pid())?;
    append(&tool.log, &text)?;
    wait_idle(
        tool.pid(),
        Duration::from_millis(500),
        Duration::from_secs(600),
    )?;
    writeln!(
        out,
        "| {} addresses failing once | banxdp | {} | | {:.1} MiB (from {rss0:.1}) |",
        options.memory,
        options.memory,
        rss_mib(tool.pid())?
    )?;
    print!("{out}");
    out.clear();
    Ok(())
}

/// Seconds from `spawned` (just before the process started) to the daemon's `enforcing`
/// line, whose time the log gives to the millisecond in local time.
fn restore_time(log: &str, spawned: SystemTime) -> Option<f64> {
    let line = log.lines().find(|l| l.contains("enforcing"))?;
    let clock = line.get(11..23)?;
    let (hms, ms) = clock.split_once(',')?;
    let mut parts = hms.split(':').map(|p| p.parse::<f64>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    let enforced = h * 3600.0 + m * 60.0 + s + ms.parse::<f64>().ok()? / 1000.0;
    let since = spawned.duration_since(UNIX_EPOCH).ok()?;
    let secs = libc::time_t::try_from(since.as_secs()).ok()?;
    // SAFETY: localtime_r writes into the zeroed `tm` we own; `secs` outlives the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&raw const secs, &raw mut tm) }.is_null() {
        return None;
    }
    let start = f64::from(tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec)
        + f64::from(since.subsec_micros()) / 1e6;
    // Across midnight the log's clock starts again from zero.
    Some((enforced - start).rem_euclid(86_400.0))
}

pub fn run(options: &Options) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    ensure!(unsafe { libc::geteuid() } == 0, "bench-daemon needs root");
    if !options.no_fail2ban {
        ensure!(
            Path::new("/usr/bin/fail2ban-client").exists(),
            "fail2ban is not installed (apt-get install fail2ban), or pass --no-fail2ban"
        );
    }
    let banxdp = super::bench_regex::banxdp_binary()?;
    let mut out = String::new();
    let part = |name: &str| options.parts.iter().any(|p| p == name);
    if part("reaction") {
        reaction(&banxdp, options, &mut out)?;
    }
    if part("load") {
        load(&banxdp, options, &mut out)?;
    }
    if part("restore") {
        // fail2ban's row first: it stands whatever banxdp's larger counts do.
        if !options.no_fail2ban {
            fail2ban::restore(&banxdp, options, &mut out)?;
        }
        restore_and_memory(&banxdp, options, &mut out)?;
    }
    Ok(())
}
