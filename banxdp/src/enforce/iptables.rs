//! The iptables backend, one rule per banned address (fail2ban's `iptables-multiport` and
//! `iptables-allports` layout), for hosts without ipset; and the iptables plumbing that the
//! ipset backend shares (families, `iptables-restore` scripts, the hook in `INPUT`).
//!
//! Layout, per family (`iptables`, `ip6tables`): a chain of ours (`banxdp`) hooked first into
//! `INPUT`, holding the allow list (`-s NET -j RETURN`) and then one jump per jail, with the
//! jail's port scope (`-p tcp -m multiport --dports 22,80`), to the jail's chain (`bx-sshd`).
//! A ban inserts `-s ADDR -j DROP` at the head of the jail's chain (`-I`, newest first, as
//! fail2ban does); a jail in shadow mode inserts the rule without a target, so it only counts.
//! Every change is one `iptables-restore --noflush` transaction, and our chain is declared
//! (so flushed) and refilled whole whenever jails or the allow list change.
//!
//! The cost per packet grows with the number of bans: every packet to a jail's ports walks its
//! chain. Expiry is ours (`remove_expired` deletes the rules).

use std::{collections::BTreeMap, fmt::Write as _, time::SystemTime};

use ipnet::IpNet;

use super::{
    ActiveBan, Ban, Enforcer, Error, Expiry, JailScope, PortScope, ProtocolPorts,
    book::{Book, normalize, remaining, safe_name},
    exec::{Command, Executor},
    protocol_name, ranges_text,
};

/// iptables chain names are at most 28 bytes.
const CHAIN_MAX: usize = 28;

/// An address family and its tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const BOTH: [Self; 2] = [Self::V4, Self::V6];

    #[must_use]
    pub const fn of(net: IpNet) -> Self {
        match net {
            IpNet::V4(_) => Self::V4,
            IpNet::V6(_) => Self::V6,
        }
    }

    /// `iptables` or `ip6tables`.
    #[must_use]
    pub const fn tool(self) -> &'static str {
        match self {
            Self::V4 => "iptables",
            Self::V6 => "ip6tables",
        }
    }

    const fn restore_tool(self) -> &'static str {
        match self {
            Self::V4 => "iptables-restore",
            Self::V6 => "ip6tables-restore",
        }
    }
}

/// The `-p PROTO -m multiport --dports ...` matches of a port scope, one per protocol and per
/// group of at most seven ranges (multiport takes 15 ports, a range counting two); a single
/// empty match for all ports.
#[must_use]
pub fn port_matches(scope: &PortScope) -> Vec<String> {
    let Some(list) = scope.per_protocol() else {
        return vec![String::new()];
    };
    let mut out = Vec::new();
    for ProtocolPorts { protocol, ranges } in list {
        let name = protocol_name(protocol);
        for group in ranges.chunks(7) {
            let ports = ranges_text(group, ':', ",");
            out.push(format!(" -p {name} -m multiport --dports {ports}"));
        }
    }
    out
}

/// Wraps rule lines into an `iptables-restore` script for the filter table.
#[must_use]
pub fn restore_script(body: &str) -> String {
    format!("*filter\n{body}COMMIT\n")
}

/// Runs one `iptables-restore --noflush` transaction of `body` (rule lines, chain lines).
pub fn restore(exec: &Executor, family: Family, body: &str) -> Result<(), Error> {
    if body.is_empty() {
        return Ok(());
    }
    let command =
        Command::new([family.restore_tool(), "--noflush"]).with_stdin(restore_script(body));
    exec.run(&command)?;
    Ok(())
}

/// Hooks `chain` first into `INPUT`, unless it is hooked already.
pub fn hook(exec: &Executor, family: Family, chain: &str) -> Result<(), Error> {
    let check = Command::new([family.tool(), "-w", "-C", "INPUT", "-j", chain]);
    if exec.run_status(&check)?.0.success() {
        return Ok(());
    }
    exec.run(&Command::new([
        family.tool(),
        "-w",
        "-I",
        "INPUT",
        "1",
        "-j",
        chain,
    ]))?;
    Ok(())
}

