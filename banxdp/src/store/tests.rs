//! The store on real `SQLite` files in temporary directories: round trips, group commit,
//! unbans, purge, positions, the schema's guards, permissions, and `kill -9`.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use super::*;

pub(super) const NOW: i64 = 1_764_900_000;

pub(super) fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("banxdp.sqlite3");
    (dir, path)
}

pub(super) fn net(text: &str) -> IpNet {
    parse_target(text).unwrap()
}

pub(super) fn record(
    jail: &str,
    target: &str,
    start: i64,
    duration: Option<i64>,
    ban_count: u32,
) -> BanRecord {
    BanRecord {
        jail: jail.into(),
        target: net(target),
        start,
        duration,
        ban_count,
        failures: 3,
        matches: vec![format!("Failed password for root from {target}")],
    }
}

pub(super) fn writer(path: &Path) -> Writer {
    Writer::spawn(path, WriterOptions::default()).unwrap()
}

fn sorted(mut bans: Vec<BanRecord>) -> Vec<BanRecord> {
    bans.sort_by(|a, b| (&a.jail, a.target).cmp(&(&b.jail, b.target)));
    bans
}

#[test]
fn bans_round_trip() {
    let (_dir, path) = temp();
    let w = writer(&path);
    let mut multi = record("web", "2001:db8::/32", NOW, None, 2);
    multi.matches = vec!["line one\nline two".into(), "é \"quoted\" \\".into()];
    let bans = vec![
        record("sshd", "192.0.2.7", NOW - 10, Some(600), 1),
        multi,
        record("sshd", "198.51.100.0/24", NOW, Some(3600), 4),
    ];
    for ban in &bans {
        w.add_ban(ban.clone());
    }
    w.sync().unwrap();
    let store = Store::open(&path).unwrap();
    assert_eq!(
        sorted(store.active_bans(NOW).unwrap()),
        sorted(bans.clone())
    );
    // Past the first ban's end only the other two hold; a permanent ban holds forever.
    assert_eq!(store.active_bans(NOW + 590).unwrap().len(), 2);
    assert_eq!(
        store.active_bans(i64::MAX - 1).unwrap(),
        vec![bans[1].clone()]
    );
    w.close().unwrap();
}

#[test]
fn many_bans_then_one_sync_are_all_there() {
    let (_dir, path) = temp();
    let w = writer(&path);
    for i in 0..5000u32 {
        let target = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        w.add_ban(record("sshd", &target, NOW, Some(600), 1));
    }
    w.sync().unwrap();
    let stats = w.stats();
    assert_eq!((stats.sent, stats.written, stats.failed), (5000, 5000, 0));
    // Grouped: one commit at once for the first ban, then one per interval (200 ms).
    assert!(stats.commits <= 5, "{stats:?}");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.active_bans(NOW).unwrap().len(), 5000);
    assert_eq!(store.totals().unwrap(), vec![("sshd".to_string(), 5000)]);
    w.close().unwrap();
}

#[test]
fn an_unban_ends_the_row_and_keeps_the_count() {
    let (_dir, path) = temp();
    let w = writer(&path);
    let store = Store::open(&path).unwrap();
    w.add_ban(record("sshd", "192.0.2.7", NOW, Some(600), 1));
    w.add_ban(record("web", "192.0.2.7", NOW, Some(600), 1));
    w.remove_ban("sshd", net("192.0.2.7/32"), NOW + 5);
    w.sync().unwrap();
    let active = store.active_bans(NOW + 6).unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].jail, "web");
    assert_eq!(store.ban_count(Some("sshd"), net("192.0.2.7")).unwrap(), 1);
    // The next ban counts on from the history, and ends the previous one of its jail.
    w.add_ban(record("web", "192.0.2.7", NOW + 10, Some(6000), 2));
    w.sync().unwrap();
    let active = store.active_bans(NOW + 11).unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(
        (active[0].ban_count, active[0].until()),
        (2, Some(NOW + 6010))
    );
    let last = store
        .last_ban(Some("web"), net("192.0.2.7"))
        .unwrap()
        .unwrap();
    assert_eq!(
        last,
        LastBan {
            ban_count: 2,
            start: NOW + 10,
            until: Some(NOW + 6010)
        }
    );
    // With every jail: the sum of each jail's latest count (fail2ban's `overalljails`).
    assert_eq!(store.ban_count(None, net("192.0.2.7")).unwrap(), 3);
    assert_eq!(store.ban_count(None, net("192.0.2.8")).unwrap(), 0);
    assert_eq!(store.last_ban(None, net("192.0.2.8")).unwrap(), None);
    let counts = store.ban_counts(None).unwrap();
    assert_eq!(counts.get(&net("192.0.2.7")), Some(&3));
    assert_eq!(
        store
            .ban_counts(Some("sshd"))
            .unwrap()
            .get(&net("192.0.2.7")),
        Some(&1)
    );
    w.close().unwrap();
}

