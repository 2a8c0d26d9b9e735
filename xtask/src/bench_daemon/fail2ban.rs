//! fail2ban 1.0.2 beside banxdp in `cargo xtask bench-daemon`: its configuration (one jail,
//! an action that only records the time of each ban: [`Recorder`]), its start inside the
//! victim's namespace, and its restore row (bans from its own sqlite database after a
//! restart).
//!
//! **Why it once counted nothing.** fail2ban's jails have `ignoreself = true`: before it
//! counts a jail's first failure it resolves its own names (`localhost`, the hostname) into
//! addresses, IPv4 and then IPv6 (`getaddrinfo` with `AF_INET6`). /etc/hosts gives them no
//! IPv6 address, so glibc asks the resolv.conf name server for `AAAA` records. The victim's
//! namespace routes everything `dev eth0`, without a gateway: the kernel looks for the name
//! server's link address on the veth, where nothing answers, and each query fails after
//! about 3 s, twice per name: the filter thread sat 12 s on the first line, longer than a
//! trial's 10 s, and the bench counted nothing. By hand, in a namespace without a default
//! route, the queries fail at once, which is why the same configuration banned. On a real
//! server the name server answers within milliseconds; to give fail2ban that, its namespace
//! gets an `unreachable` route to each name server, so the lookups fail at once (see
//! [`quiet_resolver`]). `ignoreself` stays on, as shipped and as banxdp has it.

use std::{
    fmt::Write as _,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use banxdp_tests::{Netns, Topology, daemon::Daemon};

use super::{Options, Tool, fill_store, reaction_filter, reaction_jail, restore_time, rss_mib};

/// The client (and, with `-f`, the server in the same process).
const CLIENT: &str = "/usr/bin/fail2ban-client";

/// Routes each name server of /etc/resolv.conf to `unreachable` inside `ns`, so that
/// fail2ban's own-name lookups (`ignoreself`) fail at once instead of waiting for answers
/// that never come through the veth pair.
fn quiet_resolver(ns: &Netns) {
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for server in conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
    {
        let Ok(address) = server.trim().parse::<std::net::IpAddr>() else {
            continue;
        };
        let (family, prefix) = if address.is_ipv4() {
            ("-4", 32)
        } else {
            ("-6", 128)
        };
        if !address.is_loopback() {
            ns.ip(&[
                family,
                "route",
                "replace",
                "unreachable",
                &format!("{address}/{prefix}"),
            ]);
        }
    }
}

/// How fail2ban's one action records a ban: the time and the address, appended to `bans.txt`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Recorder {
    /// A Python action (`action.d/record.py`), run inside fail2ban's process: what fail2ban
    /// itself costs, with no process per ban.
    Python,
    /// A command action (`action.d/record.conf`), run through a shell as iptables' and
    /// nftables' actions are: one shell per ban, plus one for the time.
    Command,
}

impl Recorder {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Python => "fail2ban 1.0.2",
            Self::Command => "fail2ban 1.0.2, command action",
        }
    }
}

/// The Python action: the ban's time and address, nothing else.
const RECORD_PY: &str = r#""""banxdp's benchmark: records when each ban happens, and does nothing else."""
import time

from fail2ban.server.action import ActionBase


class Record(ActionBase):
    def __init__(self, jail, name, path):
        super().__init__(jail, name)
        self.path = path

    def start(self):
        pass

    def stop(self):
        pass

    def ban(self, info):
        with open(self.path, "a") as out:
            out.write("%.6f %s\n" % (time.time(), info["ip"]))

    def reban(self, info):
        self.ban(info)

    def unban(self, info):
        pass


Action = Record
"#;

/// Writes both recording actions into `action.d` and returns the jail's `action` line for
/// `recorder`.
fn write_actions(root: &Path, recorder: Recorder) -> Result<String> {
    let bans = root.join("bans.txt");
    std::fs::write(&bans, "")?;
    std::fs::write(root.join("action.d/record.py"), RECORD_PY)?;
    // `%%` is fail2ban's escape of `%`; `<ip>` its tag.
    std::fs::write(
        root.join("action.d/record.conf"),
        format!(
            "[Definition]\nactionstart =\nactionstop =\nactioncheck =\nactionunban =\n\
             actionban = printf '%%s <ip>\\n' \"$(date +%%s.%%N)\" >> {}\n",
            bans.display()
        ),
    )?;
    Ok(match recorder {
        Recorder::Python => format!("action = record.py[path=\"{}\"]\n", bans.display()),
        Recorder::Command => "action = record\n".to_string(),
    })
}

/// Writes fail2ban's configuration into a fresh temp dir: `fail2ban.conf` (its log, socket,
/// pid file and database in the dir), `jail.conf` (`jail_conf` with LOGPATH replaced and
/// the `recorder`'s action), and the filters.
fn configure(
    jail_conf: &str,
    filters: &[(&str, &str)],
    stock_filters: bool,
    recorder: Recorder,
) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    if stock_filters {
        let status = Command::new("cp")
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
    let action = write_actions(root, recorder)?;
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
        jail_conf.replace("LOGPATH", &log.display().to_string()) + &action,
    )?;
    Ok(dir)
}

