//! Jails: failures in, ban decisions out, as fail2ban 1.0.2's jails decide them.
//!
//! [`JailParams`] is everything a jail needs, typed and checked, from a [`JailConfig`] and
//! injected facts ([`Env`]: /etc/services, the machine's own addresses, a resolver for host
//! names, a random seed, the memory limits). [`Jail`] is the state machine (`state`):
//! failures within `findtime`, `maxretry`, `maxmatches`, `bantime` and its increment
//! (`increment`, fail2ban's formulas read by our own evaluator in `formula`), in bounded
//! memory (`tracker`). `ignore` holds `ignoreip`/`ignoreself` and `usedns`; `ports` the port
//! scope of the jail's bans (its firewall actions' ports, as fail2ban hands them).
//!
//! Pure, time injected, no I/O, except `ignorecommand`, which runs the jail's external
//! command and is used by the daemon, never by the state machine. May depend on `config`,
//! `enforce` (for [`PortScope`]), `action` (for `is_firewall_action`, so that the actions
//! whose ports scope a ban are the ones the daemon does not run as commands) and `filter`
//! (for [`Host`](crate::filter::matcher::Host)); nothing depends on it but the daemon.
//!
//! Memory: a jail tracks at most [`DEFAULT_MAX_TRACKED`] addresses and
//! [`DEFAULT_MAX_MATCH_BYTES`] bytes of matched lines; at either bound, the addresses whose
//! last failure is oldest are forgotten first, and [`JailStats::evicted`] counts them. A
//! jail full of one-failure sshd addresses holds 84 MiB (193 bytes an address, measured).
//!
//! ```
//! use banxdp::jail::{Env, Jail, JailParams, Limits, Services, UseDns, targets};
//! # let config = banxdp::config::jails::JailConfig {
//! #     name: "sshd".into(), backend: "auto".into(), logpaths: vec![], logencoding: None,
//! #     logtimezone: None, failregex: vec![], ignoreregex: vec![], prefregex: None,
//! #     datepattern: None, journalmatch: vec![], maxlines: 1, usedns: "warn".into(),
//! #     maxretry: 2, maxmatches: None, findtime: 600,
//! #     bantime: banxdp::config::jails::Bantime::Seconds(3600), increment: Default::default(),
//! #     ignoreip: vec!["10.0.0.0/8".into()], ignoreself: true, ignorecommand: None,
//! #     port: Some("ssh".into()), protocol: None, chain: None, shadow: None,
//! #     actions: vec!["iptables-multiport".into()],
//! # };
//! let services = Services::parse("ssh 22/tcp\n");
//! let env = Env {
//!     services: &services,
//!     local_addrs: &[],
//!     resolve: &|_name| Vec::new(),
//!     seed: 42,
//!     limits: Limits::default(),
//! };
//! let mut jail = Jail::new(JailParams::from_config(&config, &env)?);
//! let host = banxdp::filter::Host::Ip("203.0.113.9".parse()?, None);
//! let line = "Failed password for root from 203.0.113.9 port 50122 ssh2";
//! let now = 1_796_464_800;
//! let mut bans = Vec::new();
//! for t in [now - 20, now - 10] {
//!     for net in targets(&host, UseDns::Warn, &|_| Vec::new()).nets {
//!         bans.extend(jail.failure(net, t, line, now));
//!     }
//! }
//! assert_eq!(bans.len(), 1);
//! assert_eq!(bans[0].end(), Some(now - 10 + 3600));
//! assert_eq!(jail.params().ignore.allowed_nets()[0].to_string(), "10.0.0.0/8");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod formula;
pub mod ignore;
pub mod ignorecommand;
pub mod increment;
pub mod ports;
pub mod state;
mod tracker;

#[cfg(test)]
mod config_tests;
#[cfg(test)]
mod memory_tests;
#[cfg(test)]
mod oracle_tests;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

pub use ignore::{IgnoreList, Resolver, Targets, UseDns, targets};
pub use ignorecommand::{IgnoreCommand, IgnoreCommandError, Verdict};
pub use increment::Increment;
pub use ports::{Services, port_scope};
pub use state::{Decision, Jail, JailStats};
pub use tracker::Limits;

use crate::{
    config::jails::{Bantime, JailConfig},
    enforce::{JailScope, PortScope},
};

/// Addresses a jail tracks at most: 2^19 × 7/8, the most a hash table of 2^19 buckets holds
/// (a bucket is 4 bytes of slot number and 1 of control; a slot 72 bytes).
pub const DEFAULT_MAX_TRACKED: usize = 458_752;

/// Bytes of matched lines a jail keeps at most (64 MiB).
pub const DEFAULT_MAX_MATCH_BYTES: usize = 64 << 20;

/// What a jail's parameters are built from besides its configuration.
pub struct Env<'a> {
    /// /etc/services, read.
    pub services: &'a Services,
    /// The machine's own addresses (for `ignoreself`).
    pub local_addrs: &'a [IpAddr],
    /// Resolves the host names of `ignoreip`.
    pub resolve: Resolver<'a>,
    /// Seeds the randomness of `bantime.rndtime`.
    pub seed: u64,
    /// The tracking limits of every jail.
    pub limits: Limits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_tracked: DEFAULT_MAX_TRACKED,
            max_match_bytes: DEFAULT_MAX_MATCH_BYTES,
        }
    }
}