#[test]
fn remove_all_ends_one_jail_or_every_jail() {
    let (_dir, path) = temp();
    let w = writer(&path);
    let store = Store::open(&path).unwrap();
    for (jail, target) in [
        ("sshd", "192.0.2.1"),
        ("sshd", "192.0.2.2"),
        ("web", "192.0.2.3"),
    ] {
        w.add_ban(record(jail, target, NOW, None, 1));
    }
    w.remove_all(Some("sshd"), NOW + 1);
    w.sync().unwrap();
    let active = store.active_bans(NOW + 2).unwrap();
    assert_eq!(
        active.iter().map(|b| b.jail.as_str()).collect::<Vec<_>>(),
        ["web"]
    );
    w.remove_all(None, NOW + 3);
    w.sync().unwrap();
    assert!(store.active_bans(NOW + 4).unwrap().is_empty());
    assert_eq!(
        store.totals().unwrap(),
        vec![("sshd".into(), 2), ("web".into(), 1)]
    );
    w.close().unwrap();
}

#[test]
fn targets_are_stored_in_canonical_form() {
    let (_dir, path) = temp();
    let w = writer(&path);
    w.add_ban(record("sshd", "::ffff:192.0.2.9", NOW, Some(60), 1));
    w.add_ban(record("sshd", "192.0.2.77/24", NOW, Some(60), 1));
    w.sync().unwrap();
    let store = Store::open(&path).unwrap();
    let targets: Vec<IpNet> = sorted(store.active_bans(NOW).unwrap())
        .iter()
        .map(|b| b.target)
        .collect();
    assert_eq!(targets, [net("192.0.2.0/24"), net("192.0.2.9")]);
    let texts: Vec<String> = store
        .conn
        .prepare("SELECT target FROM bans ORDER BY target")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(texts, ["192.0.2.0/24", "192.0.2.9"]);
    assert_eq!(
        store
            .ban_count(Some("sshd"), net("::ffff:192.0.2.9"))
            .unwrap(),
        1
    );
    w.close().unwrap();
}

#[test]
fn matches_keep_the_latest_few() {
    let (_dir, path) = temp();
    let options = WriterOptions {
        max_matches: 3,
        ..WriterOptions::default()
    };
    let w = Writer::spawn(&path, options).unwrap();
    let mut ban = record("sshd", "192.0.2.7", NOW, Some(600), 1);
    ban.matches = (1..=5).map(|i| format!("line {i}")).collect();
    w.add_ban(ban);
    w.close().unwrap();
    let got = Store::open(&path).unwrap().active_bans(NOW).unwrap();
    assert_eq!(got[0].matches, ["line 3", "line 4", "line 5"]);
}

