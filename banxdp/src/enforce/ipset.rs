//! The ipset backend: per jail and family a `hash:net` set whose elements carry their own
//! timeout (expiry is the kernel's), matched by rules in a chain of ours hooked into `INPUT`
//! (`iptables` and `ip6tables`), the allow list first.
//!
//! Every batch of bans is one `ipset -exist restore`: `-exist` makes adding a present element
//! replace its timeout and deleting an absent one no error, so every change is idempotent and
//! a restart (sets kept, rules rewritten whole) duplicates nothing. A ban longer than ipset's
//! longest timeout (about 24 days) is stored without one and removed by `remove_expired`.
//! Rules are written as the iptables backend writes its own (see [`super::iptables`]).

use std::{collections::BTreeMap, fmt::Write as _, time::SystemTime};

use ipnet::IpNet;

use super::{
    ActiveBan, Ban, Enforcer, Error, Expiry, JailScope,
    book::{Book, normalize, remaining, safe_name},
    exec::{Command, Executor},
    iptables::{Family, hook, port_matches, restore, unhook},
};

/// ipset set names are at most 31 bytes.
const SET_MAX: usize = 31;
/// ipset's longest timeout, in seconds.
const MAX_TIMEOUT: u64 = 2_147_483;

/// How the ipset backend is set up.
#[derive(Clone, Debug)]
pub struct IpsetOptions {
    /// Prefix of every set's name (`bx`): `bx-sshd-4`, `bx_allow_6`.
    pub prefix: String,
    /// Our iptables chain, hooked into `INPUT` (`banxdp-ipset`).
    pub chain: String,
    /// Each set's `maxelem`.
    pub max_elements: u32,
    /// The target of a ban rule (`DROP`).
    pub target: String,
    /// How the tools run.
    pub exec: Executor,
}

impl Default for IpsetOptions {
    fn default() -> Self {
        Self {
            prefix: "bx".into(),
            chain: "banxdp-ipset".into(),
            max_elements: 1 << 21,
            target: "DROP".into(),
            exec: Executor::default(),
        }
    }
}

/// The ipset enforcer.
pub struct IpsetEnforcer {
    options: IpsetOptions,
    jails: BTreeMap<String, JailScope>,
    book: Book,
}

const fn family_word(family: Family) -> &'static str {
    match family {
        Family::V4 => "inet",
        Family::V6 => "inet6",
    }
}

const fn family_digit(family: Family) -> char {
    match family {
        Family::V4 => '4',
        Family::V6 => '6',
    }
}

/// The ipset `timeout` of a ban at `now`: seconds rounded up, 0 (none) when permanent or
/// longer than ipset allows; `None` when it has ended.
#[must_use]
pub fn timeout_secs(expiry: Expiry, now: SystemTime) -> Option<u64> {
    let left = remaining(expiry, now)?;
    Some(left.map_or(0, |d| {
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        if secs > MAX_TIMEOUT { 0 } else { secs }
    }))
}

impl IpsetOptions {
    /// The name of a set of ours: `<prefix>-<what>-<4|6>`, at most 31 bytes.
    #[must_use]
    pub fn set_name(&self, what: &str, family: Family) -> String {
        let room = SET_MAX.saturating_sub(self.prefix.len() + 3).max(10);
        format!(
            "{}-{}-{}",
            self.prefix,
            safe_name(what, room),
            family_digit(family)
        )
    }

    /// The name of an allow set: `<prefix>_allow_<4|6>` (underscores: no jail's set has them
    /// there).
    #[must_use]
    pub fn allow_set(&self, family: Family) -> String {
        format!("{}_allow_{}", self.prefix, family_digit(family))
    }

    /// The sets of an `ipset list -n` listing that are ours by their names.
    #[must_use]
    pub fn ours<'a>(&self, listing: &'a str) -> Vec<&'a str> {
        let jail = format!("{}-", self.prefix);
        let allow = format!("{}_allow_", self.prefix);
        listing
            .lines()
            .map(str::trim)
            .filter(|n| n.starts_with(&jail) || n.starts_with(&allow))
            .collect()
    }

    /// `create` lines for a set (idempotent under `-exist`); allow sets have no timeout.
    #[must_use]
    pub fn create_line(&self, set: &str, family: Family, timeout: bool) -> String {
        let timeout = if timeout { " timeout 0" } else { "" };
        format!(
            "create {set} hash:net family {}{timeout} maxelem {}\n",
            family_word(family),
            self.max_elements
        )
    }
}

