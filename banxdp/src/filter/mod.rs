//! The filter engine: log lines in, failures (address and fields) out. Pure: no I/O, no
//! clock.
//!
//! `pattern` compiles fail2ban's regular expressions; `matcher` applies a whole filter
//! (prefregex, failregex, ignoreregex) to a line. Dates, multi-line buffers and
//! `banxdp regex` build on them.

pub mod date;
pub mod matcher;
pub mod pattern;
pub mod report;
pub mod tracker;

pub use matcher::{Failure, Filter, FilterSpec, Host, Outcome, Unsupported};