#[test]
fn purge_forgets_what_ended_before_the_age() {
    let (_dir, path) = temp();
    let w = writer(&path);
    let day = 86_400;
    w.add_ban(record("sshd", "192.0.2.1", NOW - 3 * day, Some(600), 1)); // expired long ago
    w.add_ban(record("sshd", "192.0.2.2", NOW - 3 * day, Some(600), 1)); // lifted long ago
    w.remove_ban("sshd", net("192.0.2.2"), NOW - 3 * day + 1);
    w.add_ban(record("sshd", "192.0.2.3", NOW - 3 * day, None, 1)); // permanent
    w.add_ban(record("sshd", "192.0.2.4", NOW - 3 * day, Some(3 * day), 1)); // ended 10 s ago
    w.remove_ban("sshd", net("192.0.2.4"), NOW - 10);
    w.add_ban(record("sshd", "192.0.2.5", NOW - 3 * day, Some(4 * day), 1)); // still active
    w.add_ban(record("sshd", "192.0.2.6", NOW - 3 * day, None, 1)); // permanent, lifted
    w.remove_ban("sshd", net("192.0.2.6"), NOW - 2 * day);
    w.sync().unwrap();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.purge(NOW - day).unwrap(), 3);
    assert_eq!(store.ban_count(Some("sshd"), net("192.0.2.1")).unwrap(), 0);
    assert_eq!(store.ban_count(Some("sshd"), net("192.0.2.4")).unwrap(), 1);
    let left: Vec<IpNet> = sorted(store.active_bans(NOW).unwrap())
        .iter()
        .map(|b| b.target)
        .collect();
    assert_eq!(left, [net("192.0.2.3"), net("192.0.2.5")]);
    assert_eq!(store.purge(NOW - day).unwrap(), 0);
    w.close().unwrap();
}

#[test]
fn purge_goes_in_chunks_to_the_end() {
    let (_dir, path) = temp();
    let w = writer(&path);
    let count = u32::try_from(PURGE_CHUNK * 2 + 7).unwrap();
    for i in 0..count {
        let target = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
        w.add_ban(record("sshd", &target, NOW - 100, Some(10), 1));
    }
    w.add_ban(record("sshd", "192.0.2.1", NOW - 100, None, 1));
    w.sync().unwrap();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.purge(NOW).unwrap(), PURGE_CHUNK * 2 + 7);
    assert_eq!(store.totals().unwrap(), vec![("sshd".into(), 1)]);
    w.close().unwrap();
}

#[test]
fn log_positions_are_kept_per_jail_and_file() {
    use std::{ffi::OsStr, os::unix::ffi::OsStrExt};
    let (_dir, path) = temp();
    let w = writer(&path);
    let store = Store::open(&path).unwrap();
    let auth = Path::new("/var/log/auth.log");
    let odd = Path::new(OsStr::from_bytes(b"/var/log/\xff.log"));
    assert_eq!(store.log_position("sshd", auth).unwrap(), None);
    let at = |hash: &[u8], offset| LogPosition {
        first_line_hash: hash.to_vec(),
        offset,
    };
    w.set_log_position("sshd", auth, at(b"one", 100));
    w.set_log_position("sshd", auth, at(b"one", 250));
    w.set_log_position("sshd", odd, at(b"two", 7));
    w.set_log_position("recidive", auth, at(b"one", 1));
    w.sync().unwrap();
    let position = store.log_position("sshd", auth).unwrap().unwrap();
    assert_eq!(position, at(b"one", 250));
    assert_eq!(position.resume_offset(b"one"), Some(250));
    assert_eq!(position.resume_offset(b"other"), None);
    assert_eq!(
        store.log_position("sshd", odd).unwrap(),
        Some(at(b"two", 7))
    );
    assert_eq!(
        store.log_position("recidive", auth).unwrap(),
        Some(at(b"one", 1))
    );
    assert_eq!(store.log_position("web", auth).unwrap(), None);
    w.close().unwrap();
}

