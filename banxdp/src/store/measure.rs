//! The numbers the README quotes, as an ignored test that prints them:
//!
//! ```text
//! cargo test -p banxdp --release --lib store::measure -- --ignored --nocapture
//! ```
//!
//! Each figure gives wall time and the process's CPU time: on a shared machine the wall
//! time says how busy the others were, the CPU time what the work costs.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::Path,
    time::{Duration, Instant},
};

use ipnet::IpNet;

use super::{BanRecord, Reconciliation, Store, Writer, WriterOptions, reconcile};
use crate::enforce::ActiveBan;

const NOW: i64 = 1_764_900_000;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &raw mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec.unsigned_abs(), u32::try_from(ts.tv_nsec).unwrap())
}

/// Runs `f` and prints `what` with its wall and CPU time.
fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let (wall, cpu) = (Instant::now(), cpu_time());
    let out = f();
    println!(
        "{what}: {:.3} s wall, {:.3} s CPU",
        wall.elapsed().as_secs_f64(),
        cpu_time().saturating_sub(cpu).as_secs_f64()
    );
    out
}

#[expect(clippy::cast_precision_loss, reason = "sizes printed in MB")]
fn megabytes(path: &Path) -> f64 {
    let size: u64 = ["", "-wal"]
        .iter()
        .map(|suffix| {
            std::fs::metadata(format!("{}{suffix}", path.display())).map_or(0, |m| m.len())
        })
        .sum();
    size as f64 / 1e6
}

fn address(i: u32) -> IpNet {
    IpNet::from(IpAddr::from(Ipv4Addr::from(0x0a00_0000 + i)))
}

/// A ban as sshd makes one: a day, five failures, one matched line kept.
fn records(first: u32, count: u32) -> Vec<BanRecord> {
    (first..first + count)
        .map(|i| BanRecord {
            jail: "sshd".into(),
            target: address(i),
            start: NOW,
            duration: Some(86_400),
            ban_count: 1,
            failures: 5,
            matches: vec![format!(
                "2025-12-05T10:00:00.123456+00:00 host sshd[1234]: Failed password for root from {} port 52314 ssh2",
                address(i).addr()
            )],
        })
        .collect()
}

/// Adds the records through a writer: the callers' time (the ban path's share), then the
/// time until all is committed.
fn insert(path: &Path, bans: Vec<BanRecord>) {
    let count = bans.len();
    let w = Writer::spawn(path, WriterOptions::default()).unwrap();
    let wall = Instant::now();
    timed(&format!("  add_ban x {count} (callers only)"), || {
        for ban in bans {
            w.add_ban(ban);
        }
    });
    timed(
        &format!("  then sync until all {count} are committed"),
        || w.sync().unwrap(),
    );
    println!(
        "  committed {count} in {:.3} s wall; {:?}",
        wall.elapsed().as_secs_f64(),
        w.stats()
    );
    w.close().unwrap();
}

#[test]
#[ignore = "a measurement, not a test: slow, and prints numbers"]
fn measure() {
    let dir =
        tempfile::tempdir_in(std::env::var("MEASURE_DIR").unwrap_or_else(|_| "/var/tmp".into()))
            .unwrap();
    let path = dir.path().join("banxdp.sqlite3");
    println!("insert 100000 bans through the writer:");
    insert(&path, records(0, 100_000));
    let store = Store::open(&path).unwrap();
    let bans = timed("active_bans with 100000 rows", || {
        store.active_bans(NOW).unwrap()
    });
    assert_eq!(bans.len(), 100_000);
    let mapped: Vec<ActiveBan> = bans
        .iter()
        .map(|b| ActiveBan {
            target: b.target,
            jails: vec![b.jail.clone()],
            expiry: b.expiry(),
            drops: Some(0),
            shadow_hits: None,
        })
        .collect();
    let plan = timed("reconcile 100000 stored with 100000 mapped", || {
        reconcile(&bans, &mapped, NOW)
    });
    assert_eq!(plan, Reconciliation::default());
    let plan = timed(
        "reconcile 100000 stored with empty maps (after a reboot)",
        || reconcile(&bans, &[], NOW),
    );
    assert_eq!(plan.reapply.len(), 100_000);
    drop(bans);
    println!("file with 100000 bans: {:.1} MB", megabytes(&path));
    println!("insert 900000 more:");
    insert(&path, records(100_000, 900_000));
    let before = rss_kib();
    let bans = timed("active_bans with 1000000 rows", || {
        store.active_bans(NOW).unwrap()
    });
    assert_eq!(bans.len(), 1_000_000);
    #[expect(clippy::cast_precision_loss, reason = "printed in MB")]
    let grown = (rss_kib() - before) as f64 / 1024.0;
    println!("RSS grown by holding 1000000 BanRecords (one matched line each): {grown:.1} MB");
    drop(bans);
    store
        .conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    println!("file with 1000000 bans: {:.1} MB", megabytes(&path));
    timed("ban_count x 10000 (of 1000000 rows)", || {
        for i in 0..10_000u32 {
            store.ban_count(Some("sshd"), address(i * 97)).unwrap();
        }
    });
    let counts = timed("ban_counts(None) of 1000000", || {
        store.ban_counts(None).unwrap()
    });
    assert_eq!(counts.len(), 1_000_000);
    timed("totals of 1000000", || store.totals().unwrap());
    let purged = timed("purge of 1000000 ended rows", || {
        store.purge(NOW + 2 * 86_400).unwrap()
    });
    assert_eq!(purged, 1_000_000);
}
