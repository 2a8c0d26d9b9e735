//! fail2ban's action.d actions, run as commands: a jail's notification and reporting actions
//! beside the XDP ban (`mail-whois`, `sendmail-whois-lines`, `abuseipdb`...), and, for
//! `[enforce] backend = actions`, the whole of enforcement ([`CommandEnforcer`]).
//!
//! An action is its `actionstart/stop/check/ban/unban/flush` commands with `[Init]` parameters
//! and the jail's `<tag>`s, as `config::fail2ban` reads them (`JailAction::Command`).
//! [`tags`] fills in the tags and keeps text from log lines out of the shell's grammar (pure);
//! [`run`] starts `sh -c` with a timeout (the only process spawning here); [`set`] holds the
//! per-action state machine that fail2ban's `CommandAction` defines; [`host`] asks the
//! resolver for names; [`ActionSet`] is a jail's actions together. Depends on `config`
//! (read-only) and `enforce` (for the trait); spawns no tasks, and reads the clock and the
//! resolver only through [`Context`].

pub mod enforcer;
pub mod host;
pub mod run;
pub mod set;
pub mod tags;

use std::{
    fmt::Write as _,
    net::IpAddr,
    time::{SystemTime, UNIX_EPOCH},
};

use indexmap::IndexMap;
use ipnet::IpNet;

pub use enforcer::CommandEnforcer;
pub use host::reverse_name;
pub use run::{RunError, Shell};
pub use set::Action;
pub use tags::{Family, HostNames};

use crate::config::fail2ban::{Jail, readers::ReaderError};

/// Why an action could not be set up or did not do its work.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("jail `{jail}`: action `{action}`: {source}")]
    Tags {
        jail: String,
        action: String,
        #[source]
        source: ReaderError,
    },
    #[error("jail `{jail}`: action `{action}`: invalid timeout `{value}` (seconds, above 0)")]
    BadTimeout {
        jail: String,
        action: String,
        value: String,
    },
    #[error("jail `{jail}`: action `{action}`: `{op}` exited with status {status}: {stderr}")]
    Failed {
        jail: String,
        action: String,
        op: &'static str,
        status: String,
        stderr: String,
    },
    #[error("jail `{jail}`: action `{action}`: `{op}`: {source}")]
    Run {
        jail: String,
        action: String,
        op: &'static str,
        #[source]
        source: RunError,
    },
}

/// What an action knows of a ban (fail2ban's ticket, as `<tags>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanInfo {
    /// `<ip>`: an address (`/32`, `/128`) shows without its prefix length.
    pub ip: IpNet,
    /// `<time>`: when the ban began.
    pub time: SystemTime,
    /// `<failures>`.
    pub failures: u32,
    /// `<matches>`: the failing log lines, joined by new lines.
    pub matches: Vec<String>,
    /// `<F-NAME>`: the filter's named captures, by fail2ban's key (`user`, `fid`, `fport`).
    pub fields: IndexMap<String, String>,
    /// `<bantime>` in seconds; -1 for a permanent ban.
    pub bantime: i64,
    /// `<bancount>`: how many times the address has been banned, this one included.
    pub bancount: u32,
    /// `<restored>`: the ban was restored at start, not decided now.
    pub restored: bool,
    /// `<ipmatches>`, `<ipjailmatches>`: the address's lines in every jail, in this jail
    /// (the ban's own `matches` when not given).
    pub ipmatches: Option<Vec<String>>,
    pub ipjailmatches: Option<Vec<String>>,
}

impl BanInfo {
    /// A ban of `ip` at `time` with nothing else known.
    #[must_use]
    pub fn new(ip: IpNet, time: SystemTime) -> Self {
        Self {
            ip,
            time,
            failures: 0,
            matches: Vec::new(),
            fields: IndexMap::new(),
            bantime: -1,
            bancount: 1,
            restored: false,
            ipmatches: None,
            ipjailmatches: None,
        }
    }
}

/// Seconds since the epoch, as fail2ban's `<time>` gives them (`1733390000.25`).
fn epoch_text(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut text = since.as_secs().to_string();
    let millis = since.subsec_millis();
    if millis > 0 {
        let _ = write!(text, ".{millis:03}");
        text = text.trim_end_matches('0').to_string();
    } else {
        text.push_str(".0");
    }
    text
}