/// The bans recorded so far: (time, address) per line of `bans.txt`.
pub(super) fn recorded(bans: &Path) -> Vec<(f64, String)> {
    std::fs::read_to_string(bans)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (time, address) = l.split_once(' ')?;
            Some((time.parse().ok()?, address.to_string()))
        })
        .collect()
}

/// Starts fail2ban (`fail2ban-client -c DIR -f -x start`: the server in the foreground, in
/// the client's process) on the configuration in `dir` inside the victim's namespace, and
/// waits for its jails to start. Its previous log, if any, is removed first.
fn launch(topo: &Topology, dir: tempfile::TempDir) -> Result<Tool> {
    let root = dir.path().to_path_buf();
    quiet_resolver(&topo.victim);
    let log_file = root.join("fail2ban.log");
    let _ = std::fs::remove_file(&log_file);
    let args = ["-c", &root.display().to_string(), "-f", "-x", "start"];
    let mut daemon = Daemon::start_program(
        Path::new(CLIENT),
        &topo.victim,
        &args,
        root.join("stderr.log"),
    );
    let started = Instant::now();
    while !std::fs::read_to_string(&log_file)
        .unwrap_or_default()
        .contains("' started")
    {
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "fail2ban did not start: {}",
            daemon.log()
        );
        if let Some(status) = daemon.child.try_wait()? {
            bail!("fail2ban exited ({status}): {}", daemon.log());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let bans = root.join("bans.txt");
    let banned = Box::new(move |address: &str| recorded(&bans).iter().any(|(_, a)| a == address));
    Ok(Tool {
        daemon,
        log: root.join("app.log"),
        dir,
        banned,
        pins: None,
    })
}

/// fail2ban 1.0.2 with one jail (`jail_conf`) whose only action (`recorder`) records the
/// time of each ban; `stock_filters` copies /etc/fail2ban/filter.d first.
pub(super) fn start(
    topo: &Topology,
    jail_conf: &str,
    filters: &[(&str, &str)],
    stock_filters: bool,
    recorder: Recorder,
) -> Result<Tool> {
    launch(
        topo,
        configure(jail_conf, filters, stock_filters, recorder)?,
    )
}

/// Runs `fail2ban-client -c DIR ARGS...` against the running server (its socket is a path,
/// reachable from any namespace).
fn client(dir: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new(CLIENT)
        .arg("-c")
        .arg(dir)
        .args(args)
        .output()?;
    ensure!(
        output.status.success(),
        "fail2ban-client {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Waits until `bans` records `count` bans; returns them.
fn wait_recorded(bans: &Path, count: usize, limit: Duration) -> Result<Vec<(f64, String)>> {
    let start = Instant::now();
    loop {
        let now = recorded(bans);
        if now.len() >= count {
            return Ok(now);
        }
        ensure!(
            start.elapsed() < limit,
            "{} of {count} bans recorded after {limit:?}",
            now.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The addresses of the restore test, in 10.0.0.0/8 like banxdp's.
fn addresses(count: usize) -> Result<Vec<String>> {
    (0..count)
        .map(|i| Ok(std::net::Ipv4Addr::from(0x0a00_0000 | u32::try_from(i)?).to_string()))
        .collect()
}

/// What a restore measured: seconds from the process's start until every ban was
/// enforced, the RSS then in MiB, and (fail2ban) the seconds its client took to place them.
struct Restored {
    time: f64,
    rss: f64,
    placed: Option<f64>,
}

/// fail2ban's restore: `count` bans placed through its client (so that its own code writes
/// them to its database), a clean stop, then a start on the same database, timed from the
/// process's start to the last restored ban its action recorded.
fn fail2ban_restore(count: usize, recorder: Recorder) -> Result<Restored> {
    let topo = Topology::new(&[], &[]);
    let filter = reaction_filter();
    let jail = reaction_jail("pyinotify");
    let mut tool = start(&topo, &jail, &[("bench", &filter)], false, recorder)?;
    let root = tool.dir.path().to_path_buf();
    let bans = root.join("bans.txt");
    let mut args = vec!["set".to_string(), "bench".into(), "banip".into()];
    args.extend(addresses(count)?);
    let placing = super::unix_now();
    client(&root, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
    let placed =
        wait_recorded(&bans, count, Duration::from_secs(600)).context("placing the bans")?;
    let placed = last_time(&placed) - placing;
    client(&root, &["stop"])?;
    let status = tool.daemon.child.wait()?;
    ensure!(status.success(), "fail2ban stopped with {status}");
    let Tool { dir, .. } = tool;
    std::fs::write(&bans, "")?;
    let spawned = super::unix_now();
    let tool = launch(&topo, dir)?;
    let restored = wait_recorded(&bans, count, Duration::from_secs(600)).context("restoring")?;
    Ok(Restored {
        time: last_time(&restored) - spawned,
        rss: rss_mib(tool.pid())?,
        placed: Some(placed),
    })
}

fn last_time(recorded: &[(f64, String)]) -> f64 {
    recorded.iter().map(|(t, _)| *t).fold(f64::NAN, f64::max)
}

/// banxdp's restore of the same `count` bans, with the shared helpers of the restore part.
fn banxdp_restore(banxdp: &Path, count: usize) -> Result<Restored> {
    let topo = Topology::new(&[], &[]);
    let filter = reaction_filter();
    // The process starts right after the store is filled.
    let spawned = std::cell::Cell::new(std::time::SystemTime::now());
    let tool = super::start_banxdp(
        banxdp,
        &topo,
        &reaction_jail("auto"),
        &[("bench", &filter)],
        |db| {
            fill_store(db, count)?;
            spawned.set(std::time::SystemTime::now());
            Ok(())
        },
    )?;
    let mut daemon = tool.daemon;
    daemon.wait_for_log(&format!("enforcing {count} ban(s)"));
    let time = restore_time(&daemon.log(), spawned.get()).unwrap_or(f64::NAN);
    let rss = rss_mib(daemon.child.id())?;
    drop((daemon, tool.dir, tool.pins));
    Ok(Restored {
        time,
        rss,
        placed: None,
    })
}

/// The restore table beside fail2ban: banxdp and fail2ban (with each recording action)
/// restore `--fail2ban-restore` bans (2,000 by default: fail2ban takes seconds per
/// thousand), and the ratios.
pub(super) fn restore(banxdp: &Path, options: &Options, out: &mut String) -> Result<()> {
    let count = options.fail2ban_restore;
    let ours = banxdp_restore(banxdp, count)?;
    eprintln!("restore: banxdp, {count} bans in {:.3} s", ours.time);
    let mut rows = vec![("banxdp", ours)];
    for recorder in [Recorder::Python, Recorder::Command] {
        let theirs = fail2ban_restore(count, recorder)?;
        eprintln!(
            "restore: {}, {count} bans in {:.3} s",
            recorder.name(),
            theirs.time
        );
        rows.push((recorder.name(), theirs));
    }
    writeln!(
        out,
        "\nrestore beside fail2ban ({count} active bans in each tool's own database; time from \
         the process's start until every ban is enforced; fail2ban's placed through \
         `fail2ban-client set JAIL banip`, then a restart)\n"
    )?;
    writeln!(
        out,
        "| tool | bans | time | RSS | placing them through the client |\n|---|---:|---:|---:|---:|"
    )?;
    let ours = &rows[0].1;
    for (name, row) in &rows {
        let placed = row.placed.map_or_else(String::new, |p| format!("{p:.3} s"));
        writeln!(
            out,
            "| {name} | {count} | {:.3} s | {:.1} MiB | {placed} |",
            row.time, row.rss
        )?;
        if row.placed.is_some() {
            writeln!(
                out,
                "| ÷ banxdp | | {:.0}× | {:.1}× | |",
                row.time / ours.time,
                row.rss / ours.rss
            )?;
        }
    }
    print!("{out}");
    out.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_bans_are_time_and_address_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let bans = dir.path().join("bans.txt");
        std::fs::write(
            &bans,
            "1796475161.215151 198.18.10.1\n1796475162.5 2001:db8::7\nbad\n",
        )
        .unwrap();
        assert_eq!(
            recorded(&bans),
            [
                (1_796_475_161.215_151, "198.18.10.1".to_string()),
                (1_796_475_162.5, "2001:db8::7".to_string())
            ]
        );
        assert!(recorded(&dir.path().join("missing")).is_empty());
    }

    /// The cause of the bench's zero count, kept away: in a namespace that routes
    /// everything out of a veth where nothing answers, fail2ban (with `ignoreself`, as
    /// shipped) bans at `maxretry`, with either recording action, within seconds.
    #[test]
    fn fail2ban_bans_inside_the_victims_namespace() {
        let name = "fail2ban_bans_inside_the_victims_namespace";
        if !banxdp_tests::privileged(name) || !banxdp_tests::fail2ban_present(name, CLIENT) {
            return;
        }
        for recorder in [Recorder::Python, Recorder::Command] {
            let topo = Topology::new(&[], &[]);
            let filter = reaction_filter();
            let jail = reaction_jail("pyinotify");
            let tool = start(&topo, &jail, &[("bench", &filter)], false, recorder).unwrap();
            let started = Instant::now();
            for i in 0..3 {
                let line = format!(
                    "{} login failed for u{i} from 198.18.1.1\n",
                    super::super::iso_now()
                );
                super::super::append(&tool.log, &line).unwrap();
            }
            while !(tool.banned)("198.18.1.1") {
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "{}: no ban after 5 s:\n{}",
                    recorder.name(),
                    std::fs::read_to_string(tool.dir.path().join("fail2ban.log"))
                        .unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(!(tool.banned)("198.18.1.2"));
        }
    }
}
