//! The filter engine: log lines in, failures (address and fields) out. Pure: no I/O, no
//! clock.
//!
//! `pattern` compiles fail2ban's regular expressions (with `jit`, PCRE2's fast path for their
//! groups); `matcher` holds a whole filter (prefregex, failregex, ignoreregex); `tracker`
//! applies it with what earlier lines left (failure ids, multi-line buffers); `date` finds
//! dates; `scan` puts them together line by line; `report` is `banxdp regex`. `syslog`,
//! `prefix` and `failed` read three stock patterns by hand where their answer is plain
//! (with `ascii`'s helpers). `crate::source::bulk` reads a whole log on several cores.

pub mod ascii;
mod connections;
pub mod date;
#[cfg(test)]
pub(crate) mod generated;
pub mod literals;
pub mod matcher;
pub mod pattern;
pub mod report;
pub mod scan;
pub mod syslog;
pub mod tracker;

pub use matcher::{Failure, Filter, FilterSpec, Host, Outcome};
pub use scan::{Scanned, Scanner};
