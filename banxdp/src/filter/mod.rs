//! The filter engine: log lines in, failures (address and fields) out. Pure: no I/O, no
//! clock.
//!
//! `pattern` compiles fail2ban's regular expressions. Matching whole filters (prefregex,
//! failregex, ignoreregex), dates, multi-line buffers and `banxdp regex` build on it.

pub mod pattern;
