//! banxdp: fail2ban's jails, enforced by XDP at the NIC.
//!
//! The library half of the one binary: everything but argument parsing lives here so that
//! the integration tests drive the same code the daemon runs. See `design.md` for the data
//! flow: log sources → filters → jails → ban manager → store and enforcers.

pub mod action;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod enforce;
pub mod filter;
pub mod jail;
pub mod logging;
pub mod source;
pub mod store;