#[test]
fn the_file_carries_its_schema_version_and_owner() {
    let (_dir, path) = temp();
    let store = Store::open(&path).unwrap();
    let pragma = |name: &str| -> i32 {
        store
            .conn
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(pragma("user_version"), SCHEMA_VERSION);
    assert_eq!(pragma("application_id"), APPLICATION_ID);
    store
        .conn
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(store);
    let error = Store::open(&path).err().unwrap();
    assert!(
        matches!(
            error,
            StoreError::SchemaVersion {
                found: 2,
                known: 1,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("schema version 2"), "{error}");
}

#[test]
fn the_writer_syncs_each_commit_and_the_reader_need_not() {
    let (_dir, path) = temp();
    let level = |role| -> i64 {
        let conn = schema::open(&path, role).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap()
    };
    // FULL (2): a commit is on disk when it returns; NORMAL (1) for the reader.
    assert_eq!(level(schema::Role::Writer), 2);
    assert_eq!(level(schema::Role::Reader), 1);
}

#[test]
fn another_programs_database_is_refused() {
    let (dir, _) = temp();
    let path = dir.path().join("fail2ban.sqlite3");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE bips(ip TEXT, jail TEXT); INSERT INTO bips VALUES ('192.0.2.1', 'sshd');",
    )
    .unwrap();
    drop(conn);
    let error = Writer::spawn(&path, WriterOptions::default())
        .err()
        .unwrap();
    assert!(
        matches!(
            error,
            StoreError::Foreign {
                application_id: 0,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("another program"), "{error}");
    // Left as it was.
    let conn = Connection::open(&path).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM bips", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1);
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let (dir, _) = temp();
    let path = dir.path().join("banxdp.sqlite3");
    let text = "this is a log file, not a database\n".repeat(200);
    std::fs::write(&path, &text).unwrap();
    let error = Store::open(&path).err().unwrap();
    assert!(
        matches!(error, StoreError::NotADatabase { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("is not a SQLite database") && message.contains("banxdp.sqlite3"),
        "{message}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "the file must be left alone"
    );
}

#[test]
fn the_directory_and_files_are_private() {
    let (dir, path) = temp();
    let w = writer(&path);
    w.add_ban(record("sshd", "192.0.2.7", NOW, Some(600), 1));
    w.sync().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("state")), 0o700);
    assert_eq!(mode(&path), 0o600);
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    assert_eq!(mode(&wal), 0o600);
    w.close().unwrap();
}

#[test]
fn adopted_bans_count_on_from_the_history() {
    let (_dir, path) = temp();
    let w = writer(&path);
    w.add_ban(record("sshd", "192.0.2.7", NOW - 9000, Some(600), 3));
    w.close().unwrap();
    let store = Store::open(&path).unwrap();
    let ban = Ban {
        jail: "sshd".into(),
        target: net("192.0.2.7"),
        expiry: Expiry::At(from_unix(NOW + 600)),
    };
    let adopted = store.adopted(&ban, NOW).unwrap();
    assert_eq!(
        (adopted.start, adopted.duration, adopted.ban_count),
        (NOW, Some(600), 4)
    );
    let forever = Ban {
        expiry: Expiry::Never,
        ..ban
    };
    assert_eq!(store.adopted(&forever, NOW).unwrap().duration, None);
}

#[test]
fn a_ban_found_only_in_the_maps_is_adopted_through_the_writer() {
    let (_dir, path) = temp();
    let w = writer(&path);
    let store = Store::open(&path).unwrap();
    w.add_ban(record("sshd", "192.0.2.1", NOW - 5000, Some(600), 1)); // ended long ago
    w.add_ban(record("sshd", "192.0.2.2", NOW - 10, Some(600), 1)); // the maps lost it
    w.sync().unwrap();
    let mapped = vec![crate::enforce::ActiveBan {
        target: net("192.0.2.1/32"),
        jails: vec!["sshd".into()],
        expiry: Expiry::At(from_unix(NOW + 1200)),
        drops: Some(3),
        shadow_hits: None,
    }];
    let plan = reconcile(&store.active_bans(NOW).unwrap(), &mapped, NOW);
    assert_eq!(
        plan.reapply,
        vec![record("sshd", "192.0.2.2", NOW - 10, Some(600), 1).to_ban()]
    );
    for ban in &plan.adopt {
        w.add_ban(store.adopted(ban, NOW).unwrap());
    }
    w.sync().unwrap();
    let adopted = store
        .active_bans(NOW)
        .unwrap()
        .into_iter()
        .find(|b| b.target == net("192.0.2.1"))
        .unwrap();
    assert_eq!((adopted.ban_count, adopted.until()), (2, Some(NOW + 1200)));
    // Both sides now agree.
    let mut mapped = mapped;
    mapped.push(crate::enforce::ActiveBan {
        target: net("192.0.2.2/32"),
        expiry: Expiry::At(from_unix(NOW + 590)),
        ..mapped[0].clone()
    });
    assert_eq!(
        reconcile(&store.active_bans(NOW).unwrap(), &mapped, NOW),
        Reconciliation::default()
    );
    w.close().unwrap();
}

/// The daemon shares the writer between tasks and moves the store into one.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    fn moved<T: Send>() {}
    shared::<Writer>();
    moved::<Store>();
};
