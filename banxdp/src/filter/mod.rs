//! The filter engine: log lines in, failures (who, by which pattern, with which fields) out.
//! Pure: no I/O, no clock (the present is passed in).
//!
//! What is where:
//!
//! - [`scan`]: **the daemon's entry point.** A [`Scanner`] per jail reads one line at a time
//!   ([`Scanner::line`], or [`Scanner::timed_line`] for a journal line whose time is known)
//!   and answers a [`Scanned`]: the line's time and its [`Failure`]s. Start reading here.
//! - `engine` (re-exported as [`pattern`], [`literals`], [`matcher`]): fail2ban's regular
//!   expressions translated and compiled (`regex`, and `fancy-regex` for look-around,
//!   back-references and conditionals); the literal prefilter that turns most lines away
//!   before any pattern runs; a whole filter (`prefregex`, `failregex`, `ignoreregex`) and
//!   the host of a match.
//! - [`date`]: dates in lines, fail2ban's templates and `datepattern`, with
//!   [`date::syslog`] reading the syslog date at a line's start by hand.
//! - [`tracker`]: what a filter remembers between lines: connections by failure id
//!   (`<F-MLFID>`, `<F-NOFAIL>`, ...) and multi-line buffers (`maxlines`).
//! - [`report`]: `banxdp regex`'s counts, summary and JSON. The batch reader that feeds it a
//!   whole log on several cores is `crate::source::bulk`, through [`Scanner::prepare`] and
//!   [`Scanner::finish`] (a line's search apart from its merging, so that workers can search
//!   while one thread merges in order).

pub mod date;
mod engine;
#[cfg(test)]
pub(crate) mod generated;
pub mod report;
pub mod scan;
pub mod tracker;

pub use engine::{literals, matcher, pattern};
pub use matcher::{Filter, FilterSpec, Host, Outcome};
pub use scan::{Scanned, Scanner};
pub use tracker::Failure;
