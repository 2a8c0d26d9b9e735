//! banxdp's own log: `tracing` events written one per line in the layout fail2ban's
//! `recidive` filter reads, `2026-12-05 09:58:12,123 banxdp[4242]: NOTICE [sshd] Ban
//! 192.0.2.7`: local time with milliseconds, the program and its pid as syslog writes them,
//! the level, the message. Bans and unbans are events of the target [`ACTIONS`] and are
//! written at fail2ban's `NOTICE` level, so that an existing `recidive` jail (fail2ban's or
//! banxdp's) pointed at this log counts them. aya's `log` records arrive through
//! tracing-subscriber's `log` bridge.

use std::{
    fmt,
    fs::{File, OpenOptions},
    io::{self, IsTerminal as _, Write},
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{
    EnvFilter,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    registry::LookupSpan,
};

/// The target of ban and unban events, written at `NOTICE`.
pub const ACTIONS: &str = "banxdp::actions";

/// The line layout (see the module's text).
struct Layout {
    pid: u32,
}

/// `2026-12-05 09:58:12,123` in local time.
fn local_time() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = libc::time_t::try_from(now.as_secs()).unwrap_or(0);
    // SAFETY: localtime_r writes into the zeroed `tm` we own; `secs` outlives the call.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&raw const secs, &raw mut tm).is_null() {
            return format!("@{secs}");
        }
        tm
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        now.subsec_millis()
    )
}

/// fail2ban's name of a level (`WARNING`, `NOTICE` for ban events).
fn level_name(level: Level, target: &str) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO if target == ACTIONS => "NOTICE",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

impl<S, N> FormatEvent<S, N> for Layout
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        write!(
            writer,
            "{} banxdp[{}]: {:<7} ",
            local_time(),
            self.pid,
            level_name(*meta.level(), meta.target())
        )?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Sends banxdp's log to standard error, or appends it to `file`; `RUST_LOG` filters it
/// (default `info`). Does nothing when a subscriber is already set (tests calling `main`
/// twice).
pub fn init(file: Option<&Path>) -> io::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let layout = Layout {
        pid: std::process::id(),
    };
    // Colours only on a terminal: a file, a pipe or the journal gets plain text.
    let ansi = file.is_none() && std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .event_format(layout);
    let result = match file {
        Some(path) => {
            let file = Arc::new(Mutex::new(LogFile::open(path)?));
            builder
                .with_writer(move || MutexWriter(Arc::clone(&file)))
                .try_init()
        }
        None => builder.with_writer(std::io::stderr).try_init(),
    };
    // An error means a subscriber is set already: keep it.
    drop(result);
    Ok(())
}

/// banxdp's log file, opened again under its name when that name no longer leads to it:
/// logrotate's default (`create`: rename, then a new file) or a `mv` needs no signal and no
/// `postrotate` command, and no line goes to the renamed file once the new one is there.
/// (`copytruncate` keeps the file; appends then start again at its new end.)
///
/// A renamed file is written on until a file appears under the name, for up to
/// [`CREATE_GRACE`]: banxdp creating it first would make logrotate's own `create` fail. A
/// removed file is replaced at once. What appears under the name is opened only if it is a
/// regular file, not through a symbolic link (a link planted in a shared log directory must
/// not lead root's lines elsewhere) and without waiting (a FIFO there must not block the
/// daemon), and a file banxdp creates is `0640` (less the umask).
struct LogFile {
    path: PathBuf,
    file: File,
    /// The (device, inode) of `file`.
    id: (u64, u64),
    /// Since when the name has led nowhere while `file` was still linked elsewhere.
    missing_since: Option<Instant>,
    grace: Duration,
}

/// How long a renamed log is written on while its name leads nowhere (see [`LogFile`]).
const CREATE_GRACE: Duration = Duration::from_secs(5);

impl LogFile {
    /// Opens (or creates) the configured log file. A link the configuration names is
    /// followed once, here: the file it leads to is the name followed from then on.
    fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)?;
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        Self::with(&real, file)
    }

    fn with(path: &Path, file: File) -> io::Result<Self> {
        let meta = file.metadata()?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            id: (meta.dev(), meta.ino()),
            missing_since: None,
            grace: CREATE_GRACE,
        })
    }

    /// Reopens the file when its name leads elsewhere or nowhere (see [`LogFile`]). A reopen
    /// that fails (a directory gone, no permission, a link) keeps the old file: the lines still
    /// go somewhere, and the next write tries again.
    fn follow_name(&mut self) {
        let create = match std::fs::metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == self.id => {
                self.missing_since = None;
                return;
            }
            Ok(_) => false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let removed = self.file.metadata().map_or(true, |m| m.nlink() == 0);
                let since = *self.missing_since.get_or_insert_with(Instant::now);
                if !removed && since.elapsed() < self.grace {
                    return;
                }
                true
            }
            Err(_) => return,
        };
        // Whatever comes of it, a later rename gets its own grace.
        self.missing_since = None;
        // Non-blocking: a FIFO put there with no reader fails at once instead of holding
        // every thread that logs.
        let reopened = OpenOptions::new()
            .create(create)
            .append(true)
            .mode(0o640)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&self.path)
            .and_then(|file| {
                if file.metadata()?.is_file() {
                    Self::with(&self.path, file)
                } else {
                    Err(io::Error::other("not a regular file"))
                }
            });
        if let Ok(reopened) = reopened {
            *self = Self {
                grace: self.grace,
                ..reopened
            };
        }
    }

    fn write_line(&mut self, buf: &[u8]) -> io::Result<()> {
        self.follow_name();
        self.file.write_all(buf)
    }
}

