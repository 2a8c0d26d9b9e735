//! Opening the ban store's file: directory and file permissions, connection settings, the
//! check that the file is ours, and the schema with its version and migrations.
//!
//! Both connections (the reader's [`super::Store`] and the [`super::Writer`]'s thread) open the
//! file through [`open`]; whichever comes first creates the schema, in one immediate
//! transaction so that two openers cannot both create it. Nothing here reads a clock.

use std::{
    fs::{DirBuilder, OpenOptions},
    io,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::Path,
    time::Duration,
};

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use super::StoreError;

/// `PRAGMA application_id` of a banxdp store: "bxdp" in ASCII. A `SQLite` file with another
/// non-zero id, or with tables but no id, belongs to another program.
pub const APPLICATION_ID: i32 = 0x6278_6470;

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i32 = 1;

const _: () = assert!(MIGRATIONS.len() == SCHEMA_VERSION as usize);

/// How long a connection waits for another one's write lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migrations: `MIGRATIONS[n]` takes a store from version `n` to `n + 1`. Version 0 is an
/// empty file.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1. One row per ban (history is kept until `dbpurgeage` so that `bantime.increment`
    // knows how often a target was banned). `until` is NULL for a permanent ban; `ended` is
    // set when the ban is lifted early (unban) or replaced by a newer ban of the same jail and
    // target. `matches` is a JSON array of the log lines that led to the ban. `bans_target`
    // answers ban counts from the index alone (a row's id is in it too).
    "CREATE TABLE bans(
        id INTEGER PRIMARY KEY,
        jail TEXT NOT NULL,
        target TEXT NOT NULL,
        start INTEGER NOT NULL,
        until INTEGER,
        ended INTEGER,
        ban_count INTEGER NOT NULL,
        failures INTEGER NOT NULL,
        matches TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX bans_target ON bans(target, jail, ban_count);
    CREATE INDEX bans_open ON bans(until) WHERE ended IS NULL;
    CREATE TABLE logs(
        jail TEXT NOT NULL,
        path BLOB NOT NULL,
        first_line_hash BLOB NOT NULL,
        offset INTEGER NOT NULL,
        PRIMARY KEY(jail, path)
    ) WITHOUT ROWID;",
];

/// Which connection is being opened: the writer's commits are made durable against power
/// loss (`synchronous=FULL`: the WAL is synced at each commit, which group commit makes rare
/// and which the ban path never waits for); the reader's settings do not matter for that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Reader,
    Writer,
}

/// Opens (creating if needed) the store at `path`: parent directory 0700 when it has to be
/// created, file 0600, WAL, busy timeout, schema at [`SCHEMA_VERSION`].
pub fn open(path: &Path, role: Role) -> Result<Connection, StoreError> {
    create_file(path)?;
    let sqlite = |what: &'static str| move |source| StoreError::from_sqlite(path, what, source);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(sqlite("cannot open"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sqlite("cannot set the busy timeout"))?;
    // The first statement that reads the file: a file that is not a database fails here.
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
        .map_err(sqlite("cannot switch to WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NoWal {
            path: path.to_path_buf(),
            mode,
        });
    }
    let synchronous = match role {
        Role::Reader => "NORMAL",
        Role::Writer => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(sqlite("cannot set `synchronous`"))?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Creates the parent directory (0700) and the file (0600) if they are missing, so that
/// `SQLite` never creates them with the process's umask. Existing ones are left as they are.
fn create_file(path: &Path) -> Result<(), StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|source| StoreError::CreateDir {
                    path: parent.to_path_buf(),
                    source,
                })?;
        }
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::CreateFile {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Checks that the file is ours and brings its schema to [`SCHEMA_VERSION`].
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let sqlite = |what: &'static str| move |source| StoreError::from_sqlite(path, what, source);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite("cannot lock the schema"))?;
    let id: i32 = tx
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .map_err(sqlite("cannot read the application id"))?;
    let version: i32 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(sqlite("cannot read the schema version"))?;
    let tables: i64 = tx
        .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
        .map_err(sqlite("cannot read the schema"))?;
    if id != APPLICATION_ID && (id != 0 || tables != 0) {
        return Err(StoreError::Foreign {
            path: path.to_path_buf(),
            application_id: id,
        });
    }
    let known = SCHEMA_VERSION;
    let Ok(from) = usize::try_from(version) else {
        return Err(StoreError::SchemaVersion {
            path: path.to_path_buf(),
            found: version,
            known,
        });
    };
    if version > known {
        return Err(StoreError::SchemaVersion {
            path: path.to_path_buf(),
            found: version,
            known,
        });
    }
    for step in &MIGRATIONS[from..] {
        tx.execute_batch(step)
            .map_err(sqlite("cannot migrate the schema"))?;
    }
    if from < MIGRATIONS.len() {
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(sqlite("cannot write the application id"))?;
        tx.pragma_update(None, "user_version", known)
            .map_err(sqlite("cannot write the schema version"))?;
    }
    tx.commit().map_err(sqlite("cannot commit the schema"))
}

/// Whether a `SQLite` error says the file is not a database (or is damaged).
pub fn is_not_a_database(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    )
}
