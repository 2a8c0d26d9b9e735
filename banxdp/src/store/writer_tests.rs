//! The writer's behaviour on real files: group commit under load, failed writes, a lock
//! held by a purge, a process that dies without closing, and `kill -9` at any moment.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::{
    tests::{NOW, record, temp, writer},
    *,
};

#[test]
fn a_failed_write_is_reported_by_the_next_sync_only() {
    let (_dir, path) = temp();
    let w = writer(&path);
    let store = Store::open(&path).unwrap();
    store.conn.execute_batch("DROP TABLE logs").unwrap();
    w.set_log_position(
        "sshd",
        Path::new("/var/log/auth.log"),
        LogPosition {
            first_line_hash: vec![1],
            offset: 1,
        },
    );
    w.add_ban(record("sshd", "192.0.2.7", NOW, Some(600), 1));
    let error = w.sync().unwrap_err();
    assert!(
        matches!(error, StoreError::WriteFailed { failed: 1, .. }),
        "{error}"
    );
    // The ban in the same group went in; the next sync has nothing to report.
    assert_eq!(store.active_bans(NOW).unwrap().len(), 1);
    w.sync().unwrap();
    w.close().unwrap();
}

#[tokio::test]
async fn async_callers_wait_for_the_commit_and_hear_of_a_failure() {
    let (_dir, path) = temp();
    let w = writer(&path);
    let store = Store::open(&path).unwrap();
    w.add_ban(record("sshd", "192.0.2.7", NOW, Some(600), 1));
    w.synced().await.unwrap();
    assert_eq!(store.active_bans(NOW).unwrap().len(), 1);
    store.conn.execute_batch("DROP TABLE logs").unwrap();
    let position = LogPosition {
        first_line_hash: vec![1],
        offset: 1,
    };
    w.set_log_position("sshd", Path::new("/var/log/auth.log"), position);
    // A failure is told once, to the first sync after it.
    let (first, second) = tokio::join!(w.synced(), w.synced());
    assert!(first.is_err() && second.is_ok(), "{first:?} {second:?}");
    w.close().unwrap();
}

#[test]
fn a_purge_holding_the_lock_delays_the_writer_without_losing_anything() {
    let (_dir, path) = temp();
    let options = WriterOptions {
        busy_timeout: Duration::from_millis(100),
        ..WriterOptions::default()
    };
    let w = Writer::spawn(&path, options).unwrap();
    let store = Store::open(&path).unwrap();
    store.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    w.add_ban(record("sshd", "192.0.2.7", NOW, Some(600), 1));
    // Longer than the writer's busy timeout: it must try again, not give up.
    std::thread::sleep(Duration::from_millis(600));
    store.conn.execute_batch("COMMIT").unwrap();
    w.sync().unwrap();
    assert_eq!(store.active_bans(NOW).unwrap().len(), 1);
    assert_eq!(w.stats().failed, 0);
    w.close().unwrap();
}

#[test]
fn a_writer_never_closed_left_everything_it_synced() {
    let (_dir, path) = temp();
    let w = writer(&path);
    w.add_ban(record("sshd", "192.0.2.7", NOW, Some(600), 1));
    w.sync().unwrap();
    // As if the process died: no close, no drop, the connection never shut.
    std::mem::forget(w);
    let again = writer(&path);
    again.add_ban(record("sshd", "192.0.2.8", NOW, Some(600), 1));
    again.close().unwrap();
    assert_eq!(
        Store::open(&path).unwrap().active_bans(NOW).unwrap().len(),
        2
    );
}

#[test]
fn a_lone_ban_is_committed_without_a_sync_and_a_drop_commits_the_rest() {
    let (_dir, path) = temp();
    let store = Store::open(&path).unwrap();
    let w = writer(&path);
    w.add_ban(record("sshd", "192.0.2.7", NOW, Some(600), 1));
    let started = Instant::now();
    while store.active_bans(NOW).unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a lone ban waited too long"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let slow = WriterOptions {
        interval: Duration::from_secs(3600),
        ..WriterOptions::default()
    };
    let w = Writer::spawn(&path, slow).unwrap();
    w.add_ban(record("sshd", "192.0.2.8", NOW, Some(600), 1));
    w.add_ban(record("sshd", "192.0.2.9", NOW, Some(600), 1));
    drop(w);
    assert_eq!(store.active_bans(NOW).unwrap().len(), 3);
}

/// The child half of [`synced_bans_survive_kill_9`]: bans without end, a sync every 200
/// bans, announced on stdout, until it is killed.
const KILL_CHILD: &str = "BANXDP_STORE_KILL_CHILD";

fn kill_child(path: &Path, jail: &str) -> ! {
    let options = WriterOptions {
        interval: Duration::from_millis(5),
        ..WriterOptions::default()
    };
    let w = Writer::spawn(path, options).unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0u32.. {
        let target = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        w.add_ban(record(jail, &target, NOW, None, 1));
        if i % 200 == 199 {
            w.sync().unwrap();
            writeln!(out, "synced {}", i + 1).unwrap();
            out.flush().unwrap();
        }
    }
    unreachable!("killed long before")
}

/// A process that syncs and goes on writing is killed with SIGKILL at various moments;
/// every ban synced before the kill is in the file, and the file is sound.
#[test]
fn synced_bans_survive_kill_9() {
    if let Ok(spec) = std::env::var(KILL_CHILD) {
        let (path, jail) = spec.split_once('|').unwrap();
        kill_child(Path::new(path), jail);
    }
    let (_dir, path) = temp();
    for (round, syncs) in [1, 3, 7, 20, 50].into_iter().enumerate() {
        let jail = format!("round{round}");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "store::writer_tests::synced_bans_survive_kill_9",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(KILL_CHILD, format!("{}|{jail}", path.display()))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut synced: usize = 0;
        let started = Instant::now();
        while synced < syncs * 200 {
            let line = lines.next().expect("the child stopped early").unwrap();
            if let Some(n) = line.strip_prefix("synced ") {
                synced = n.parse().unwrap();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the child is too slow"
            );
        }
        // Kill at once, or a little later while the child is mid-batch or mid-commit.
        std::thread::sleep(Duration::from_millis(3 * round as u64));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let store = Store::open(&path).unwrap();
        let ok: String = store
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let kept = store
            .active_bans(NOW)
            .unwrap()
            .iter()
            .filter(|b| b.jail == jail)
            .count();
        assert!(
            kept >= synced,
            "round {round}: {kept} bans kept, {synced} synced"
        );
    }
}