impl Limits {
    /// These limits as a budget shared by `jails` jails: each gets an equal part (at least
    /// 1,024 addresses and 1 MiB), so that a flood hitting every jail at once stays within
    /// the budget. The default is per jail: a flood usually hits one.
    #[must_use]
    pub fn shared_by(self, jails: usize) -> Self {
        let jails = jails.max(1);
        Self {
            max_tracked: (self.max_tracked / jails).max(1024),
            max_match_bytes: (self.max_match_bytes / jails).max(1 << 20),
        }
    }
}

/// A jail that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    #[error("jail `{jail}`: {source}")]
    Ignore {
        jail: String,
        #[source]
        source: ignore::IgnoreError,
    },
    #[error("jail `{jail}`: {source}")]
    Ports {
        jail: String,
        #[source]
        source: ports::PortError,
    },
    #[error("jail `{jail}`: {source}")]
    Increment {
        jail: String,
        #[source]
        source: increment::IncrementError,
    },
    #[error("jail `{jail}`: {source}")]
    IgnoreCommand {
        jail: String,
        #[source]
        source: IgnoreCommandError,
    },
    #[error("jail `{jail}`: invalid shadow `{value}` (true or false)")]
    Shadow { jail: String, value: String },
    #[error("jail `{jail}`: invalid usedns `{value}` (yes, warn, no or raw)")]
    UseDns { jail: String, value: String },
    #[error("jail `{jail}`: invalid {option} `{value}` ({why})")]
    Range {
        jail: String,
        option: &'static str,
        value: i64,
        why: &'static str,
    },
}

/// Everything a jail's state machine needs, checked.
#[derive(Clone, Debug)]
pub struct JailParams {
    pub name: String,
    pub maxretry: u32,
    /// Seconds.
    pub findtime: i64,
    pub bantime: Bantime,
    /// Matched lines kept per address and handed with a ban (default: `maxretry`).
    pub maxmatches: u32,
    /// `bantime.increment`, when on.
    pub increment: Option<Increment>,
    pub ignore: IgnoreList,
    pub ignorecommand: Option<IgnoreCommand>,
    pub usedns: UseDns,
    pub ports: PortScope,
    /// banxdp's `shadow`: the jail's bans are enforced in shadow mode (the backend counts
    /// what they would drop, and passes it), to trial a jail on live traffic.
    pub shadow: bool,
    pub limits: Limits,
    pub seed: u64,
}

impl JailParams {
    /// Checks and types a jail's configuration.
    pub fn from_config(c: &JailConfig, env: &Env<'_>) -> Result<Self, JailError> {
        let jail = || c.name.clone();
        let range = |option, value: i64, why| JailError::Range {
            jail: jail(),
            option,
            value,
            why,
        };
        if c.maxretry == 0 {
            return Err(range("maxretry", 0, "at least 1"));
        }
        if c.findtime <= 0 {
            return Err(range("findtime", c.findtime, "at least one second"));
        }
        let (usedns, known) = UseDns::parse(&c.usedns);
        if !known {
            return Err(JailError::UseDns {
                jail: jail(),
                value: c.usedns.clone(),
            });
        }
        let local = c.ignoreself.then_some(env.local_addrs);
        let ignore = IgnoreList::new(&c.ignoreip, local, env.resolve).map_err(|source| {
            JailError::Ignore {
                jail: jail(),
                source,
            }
        })?;
        let ignorecommand = c
            .ignorecommand
            .as_deref()
            .filter(|t| !t.trim().is_empty())
            .map(IgnoreCommand::new)
            .transpose()
            .map_err(|source| JailError::IgnoreCommand {
                jail: jail(),
                source,
            })?;
        let increment =
            Increment::from_config(&c.increment).map_err(|source| JailError::Increment {
                jail: jail(),
                source,
            })?;
        let ports = port_scope(
            c.port.as_deref(),
            c.protocol.as_deref(),
            &c.actions,
            env.services,
        )
        .map_err(|source| JailError::Ports {
            jail: jail(),
            source,
        })?;
        let shadow = shadow(c)?;
        Ok(Self {
            name: c.name.clone(),
            maxretry: c.maxretry,
            findtime: c.findtime,
            bantime: c.bantime,
            maxmatches: c.maxmatches.unwrap_or(c.maxretry),
            increment,
            ignore,
            ignorecommand,
            usedns,
            ports,
            shadow,
            limits: env.limits,
            seed: env.seed ^ name_hash(&c.name),
        })
    }

    /// What an enforcer must know of the jail.
    #[must_use]
    pub fn scope(&self) -> JailScope {
        JailScope {
            name: self.name.clone(),
            ports: self.ports.clone(),
            shadow: self.shadow,
        }
    }
}

/// Whether the jail's bans are enforced in shadow mode: its `shadow` (`true`, `yes`, `on`,
/// `1` or their opposites), off when unset.
pub fn shadow(c: &JailConfig) -> Result<bool, JailError> {
    match c.shadow.as_deref().map(str::trim) {
        None | Some("") => Ok(false),
        Some(text) => parse_flag(text).ok_or_else(|| JailError::Shadow {
            jail: c.name.clone(),
            value: text.into(),
        }),
    }
}

/// A boolean as fail2ban's configuration writes one (`true`, `yes`, `on`, `1`, and their
/// opposites, in any case).
fn parse_flag(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// FNV-1a of the jail's name: jails seeded alike still draw different numbers.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