impl IpsetEnforcer {
    /// Creates (or adopts) the allow sets and our chains, and hooks them into `INPUT`.
    pub fn new(options: IpsetOptions) -> Result<Self, Error> {
        let enforcer = Self {
            options,
            jails: BTreeMap::new(),
            book: Book::default(),
        };
        let mut script = String::new();
        for family in Family::BOTH {
            let set = enforcer.options.allow_set(family);
            script += &enforcer.options.create_line(&set, family, false);
        }
        enforcer.ipset(script)?;
        enforcer.write_rules()?;
        for family in Family::BOTH {
            hook(&enforcer.options.exec, family, &enforcer.options.chain)?;
        }
        Ok(enforcer)
    }

    /// Runs one `ipset -exist restore`.
    fn ipset(&self, script: String) -> Result<(), Error> {
        if script.is_empty() {
            return Ok(());
        }
        let command = Command::new(["ipset", "-exist", "restore"]).with_stdin(script);
        self.options.exec.run(&command)?;
        Ok(())
    }

    /// Our chain for `family`: the allow set first, then each jail's set with its ports.
    fn chain_body(&self, family: Family) -> String {
        let o = &self.options;
        let chain = &o.chain;
        let mut s = format!(":{chain} - [0:0]\n");
        let allow = o.allow_set(family);
        let _ = writeln!(s, "-A {chain} -m set --match-set {allow} src -j RETURN");
        for jail in self.jails.values() {
            let set = o.set_name(&jail.name, family);
            let target = if jail.shadow {
                String::new()
            } else {
                format!(" -j {}", o.target)
            };
            for ports in port_matches(&jail.ports) {
                let _ = writeln!(s, "-A {chain}{ports} -m set --match-set {set} src{target}");
            }
        }
        s
    }

    fn write_rules(&self) -> Result<(), Error> {
        for family in Family::BOTH {
            restore(&self.options.exec, family, &self.chain_body(family))?;
        }
        Ok(())
    }

    /// `add` lines of `bans` at `now`, recorded in the book; ended bans are skipped.
    fn add_lines(&mut self, bans: &[Ban], now: SystemTime) -> Result<String, Error> {
        let mut script = String::new();
        for ban in bans {
            if !self.jails.contains_key(&ban.jail) {
                return Err(Error::UnknownJail(ban.jail.clone()));
            }
            let target = normalize(ban.target);
            let Some(timeout) = timeout_secs(ban.expiry, now) else {
                continue;
            };
            let set = self.options.set_name(&ban.jail, Family::of(target));
            let _ = writeln!(script, "add {set} {target} timeout {timeout}");
            self.book.ban(&ban.jail, target, ban.expiry);
        }
        Ok(script)
    }
}