/// Unhooks `chain` from `INPUT` (every copy), then flushes and deletes it and `others`; what
/// is not there is no error.
pub fn unhook(
    exec: &Executor,
    family: Family,
    chain: &str,
    others: &[String],
) -> Result<(), Error> {
    let tool = family.tool();
    while exec
        .run_status(&Command::new([tool, "-w", "-D", "INPUT", "-j", chain]))?
        .0
        .success()
    {}
    for name in std::iter::once(chain).chain(others.iter().map(String::as_str)) {
        let _ = exec.run_status(&Command::new([tool, "-w", "-F", name]))?;
    }
    for name in std::iter::once(chain).chain(others.iter().map(String::as_str)) {
        let _ = exec.run_status(&Command::new([tool, "-w", "-X", name]))?;
    }
    Ok(())
}

/// The chains of an `iptables -S` listing whose names start with `prefix`.
#[must_use]
pub fn chains_with_prefix(listing: &str, prefix: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| l.strip_prefix("-N "))
        .filter(|name| name.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// How the rule-per-address backend is set up.
#[derive(Clone, Debug)]
pub struct IptablesOptions {
    /// Our chain, hooked into `INPUT` (`banxdp`).
    pub chain: String,
    /// Prefix of each jail's chain (`bx-`).
    pub jail_prefix: String,
    /// The target of a ban rule (`DROP`; `REJECT` as fail2ban's default `blocktype`).
    pub target: String,
    /// How the tools run.
    pub exec: Executor,
}

impl Default for IptablesOptions {
    fn default() -> Self {
        Self {
            chain: "banxdp".into(),
            jail_prefix: "bx-".into(),
            target: "DROP".into(),
            exec: Executor::default(),
        }
    }
}

/// The rule-per-address enforcer.
pub struct IptablesEnforcer {
    options: IptablesOptions,
    jails: BTreeMap<String, JailScope>,
    allowed: Vec<IpNet>,
    book: Book,
}

impl IptablesEnforcer {
    /// Creates (or adopts) our chain in both families and hooks it into `INPUT`.
    pub fn new(options: IptablesOptions) -> Result<Self, Error> {
        let enforcer = Self {
            options,
            jails: BTreeMap::new(),
            allowed: Vec::new(),
            book: Book::default(),
        };
        for family in Family::BOTH {
            restore(
                &enforcer.options.exec,
                family,
                &enforcer.main_chain(family, &[]),
            )?;
            hook(&enforcer.options.exec, family, &enforcer.options.chain)?;
        }
        Ok(enforcer)
    }

    fn jail_chain(&self, jail: &str) -> String {
        let room = CHAIN_MAX - self.options.jail_prefix.len().min(CHAIN_MAX - 10);
        format!("{}{}", self.options.jail_prefix, safe_name(jail, room))
    }

    /// Our chain, declared (so flushed) and refilled; `fresh` jail chains are declared too.
    fn main_chain(&self, family: Family, fresh: &[&str]) -> String {
        let chain = &self.options.chain;
        let mut s = format!(":{chain} - [0:0]\n");
        for jail in fresh {
            let _ = writeln!(s, ":{} - [0:0]", self.jail_chain(jail));
        }
        for net in self.allowed.iter().filter(|n| Family::of(**n) == family) {
            let _ = writeln!(s, "-A {chain} -s {net} -j RETURN");
        }
        for jail in self.jails.values() {
            for ports in port_matches(&jail.ports) {
                let _ = writeln!(s, "-A {chain}{ports} -j {}", self.jail_chain(&jail.name));
            }
        }
        s
    }

    /// The rule of `jail`'s ban of `target` (without `-I`/`-D`).
    fn rule(&self, jail: &str, target: IpNet) -> String {
        let shadow = self.jails.get(jail).is_some_and(|j| j.shadow);
        let chain = self.jail_chain(jail);
        if shadow {
            format!("{chain} -s {target}")
        } else {
            format!("{chain} -s {target} -j {}", self.options.target)
        }
    }

    /// Runs per-family bodies built from `(target, line)` pairs.
    fn restore_lines(&self, lines: &[(IpNet, String)]) -> Result<(), Error> {
        for family in Family::BOTH {
            let mut body = String::new();
            for (_, line) in lines.iter().filter(|(t, _)| Family::of(*t) == family) {
                body.push_str(line);
                body.push('\n');
            }
            restore(&self.options.exec, family, &body)?;
        }
        Ok(())
    }
}

impl Enforcer for IptablesEnforcer {
    fn name(&self) -> &'static str {
        "iptables"
    }

    fn describe(&self) -> String {
        format!("iptables: chain {}, a rule per address", self.options.chain)
    }

    fn add_jail(&mut self, jail: &JailScope) -> Result<(), Error> {
        if jail.ports.is_empty() {
            return Err(Error::EmptyPortScope {
                jail: jail.name.clone(),
            });
        }
        let previous = self.jails.insert(jail.name.clone(), jail.clone());
        // A jail new to this process gets a fresh (flushed) chain: the restore refills it. A
        // jail whose shadow mode changed gets its rules rewritten with the other target.
        let rewrite = previous.as_ref().is_some_and(|p| p.shadow != jail.shadow);
        let fresh: Vec<&str> = if previous.is_none() || rewrite {
            vec![jail.name.as_str()]
        } else {
            Vec::new()
        };
        for family in Family::BOTH {
            let mut body = self.main_chain(family, &fresh);
            if rewrite {
                for (target, _) in self.book.of_jail(&jail.name) {
                    if Family::of(target) == family {
                        let _ = writeln!(body, "-I {}", self.rule(&jail.name, target));
                    }
                }
            }
            restore(&self.options.exec, family, &body)?;
        }
        Ok(())
    }

    fn remove_jail(&mut self, name: &str) -> Result<(), Error> {
        if self.jails.remove(name).is_none() {
            return Err(Error::UnknownJail(name.to_string()));
        }
        let chain = self.jail_chain(name);
        for family in Family::BOTH {
            let body = self.main_chain(family, &[]) + &format!("-F {chain}\n-X {chain}\n");
            restore(&self.options.exec, family, &body)?;
        }
        self.book.remove_jail(name);
        Ok(())
    }

    fn ban_many(&mut self, bans: &[Ban]) -> Result<(), Error> {
        let now = SystemTime::now();
        let mut lines = Vec::new();
        let mut added = Vec::new();
        for ban in bans {
            if !self.jails.contains_key(&ban.jail) {
                return Err(Error::UnknownJail(ban.jail.clone()));
            }
            let target = normalize(ban.target);
            if remaining(ban.expiry, now).is_none() {
                continue;
            }
            if self.book.ban(&ban.jail, target, ban.expiry).is_none() {
                lines.push((target, format!("-I {}", self.rule(&ban.jail, target))));
                added.push((ban.jail.as_str(), target));
            }
        }
        let result = self.restore_lines(&lines);
        if result.is_err() {
            // A family's transaction that failed changed nothing; forget what it carried.
            for (jail, target) in added {
                self.book.unban(jail, target);
            }
        }
        result
    }

    fn unban(&mut self, jail: &str, target: IpNet) -> Result<(), Error> {
        if !self.jails.contains_key(jail) {
            return Err(Error::UnknownJail(jail.to_string()));
        }
        let target = normalize(target);
        if self.book.holds(jail, target) {
            let line = format!("-D {}", self.rule(jail, target));
            self.restore_lines(&[(target, line)])?;
            self.book.unban(jail, target);
        }
        Ok(())
    }

    fn set_allowed(&mut self, nets: &[IpNet]) -> Result<(), Error> {
        self.allowed = nets.iter().map(|n| normalize(*n)).collect();
        for family in Family::BOTH {
            restore(&self.options.exec, family, &self.main_chain(family, &[]))?;
        }
        Ok(())
    }

    fn active(&self) -> Result<Vec<ActiveBan>, Error> {
        Ok(self.book.active())
    }

    fn remove_expired(&mut self) -> Result<usize, Error> {
        let now = SystemTime::now();
        let ended: Vec<(String, IpNet)> = self
            .book
            .active()
            .into_iter()
            .flat_map(|b| {
                let target = b.target;
                b.jails.into_iter().map(move |j| (j, target))
            })
            .filter(|(j, t)| {
                self.book
                    .expiry(j, *t)
                    .is_some_and(|e| e != Expiry::Never && remaining(e, now).is_none())
            })
            .collect();
        let lines: Vec<(IpNet, String)> = ended
            .iter()
            .map(|(j, t)| (*t, format!("-D {}", self.rule(j, *t))))
            .collect();
        self.restore_lines(&lines)?;
        self.book.remove_expired(now);
        Ok(ended.len())
    }

    fn detach(self: Box<Self>) -> Result<(), Error> {
        for family in Family::BOTH {
            // Jail chains of this process and of earlier ones (jails since removed).
            let listing = self
                .options
                .exec
                .run(&Command::new([family.tool(), "-w", "-S"]))?;
            let chains = chains_with_prefix(&listing.stdout, &self.options.jail_prefix);
            unhook(&self.options.exec, family, &self.options.chain, &chains)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiport_matches_split_by_protocol_and_fifteen_ports() {
        let scope = PortScope::Ports {
            protocols: vec![6, 17],
            ranges: (1..=9)
                .map(|p| p * 10..=p * 10)
                .chain([100..=200])
                .collect(),
        };
        let m = port_matches(&scope);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0], " -p tcp -m multiport --dports 10,20,30,40,50,60,70");
        assert_eq!(m[1], " -p tcp -m multiport --dports 80,90,100:200");
        assert!(m[2].starts_with(" -p udp"));
        assert_eq!(port_matches(&PortScope::All), [""]);
        let split = PortScope::PerProtocol(vec![
            ProtocolPorts {
                protocol: 17,
                ranges: vec![53..=53],
            },
            ProtocolPorts {
                protocol: 6,
                ranges: vec![2222..=2222, 22..=22],
            },
        ]);
        assert_eq!(
            port_matches(&split),
            [
                " -p tcp -m multiport --dports 22,2222",
                " -p udp -m multiport --dports 53"
            ]
        );
    }

    #[test]
    fn the_main_chain_lists_the_allow_list_first() {
        let mut e = IptablesEnforcer {
            options: IptablesOptions::default(),
            jails: BTreeMap::new(),
            allowed: vec![
                "192.0.2.0/24".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
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
                shadow: false,
            },
        );
        assert_eq!(
            e.main_chain(Family::V4, &["sshd"]),
            ":banxdp - [0:0]\n:bx-sshd - [0:0]\n-A banxdp -s 192.0.2.0/24 -j RETURN\n\
             -A banxdp -p tcp -m multiport --dports 22 -j bx-sshd\n"
        );
        assert_eq!(
            e.rule("sshd", "192.0.2.7/32".parse().unwrap()),
            "bx-sshd -s 192.0.2.7/32 -j DROP"
        );
        assert!(e.jail_chain(&"j".repeat(60)).len() <= CHAIN_MAX);
    }

    #[test]
    fn leftover_chains_are_found_by_prefix() {
        let listing = "-P INPUT ACCEPT\n-N banxdp\n-N bx-sshd\n-N f2b-sshd\n-N bx-old_1a2b3c4d\n\
                       -A INPUT -j banxdp\n";
        assert_eq!(
            chains_with_prefix(listing, "bx-"),
            ["bx-sshd", "bx-old_1a2b3c4d"]
        );
    }
}
