//! `cargo xtask bench-daemon`: the daemon at work, against fail2ban 1.0.2 in the same run
//! (needs root and the installed fail2ban).
//!
//! - **reaction**: one address's failure lines appended at 20, 200 and 2,000 lines/s with
//!   `maxretry = 3`: how many lines were written before the ban took effect (for banxdp: the
//!   address appeared in the pinned XDP map, polled every 100 µs; for fail2ban, with the
//!   pyinotify backend: an action that only records the time ran), and the latency from the
//!   write of the third line, median and p99 over the trials.
//! - **load**: the stock sshd jail following an auth.log that grows at a fixed rate, then as
//!   fast as it can be written: CPU seconds per million lines, and the rate each tool kept up
//!   with (lines / time until its CPU went idle).
//! - **restore**: bans in the store enforced after a start: time from the process's start to
//!   its log saying so, with empty maps (as after a reboot) and again with the maps pinned by
//!   the first run (a restart, which reconciles both sides).
//! - **memory**: RSS with many active bans, and with many addresses that failed once.
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
    /// Active bans, and distinct failing addresses, of the memory test.
    #[arg(long, default_value_t = 1_000_000)]
    memory: usize,
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

/// fail2ban 1.0.2 with one jail whose only action records the time of each ban.
fn start_fail2ban(
    topo: &Topology,
    jail_conf: &str,
    filters: &[(&str, &str)],
    stock_filters: bool,
) -> Result<Tool> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().to_path_buf();
    if stock_filters {
        let status = std::process::Command::new("cp")
            .args(["-r", "/etc/fail2ban/filter.d"])
            .arg(root.join("filter.d"))
            .status()?;
        ensure!(status.success(), "copying /etc/fail2ban/filter.d");
    } else {
        std::fs::create_dir_all(root.join("filter.d"))?;
    }
    std::fs::create_dir_all(root.join("action.d"))?;
    for (name, text) in filters {
        std::fs::write(root.join(format!("filter.d/{name}.conf")), text)?;
    }
    let bans = root.join("bans.txt");
    std::fs::write(&bans, "")?;
    std::fs::write(
        root.join("action.d/record.conf"),
        format!(
            "[Definition]\nactionstart =\nactionstop =\nactioncheck =\nactionunban =\n\
             actionban = printf '%%s <ip>\\n' \"$(date +%%s.%%N)\" >> {}\n",
            bans.display()
        ),
    )?;
    std::fs::write(
        root.join("fail2ban.conf"),
        format!(
            "[Definition]\nloglevel = INFO\nlogtarget = {r}/fail2ban.log\nsocket = {r}/f2b.sock\n\
             pidfile = {r}/f2b.pid\ndbfile = {r}/f2b.sqlite3\ndbpurgeage = 1d\n",
            r = root.display()
        ),
    )?;
    let log = root.join("app.log");
    std::fs::write(&log, "")?;
    std::fs::write(
        root.join("jail.conf"),
        jail_conf.replace("LOGPATH", &log.display().to_string()) + "action = record\n",
    )?;
    let args = ["-c", &root.display().to_string(), "-f", "-x", "start"];
    let mut daemon = Daemon::start_program(
        Path::new("/usr/bin/fail2ban-client"),
        &topo.victim,
        &args,
        root.join("stderr.log"),
    );
    let started = Instant::now();
    while !std::fs::read_to_string(root.join("fail2ban.log"))
        .unwrap_or_default()
        .contains("started")
    {
        ensure!(
            started.elapsed() < Duration::from_secs(30),
            "fail2ban did not start: {}",
            daemon.log()
        );
        if let Some(status) = daemon.child.try_wait()? {
            bail!("fail2ban exited ({status}): {}", daemon.log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let recorded = bans.clone();
    let banned = Box::new(move |address: &str| {
        std::fs::read_to_string(&recorded)
            .unwrap_or_default()
            .lines()
            .any(|l| l.ends_with(&format!(" {address}")))
    });
    Ok(Tool {
        daemon,
        dir,
        log,
        banned,
        pins: None,
    })
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
            append(
                &tool.log,
                &format!("{} login failed for user{i} from {address}\n", iso_now()),
            )?;
            writes.push(unix_now());
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

fn reaction(banxdp: &Path, options: &Options, out: &mut String) -> Result<()> {
    writeln!(
        out,
        "\nreaction (maxretry 3; lines written before the ban, latency from the 3rd line)\n"
    )?;
    writeln!(
        out,
        "| tool | lines/s | lines before ban: median (max) | latency median | latency p99 |\n|---|---:|---:|---:|---:|"
    )?;
    let filter = reaction_filter();
    let filters = [("bench", filter.as_str())];
    let mut tools: Vec<(&str, Starter<'_>)> = vec![(
        "banxdp",
        Box::new(|| {
            let topo = Topology::new(&[], &[]);
            let tool = start_banxdp(banxdp, &topo, &reaction_jail("auto"), &filters, |_| Ok(()))?;
            Ok((topo, tool))
        }),
    )];
    if !options.no_fail2ban {
        tools.push((
            "fail2ban 1.0.2",
            Box::new(|| {
                let topo = Topology::new(&[], &[]);
                let tool = start_fail2ban(&topo, &reaction_jail("pyinotify"), &filters, false)?;
                Ok((topo, tool))
            }),
        ));
    }
    for (name, start) in &tools {
        let (_topo, tool) = start()?;
        for (r, rate) in options.rates.iter().enumerate() {
            let mut counts = Vec::new();
            let mut latencies = Vec::new();
            for t in 0..options.trials {
                let address = format!("198.18.{}.{}", 10 + r, t + 1);
                let (before, latency) = trial(&tool, &address, *rate)
                    .with_context(|| format!("{name} at {rate}/s, {address}"))?;
                counts.push(before);
                latencies.push(latency);
            }
            counts.sort_unstable();
            latencies.sort_by(f64::total_cmp);
            writeln!(
                out,
                "| {name} | {rate} | {} ({}) | {:.2} ms | {:.2} ms |",
                counts[counts.len() / 2],
                counts.last().copied().unwrap_or(0),
                percentile(&latencies, 0.5) * 1e3,
                percentile(&latencies, 0.99) * 1e3
            )?;
            print!("{out}");
            out.clear();
        }
        drop(tool);
    }
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

fn auth_lines(count: usize) -> Vec<String> {
    banxdp_tests::authlog::auth_log(count, 5_000, 7)
        .lines()
        .map(|l| format!("{l}\n"))
        .collect()
}

#[expect(clippy::cast_precision_loss, reason = "line counts fit a double")]
fn load(banxdp: &Path, options: &Options, out: &mut String) -> Result<()> {
    writeln!(
        out,
        "\nload (stock sshd filter; the generated auth.log of bench-regex, 25% failures)\n"
    )?;
    writeln!(
        out,
        "| tool | lines | written at | CPU s | CPU s per million lines | lines/s read |\n|---|---:|---:|---:|---:|---:|"
    )?;
    let steady = auth_lines(options.load_lines);
    let burst = auth_lines(options.burst_lines);
    let mut rows = vec![("banxdp", true)];
    if !options.no_fail2ban {
        rows.push(("fail2ban 1.0.2", false));
    }
    for (name, ours) in rows {
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
            start_fail2ban(&topo, &sshd_jail("pyinotify"), &[], true)?
        };
        for (lines, rate) in [(&steady, Some(options.load_rate)), (&burst, None)] {
            let (cpu, wall) = load_run(&tool, lines, rate)?;
            let written = rate.map_or_else(|| "at once".to_string(), |r| format!("{r}/s"));
            writeln!(
                out,
                "| {name} | {} | {written} | {cpu:.2} | {:.2} | {:.0} |",
                lines.len(),
                cpu / lines.len() as f64 * 1e6,
                lines.len() as f64 / wall
            )?;
            print!("{out}");
            out.clear();
        }
    }
    Ok(())
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
        // A restart: the pinned maps hold every ban, and are reconciled with the store. (The
        // daemon takes SIGTERM from its event loop on, a moment after its `enforcing` line.)
        std::thread::sleep(Duration::from_millis(500));
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
        restore_and_memory(&banxdp, options, &mut out)?;
    }
    Ok(())
}