impl Enforcer for IpsetEnforcer {
    fn name(&self) -> &'static str {
        "ipset"
    }

    fn describe(&self) -> String {
        format!(
            "ipset: sets {}-*, chain {}",
            self.options.prefix, self.options.chain
        )
    }

    fn add_jail(&mut self, jail: &JailScope) -> Result<(), Error> {
        if jail.ports.is_empty() {
            return Err(Error::EmptyPortScope {
                jail: jail.name.clone(),
            });
        }
        let mut script = String::new();
        for family in Family::BOTH {
            let set = self.options.set_name(&jail.name, family);
            script += &self.options.create_line(&set, family, true);
        }
        self.ipset(script)?;
        self.jails.insert(jail.name.clone(), jail.clone());
        self.write_rules()
    }

    fn remove_jail(&mut self, name: &str) -> Result<(), Error> {
        if self.jails.remove(name).is_none() {
            return Err(Error::UnknownJail(name.to_string()));
        }
        self.write_rules()?;
        let mut script = String::new();
        for family in Family::BOTH {
            let _ = writeln!(script, "destroy {}", self.options.set_name(name, family));
        }
        self.ipset(script)?;
        self.book.remove_jail(name);
        Ok(())
    }

    fn ban_many(&mut self, bans: &[Ban]) -> Result<(), Error> {
        let script = self.add_lines(bans, SystemTime::now())?;
        self.ipset(script)
    }

    fn unban(&mut self, jail: &str, target: IpNet) -> Result<(), Error> {
        if !self.jails.contains_key(jail) {
            return Err(Error::UnknownJail(jail.to_string()));
        }
        let target = normalize(target);
        let set = self.options.set_name(jail, Family::of(target));
        self.ipset(format!("del {set} {target}\n"))?;
        self.book.unban(jail, target);
        Ok(())
    }

    fn set_allowed(&mut self, nets: &[IpNet]) -> Result<(), Error> {
        let mut script = String::new();
        for family in Family::BOTH {
            let set = self.options.allow_set(family);
            let _ = writeln!(script, "flush {set}");
            for net in nets.iter().map(|n| normalize(*n)) {
                if Family::of(net) == family {
                    let _ = writeln!(script, "add {set} {net}");
                }
            }
        }
        self.ipset(script)
    }

    fn active(&self) -> Result<Vec<ActiveBan>, Error> {
        let now = SystemTime::now();
        Ok(self
            .book
            .active()
            .into_iter()
            .filter(|b| remaining(b.expiry, now).is_some())
            .collect())
    }

    fn remove_expired(&mut self) -> Result<usize, Error> {
        // The kernel removes what it timed; deleting again is harmless and catches bans too
        // long for an ipset timeout.
        let ended = self.book.remove_expired(SystemTime::now());
        let mut script = String::new();
        for (jail, target) in &ended {
            let set = self.options.set_name(jail, Family::of(*target));
            let _ = writeln!(script, "del {set} {target}");
        }
        self.ipset(script)?;
        Ok(ended.len())
    }

    fn detach(self: Box<Self>) -> Result<(), Error> {
        for family in Family::BOTH {
            unhook(&self.options.exec, family, &self.options.chain, &[])?;
        }
        // Sets of this process and of earlier ones (jails since removed).
        let listing = self
            .options
            .exec
            .run(&Command::new(["ipset", "list", "-n"]))?;
        let mut script = String::new();
        for set in self.options.ours(&listing.stdout) {
            let _ = writeln!(script, "destroy {set}");
        }
        self.ipset(script)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::enforce::PortScope;

    #[test]
    fn set_names_fit_ipset() {
        let o = IpsetOptions::default();
        assert_eq!(o.set_name("sshd", Family::V4), "bx-sshd-4");
        assert!(o.set_name(&"long-jail-name".repeat(4), Family::V6).len() <= SET_MAX);
        assert_eq!(
            o.create_line("bx-sshd-6", Family::V6, true),
            "create bx-sshd-6 hash:net family inet6 timeout 0 maxelem 2097152\n"
        );
    }

    #[test]
    fn our_sets_are_found_by_name() {
        let o = IpsetOptions::default();
        let listing = "bx-sshd-4\nf2b-sshd\nbx_allow_6\nbxother\nbx-old_0011aabb-6\n";
        assert_eq!(
            o.ours(listing),
            ["bx-sshd-4", "bx_allow_6", "bx-old_0011aabb-6"]
        );
    }

    #[test]
    fn timeouts_round_up_and_fall_back_to_none() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let at = |ms| Expiry::At(now + Duration::from_millis(ms));
        assert_eq!(timeout_secs(at(1500), now), Some(2));
        assert_eq!(timeout_secs(at(0), now), None);
        assert_eq!(timeout_secs(Expiry::Never, now), Some(0));
        assert_eq!(timeout_secs(at(MAX_TIMEOUT * 2000), now), Some(0));
    }

    #[test]
    fn rules_put_the_allow_set_first_and_shadow_only_counts() {
        let mut e = IpsetEnforcer {
            options: IpsetOptions::default(),
            jails: BTreeMap::new(),
            book: Book::default(),
        };
        e.jails.insert(
            "sshd".into(),
            JailScope {
                name: "sshd".into(),
                ports: PortScope::Ports {
                    protocols: vec![6],
                    ranges: vec![22..=22],
                },
                shadow: true,
            },
        );
        assert_eq!(
            e.chain_body(Family::V6),
            ":banxdp-ipset - [0:0]\n\
             -A banxdp-ipset -m set --match-set bx_allow_6 src -j RETURN\n\
             -A banxdp-ipset -p tcp -m multiport --dports 22 -m set --match-set bx-sshd-6 src\n"
        );
    }
}