/// A shared log file, written a whole line at a time.
struct MutexWriter(Arc<Mutex<LogFile>>);

impl Write for MutexWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .write_line(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ban_events_are_notices_and_warnings_are_spelled_as_fail2ban_does() {
        assert_eq!(level_name(Level::INFO, ACTIONS), "NOTICE");
        assert_eq!(level_name(Level::INFO, "banxdp::daemon"), "INFO");
        assert_eq!(level_name(Level::WARN, ACTIONS), "WARNING");
    }

    /// A writer on `dir/banxdp.log`, and a reader of the files there.
    fn log_in(dir: &Path) -> (MutexWriter, impl Fn(&str) -> String + '_) {
        let shared = Arc::new(Mutex::new(LogFile::open(&dir.join("banxdp.log")).unwrap()));
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        (MutexWriter(shared), read)
    }

    #[test]
    fn a_renamed_log_is_written_until_logrotate_creates_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, read) = log_in(dir.path());
        let path = dir.path().join("banxdp.log");
        writer.write_all(b"one\n").unwrap();
        std::fs::rename(&path, dir.path().join("banxdp.log.1")).unwrap();
        // Between logrotate's rename and its create: banxdp must not create the file.
        writer.write_all(b"two\n").unwrap();
        assert!(!path.exists(), "logrotate's create would fail on it");
        std::fs::write(&path, "").unwrap();
        writer.write_all(b"three\n").unwrap();
        assert_eq!(read("banxdp.log.1"), "one\ntwo\n");
        assert_eq!(read("banxdp.log"), "three\n");
        // Truncated in place (copytruncate): the same file, written from its new end.
        std::fs::write(&path, "").unwrap();
        writer.write_all(b"four\n").unwrap();
        assert_eq!(read("banxdp.log"), "four\n");
    }

    #[test]
    fn a_removed_log_is_created_at_once_and_a_renamed_one_after_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, read) = log_in(dir.path());
        let path = dir.path().join("banxdp.log");
        std::fs::remove_file(&path).unwrap();
        writer.write_all(b"one\n").unwrap();
        assert_eq!(read("banxdp.log"), "one\n");
        let mode = std::fs::metadata(&path).unwrap().mode();
        assert_eq!(mode & 0o027, 0, "no more than 0640: {mode:o}");

        writer.0.lock().unwrap().grace = Duration::ZERO;
        std::fs::rename(&path, dir.path().join("moved")).unwrap();
        writer.write_all(b"two\n").unwrap();
        assert_eq!(
            read("banxdp.log"),
            "two\n",
            "nobody created it: banxdp does"
        );
    }

    #[test]
    fn a_link_or_a_directory_put_in_its_place_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, read) = log_in(dir.path());
        let path = dir.path().join("banxdp.log");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        writer.write_all(b"one\n").unwrap();
        assert_eq!(read("elsewhere"), "", "the link was followed");
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        writer.write_all(b"two\n").unwrap();
        assert!(path.is_dir());
        std::fs::remove_dir(&path).unwrap();
        let fifo = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        // Returns (with no reader, a blocking open would never).
        writer.write_all(b"three\n").unwrap();
    }

    #[test]
    fn a_configured_link_is_followed_once_and_its_file_rotated() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        let target = dir.path().join("real/banxdp.log");
        let link = dir.path().join("banxdp.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut writer = MutexWriter(Arc::new(Mutex::new(LogFile::open(&link).unwrap())));
        writer.write_all(b"one\n").unwrap();
        std::fs::rename(&target, dir.path().join("real/banxdp.log.1")).unwrap();
        std::fs::write(&target, "").unwrap();
        writer.write_all(b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "two\n");
    }

    #[test]
    fn a_log_file_that_cannot_be_reopened_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let path = logs.join("banxdp.log");
        let mut writer = MutexWriter(Arc::new(Mutex::new(LogFile::open(&path).unwrap())));
        let moved = dir.path().join("moved");
        std::fs::rename(&logs, &moved).unwrap();
        writer.0.lock().unwrap().grace = Duration::ZERO;
        writer.write_all(b"still written\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(moved.join("banxdp.log")).unwrap(),
            "still written\n"
        );
    }

    #[test]
    fn local_time_has_milliseconds_after_a_comma() {
        let time = local_time();
        assert_eq!(time.len(), 23, "{time}");
        assert_eq!(&time[19..20], ",");
    }
}