/// `<ip>`'s text: the bare address for a host, the network otherwise.
fn target_text(ip: &IpNet) -> String {
    if ip.prefix_len() == ip.max_prefix_len() {
        ip.addr().to_string()
    } else {
        ip.to_string()
    }
}

/// The dynamic tags of a ban.
fn ban_values(info: &BanInfo, family: Family) -> IndexMap<&'static str, String> {
    let ip = target_text(&info.ip);
    let matches = info.matches.join("\n");
    let all = info
        .ipmatches
        .as_ref()
        .map_or_else(|| matches.clone(), |m| m.join("\n"));
    let jail = info
        .ipjailmatches
        .as_ref()
        .map_or_else(|| matches.clone(), |m| m.join("\n"));
    let mut values = IndexMap::new();
    values.insert("ip-rev", ip_rev_of(info.ip.addr()));
    values.insert("fid", ip.clone());
    values.insert("ip", ip);
    values.insert("family", family.as_str().to_string());
    values.insert("failures", info.failures.to_string());
    values.insert("ipfailures", info.failures.to_string());
    values.insert("ipjailfailures", info.failures.to_string());
    values.insert("time", epoch_text(info.time));
    values.insert("bantime", info.bantime.to_string());
    values.insert("bancount", info.bancount.to_string());
    values.insert("restored", u8::from(info.restored).to_string());
    values.insert("matches", matches);
    values.insert("ipmatches", all);
    values.insert("ipjailmatches", jail);
    values
}

fn ip_rev_of(addr: IpAddr) -> String {
    tags::ip_rev(addr)
}

/// What every command of an action runs with.
#[derive(Clone, Debug)]
pub struct Context {
    pub shell: Shell,
    pub host: HostNames,
    /// The clock for `<time>` of operations that concern no ban (start, stop, flush).
    pub clock: fn() -> SystemTime,
    /// The address's name for `<ip-host>` (asked only by commands that use the tag).
    pub reverse: fn(IpAddr) -> Option<String>,
}

impl Context {
    /// `/bin/sh`, this machine's names, the system clock.
    #[must_use]
    pub fn system() -> Self {
        Self {
            shell: Shell::default(),
            host: HostNames::system(),
            clock: SystemTime::now,
            reverse: reverse_name,
        }
    }
}

/// A jail's actions run as commands.
#[derive(Debug)]
pub struct ActionSet {
    jail: String,
    actions: Vec<Action>,
    ctx: Context,
}

impl ActionSet {
    #[must_use]
    pub fn new(jail: &str, actions: Vec<Action>, ctx: Context) -> Self {
        Self {
            jail: jail.into(),
            actions,
            ctx,
        }
    }

    /// The jail's command actions that `keep` accepts (by name); Python actions are left out
    /// and named in the second value, since banxdp cannot run them.
    pub fn for_jail(
        jail: &Jail,
        ctx: Context,
        keep: impl Fn(&str) -> bool,
    ) -> Result<(Self, Vec<String>), ActionError> {
        let mut actions = Vec::new();
        let mut skipped = Vec::new();
        for entry in &jail.actions {
            match Action::from_jail_action(&jail.name, entry) {
                Some(action) => {
                    let action = action?;
                    if keep(action.name()) {
                        actions.push(action);
                    }
                }
                None => {
                    if let crate::config::fail2ban::JailAction::Python { name, .. } = entry {
                        skipped.push(name.clone());
                    }
                }
            }
        }
        Ok((Self::new(&jail.name, actions, ctx), skipped))
    }

    #[must_use]
    pub fn jail(&self) -> &str {
        &self.jail
    }

    /// What the set was configured as (see `Action::definition`): a reload keeps a set
    /// whose definition is unchanged running, without stopping and starting its actions.
    #[must_use]
    pub fn definition(&self) -> Vec<String> {
        self.actions.iter().map(Action::definition).collect()
    }

