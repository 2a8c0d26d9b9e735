//! Log sources: where lines come from before a filter reads them. Sources do I/O and read
//! the filesystem, the journal and tokio's clock; they know nothing of filters, jails or the
//! store: they take starting positions in and hand lines and positions out, and the daemon
//! (the one place that spawns tasks) drives them and stores the positions.
//!
//! - `bulk` reads a whole log file on several cores (`banxdp regex`).
//! - [`follow`] follows the files of every jail's `logpath` (globs, files that appear later,
//!   rotation, positions that survive restarts), one reader per file whatever the number of
//!   jails: `backend = auto | pyinotify | inotify | polling`. Built on [`mod@file`] (one file and
//!   its rotation), [`lines`] (bytes to bounded lines, pure) and [`encoding`]
//!   (`logencoding`, pure).
//! - [`journal`] reads the systemd journal through `journalctl` (`backend = systemd`,
//!   `journalmatch`).
//! - [`plan`] turns a jail's configuration into what it reads (files or journal).

pub mod bulk;
pub mod encoding;
pub mod file;
pub mod follow;
pub mod journal;
pub mod lines;
pub mod plan;

#[cfg(test)]
mod follow_tests;

pub use encoding::Encoding;
pub use file::{Position, Start};
pub use follow::{Batch, Follower, Intervals};
pub use journal::{JournalEntry, JournalSource, JournalSpec};
pub use plan::{Backend, FollowSpec, JailSource, for_jail};

/// Why a log source cannot be set up or read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("jail `{jail}`: unsupported logencoding `{value}`")]
    Encoding { jail: String, value: String },
    #[error(
        "jail `{jail}`: unknown backend `{value}` (expected auto, pyinotify, inotify, polling or systemd)"
    )]
    Backend { jail: String, value: String },
    #[error("jail `{jail}`: backend `{backend}` reads files, but no logpath is set")]
    NoLogpath { jail: String, backend: String },
    #[error("invalid logpath pattern `{pattern}`")]
    Pattern {
        pattern: String,
        #[source]
        source: glob::PatternError,
    },
    #[error("jail `{jail}`: invalid journalmatch `{value}`")]
    JournalMatch { jail: String, value: String },
    #[error("jail `{jail}`: backend = systemd needs `{program}`, which cannot be run")]
    JournalctlMissing {
        jail: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "jail `{jail}`: backend = systemd, but this machine has no journal (no journal files in /var/log/journal or /run/log/journal); set journalpath or journalfiles, or use another backend"
    )]
    NoJournal { jail: String },
    #[error("jail `{jail}`: `journalctl` failed: {stderr}")]
    Journalctl { jail: String, stderr: String },
    #[error("jail `{jail}`: reading `journalctl`'s output")]
    JournalRead {
        jail: String,
        #[source]
        source: std::io::Error,
    },
}