    /// The actions' names, in the jail's order.
    #[must_use]
    pub fn names(&self) -> Vec<&str> {
        self.actions.iter().map(Action::name).collect()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Runs `op` on every action, in order, even after one fails; the first error is returned.
    fn each(
        &mut self,
        mut op: impl FnMut(&mut Action, &Context) -> Result<(), ActionError>,
    ) -> Result<(), ActionError> {
        let mut first = Ok(());
        for action in &mut self.actions {
            if let Err(e) = op(action, &self.ctx) {
                tracing::error!(jail = %self.jail, action = %action.name(), error = %e, "action failed");
                first = first.and(Err(e));
            }
        }
        first
    }

    /// `actionstart` of every action (those that start on demand wait for their first ban).
    pub fn start(&mut self) -> Result<(), ActionError> {
        self.each(Action::start)
    }

    pub fn ban(&mut self, info: &BanInfo) -> Result<(), ActionError> {
        self.each(|a, ctx| a.ban(info, ctx).map(drop))
    }

    pub fn unban(&mut self, info: &BanInfo) -> Result<(), ActionError> {
        self.each(|a, ctx| a.unban(info, ctx))
    }

    /// Lifts every ban: `actionflush` where the action has one, else `actionunban` for each of
    /// `active`.
    pub fn flush(&mut self, active: &[BanInfo]) -> Result<(), ActionError> {
        self.each(|a, ctx| {
            if a.flush(ctx)? {
                return Ok(());
            }
            let mut first = Ok(());
            for info in active {
                if let Err(e) = a.unban(info, ctx) {
                    first = first.and(Err(e));
                }
            }
            first
        })
    }

    /// `actionstop` of every started action.
    pub fn stop(&mut self) -> Result<(), ActionError> {
        self.each(Action::stop)
    }
}

/// Whether an action.d name is a firewall action (one that blocks traffic), which banxdp's
/// chosen backend carries out instead of running it; other actions (mail, reporting) run as
/// commands beside the ban.
#[must_use]
pub fn is_firewall_action(name: &str) -> bool {
    const FIREWALLS: [&str; 18] = [
        "iptables",
        "ip6tables",
        "nftables",
        "firewallcmd",
        "ufw",
        "shorewall",
        "route",
        "ipset",
        "hostsdeny",
        "pf",
        "npf",
        "ipfw",
        "bsd-ipfw",
        "ipfilter",
        "apf",
        "osx",
        "symbiosis-blacklist",
        "banxdp",
    ];
    FIREWALLS.iter().any(|f| {
        name == *f
            || name
                .strip_prefix(f)
                .is_some_and(|rest| rest.starts_with('-'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firewall_actions_are_told_from_notifications() {
        for name in [
            "iptables",
            "iptables-multiport",
            "iptables-allports",
            "iptables-ipset-proto6",
            "nftables",
            "nftables-multiport",
            "firewallcmd-ipset",
            "ufw",
            "shorewall",
            "route",
            "hostsdeny",
            "pf",
            "osx-afctl",
            "banxdp-nftables",
        ] {
            assert!(is_firewall_action(name), "{name}");
        }
        for name in [
            "mail-whois",
            "sendmail-whois-lines",
            "abuseipdb",
            "dummy",
            "complain",
            "pfsense",
            "routes",
            "cloudflare",
            "xarf-login-attack",
        ] {
            assert!(!is_firewall_action(name), "{name}");
        }
    }

    #[test]
    fn ban_tags() {
        let mut info = BanInfo::new(
            "192.0.2.7/32".parse().unwrap(),
            UNIX_EPOCH + std::time::Duration::from_millis(1_733_390_000_250),
        );
        info.matches = vec!["l1".into(), "l2".into()];
        info.failures = 3;
        let v = ban_values(&info, Family::Inet4);
        assert_eq!(v["ip"], "192.0.2.7");
        assert_eq!(v["ip-rev"], "7.2.0.192.");
        assert_eq!(v["family"], "inet4");
        assert_eq!(v["time"], "1733390000.25");
        assert_eq!(v["matches"], "l1\nl2");
        assert_eq!(v["ipmatches"], "l1\nl2");
        assert_eq!(v["bantime"], "-1");
        assert_eq!(v["failures"], "3");
        let net = BanInfo::new("192.0.2.0/24".parse().unwrap(), UNIX_EPOCH);
        assert_eq!(ban_values(&net, Family::Inet4)["ip"], "192.0.2.0/24");
        assert_eq!(epoch_text(UNIX_EPOCH), "0.0");
    }
}
