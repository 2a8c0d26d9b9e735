//! The nftables backend: banxdp's own table (`inet banxdp`), sets whose elements carry their
//! own timeout (expiry is the kernel's), per-jail rules with the jail's port scope, the allow
//! list first, and every change as one `nft -f -` transaction.
//!
//! Layout, per jail and family: a hash set of addresses (`<jail>_h4`, `flags timeout`), and an
//! interval set of networks per prefix length in use (`<jail>_n4_24`, `flags interval,
//! timeout`), made when its first network is banned. An interval set refuses an element that
//! overlaps one it holds (`auto-merge` would take it, but merged into the other's timeout), and
//! two networks of one length are equal or apart: so nested bans (`/16` and a `/24` in it,
//! each with its own end) each hold. Addresses have sets of their own because a ban's timeout
//! is replaced by `add; delete; add` of the element in one transaction, which the kernel
//! accepts for a hash set whether or not the element is there. The chain `input` is
//! rewritten whole (flushed and refilled in the same transaction) whenever jails or the allow
//! list change, so that restarting never duplicates a rule. Sets outlive the process: a
//! restart keeps enforcing, and `detach` deletes the table.
//!
//! The script text is built by pure functions from parsed values only (`IpNet`, port numbers,
//! names made safe by [`safe_name`]): nothing from a log line reaches nft as text.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    time::{Duration, SystemTime},
};

use ipnet::IpNet;

use super::{
    ActiveBan, Ban, Enforcer, Error, JailScope, PortScope,
    book::{Book, is_host, normalize, remaining, safe_name},
    exec::{Command, Executor},
    ranges_text,
};

/// Elements per `add element` statement; a transaction holds any number of statements.
const CHUNK: usize = 4096;

/// How the nftables backend is set up.
#[derive(Clone, Debug)]
pub struct NftOptions {
    /// The table, in the `inet` family (`banxdp`).
    pub table: String,
    /// The input chain's priority (`-10`: before the usual `filter` chains).
    pub priority: i32,
    /// How `nft` runs.
    pub exec: Executor,
}

impl Default for NftOptions {
    fn default() -> Self {
        Self {
            table: "banxdp".into(),
            priority: -10,
            exec: Executor::default(),
        }
    }
}

/// A jail's sets: addresses per family, and networks per family and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SetKind {
    Host4,
    Host6,
    Net4(u8),
    Net6(u8),
}

impl SetKind {
    /// The sets every jail has from the start.
    const HOSTS: [Self; 2] = [Self::Host4, Self::Host6];

    fn of(target: IpNet) -> Self {
        match (target, is_host(target)) {
            (IpNet::V4(_), true) => Self::Host4,
            (IpNet::V6(_), true) => Self::Host6,
            (IpNet::V4(_), false) => Self::Net4(target.prefix_len()),
            (IpNet::V6(_), false) => Self::Net6(target.prefix_len()),
        }
    }

    fn suffix(self) -> String {
        match self {
            Self::Host4 => "h4".into(),
            Self::Host6 => "h6".into(),
            Self::Net4(len) => format!("n4_{len}"),
            Self::Net6(len) => format!("n6_{len}"),
        }
    }

    /// The kind a set's name ends in (after `j_<jail>_`), if it is one of ours.
    fn from_suffix(suffix: &str) -> Option<Self> {
        match suffix {
            "h4" => return Some(Self::Host4),
            "h6" => return Some(Self::Host6),
            _ => {}
        }
        let (family, len) = suffix.split_once('_')?;
        let len: u8 = len.parse().ok().filter(|l: &u8| l.to_string() == len)?;
        match family {
            "n4" if len <= 32 => Some(Self::Net4(len)),
            "n6" if len <= 128 => Some(Self::Net6(len)),
            _ => None,
        }
    }

    const fn is_v4(self) -> bool {
        matches!(self, Self::Host4 | Self::Net4(_))
    }

    /// The set's declaration body.
    const fn spec(self) -> &'static str {
        match self {
            Self::Host4 => "type ipv4_addr; flags timeout;",
            Self::Net4(_) => "type ipv4_addr; flags interval, timeout;",
            Self::Host6 => "type ipv6_addr; flags timeout;",
            Self::Net6(_) => "type ipv6_addr; flags interval, timeout;",
        }
    }
}

/// The name of `jail`'s set of `kind`.
fn set_name(jail: &str, kind: SetKind) -> String {
    format!("j_{}_{}", safe_name(jail, 200), kind.suffix())
}

/// The kind of `jail`'s set named `name`, if it is one.
fn kind_in(jail: &str, name: &str) -> Option<SetKind> {
    name.strip_prefix(&format!("j_{}_", safe_name(jail, 200)))
        .and_then(SetKind::from_suffix)
}

/// The sets an `nft list table` text declares.
fn listed_sets(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("set ")?.strip_suffix(" {"))
        .map(str::to_string)
        .collect()
}

/// `nft` text for an element: the address alone for a host, CIDR for a network.
fn element(target: IpNet) -> String {
    if is_host(target) {
        target.addr().to_string()
    } else {
        target.to_string()
    }
}

/// The table, its input chain and the allow-list sets (idempotent: `add` of what exists is
/// no change).
#[must_use]
pub fn base_script(options: &NftOptions) -> String {
    let t = &options.table;
    format!(
        "add table inet {t}\n\
         add chain inet {t} input {{ type filter hook input priority {}; policy accept; }}\n\
         add set inet {t} allow4 {{ type ipv4_addr; flags interval; auto-merge; }}\n\
         add set inet {t} allow6 {{ type ipv6_addr; flags interval; auto-merge; }}\n",
        options.priority
    )
}

/// Declarations of `jail`'s sets of `kinds`.
fn sets_script(table: &str, jail: &str, kinds: impl IntoIterator<Item = SetKind>) -> String {
    let mut s = String::new();
    for kind in kinds {
        let _ = writeln!(
            s,
            "add set inet {table} {} {{ {} }}",
            set_name(jail, kind),
            kind.spec()
        );
    }
    s
}

/// The matches of a port scope (`meta l4proto { tcp } th dport { 22, 80-90 }`), one per
/// group of protocols with the same ports; a single empty match for all.
fn port_matches(scope: &PortScope) -> Vec<String> {
    let Some(groups) = scope.grouped() else {
        return vec![String::new()];
    };
    groups
        .into_iter()
        .map(|g| {
            format!(
                " meta l4proto {{ {} }} th dport {{ {} }}",
                g.names(", "),
                ranges_text(&g.ranges, '-', ", ")
            )
        })
        .collect()
}

/// The input chain, rewritten whole: the allow list first, then each jail's rules (count and drop,
/// or count only for a jail in shadow mode).
#[must_use]
fn chain_script<'a>(
    table: &str,
    jails: impl IntoIterator<Item = (&'a JailScope, Vec<SetKind>)>,
) -> String {
    let mut s = format!(
        "flush chain inet {table} input\n\
         add rule inet {table} input ip saddr @allow4 accept\n\
         add rule inet {table} input ip6 saddr @allow6 accept\n"
    );
    for (jail, kinds) in jails {
        let matches = port_matches(&jail.ports);
        let verdict = if jail.shadow {
            "counter"
        } else {
            "counter drop"
        };
        for kind in kinds {
            let family = if kind.is_v4() { "ip" } else { "ip6" };
            let set = set_name(&jail.name, kind);
            for ports in &matches {
                let _ = writeln!(
                    s,
                    "add rule inet {table} input {family} saddr @{set}{ports} {verdict}"
                );
            }
        }
    }
    s
}

/// One element to write: its set, the target, its remaining time (`None`: permanent) and
/// whether the set may already hold it (then its timeout is replaced by delete and add).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Put {
    set: String,
    jail: String,
    kind: SetKind,
    target: IpNet,
    timeout: Option<Duration>,
    replace: bool,
}

/// `add element` statements for `puts`, `CHUNK` elements each, grouped by set.
#[must_use]
pub fn elements_script(table: &str, puts: &[Put]) -> String {
    let mut by_set: BTreeMap<&str, Vec<&Put>> = BTreeMap::new();
    for put in puts {
        by_set.entry(&put.set).or_default().push(put);
    }
    let mut s = String::new();
    for (set, puts) in by_set {
        let replaced: Vec<&&Put> = puts.iter().filter(|p| p.replace).collect();
        for chunk in replaced.chunks(CHUNK) {
            let list: Vec<String> = chunk.iter().map(|p| element(p.target)).collect();
            let list = list.join(", ");
            let _ = writeln!(s, "add element inet {table} {set} {{ {list} }}");
            let _ = writeln!(s, "delete element inet {table} {set} {{ {list} }}");
        }
        for chunk in puts.chunks(CHUNK) {
            let list: Vec<String> = chunk
                .iter()
                .map(|p| match p.timeout {
                    None => element(p.target),
                    Some(t) => format!("{} timeout {}ms", element(p.target), t.as_millis().max(1)),
                })
                .collect();
            let _ = writeln!(
                s,
                "add element inet {table} {set} {{ {} }}",
                list.join(", ")
            );
        }
    }
    s
}

/// Statements that remove `target` from `set` whether or not it is there.
fn remove_script(table: &str, set: &str, target: IpNet) -> String {
    let e = element(target);
    format!(
        "add element inet {table} {set} {{ {e} }}\ndelete element inet {table} {set} {{ {e} }}\n"
    )
}

/// The allow-list sets, replaced.
#[must_use]
pub fn allow_script(table: &str, nets: &[IpNet]) -> String {
    let mut s = format!("flush set inet {table} allow4\nflush set inet {table} allow6\n");
    for (set, v4) in [("allow4", true), ("allow6", false)] {
        let list: Vec<String> = nets
            .iter()
            .map(|n| normalize(*n))
            .filter(|n| matches!(n, IpNet::V4(_)) == v4)
            .map(element)
            .collect();
        for chunk in list.chunks(CHUNK) {
            let _ = writeln!(
                s,
                "add element inet {table} {set} {{ {} }}",
                chunk.join(", ")
            );
        }
    }
    s
}

/// The nftables enforcer.
pub struct NftEnforcer {
    options: NftOptions,
    jails: BTreeMap<String, JailScope>,
    book: Book,
    /// The table was there before this process: its sets may hold elements the book lacks.
    adopted: bool,
    /// The sets of networks that exist, by name (made as the first network of their length
    /// is banned, or found in an adopted table).
    net_sets: BTreeSet<String>,
}

impl NftEnforcer {
    /// Creates (or adopts) the table, its chain and the allow-list sets.
    pub fn new(options: NftOptions) -> Result<Self, Error> {
        let probe = Command::new(["nft", "list", "table", "inet", options.table.as_str()]);
        let listed = options
            .exec
            .run_status(&probe)
            .ok()
            .filter(|(status, _)| status.success())
            .map(|(_, output)| output.stdout);
        let enforcer = Self {
            adopted: listed.is_some(),
            // Their rules come back as the jails are declared: a restart keeps enforcing.
            net_sets: listed
                .as_deref()
                .map(listed_sets)
                .unwrap_or_default()
                .into_iter()
                .collect(),
            options,
            jails: BTreeMap::new(),
            book: Book::default(),
        };
        enforcer.apply(base_script(&enforcer.options))?;
        Ok(enforcer)
    }

    /// Runs one transaction.
    fn apply(&self, script: String) -> Result<(), Error> {
        if script.is_empty() {
            return Ok(());
        }
        let command = Command::new(["nft", "-f", "-"]).with_stdin(script);
        self.options.exec.run(&command)?;
        Ok(())
    }

    fn rules(&self) -> String {
        chain_script(
            &self.options.table,
            self.jails
                .values()
                .map(|jail| (jail, self.kinds(&jail.name))),
        )
    }

    /// The sets `jail` has: its addresses', and its networks' by prefix length.
    fn kinds(&self, jail: &str) -> Vec<SetKind> {
        let nets = self.net_sets.iter().filter_map(|name| kind_in(jail, name));
        SetKind::HOSTS
            .into_iter()
            .chain(nets.filter(|k| !SetKind::HOSTS.contains(k)))
            .collect()
    }

    /// Declarations of the network sets `puts` need that do not exist yet, and the chain
    /// with their rules; those sets are noted as existing (see [`NftEnforcer::ban_many`]).
    fn new_sets_script(&mut self, puts: &[Put]) -> (String, Vec<String>) {
        let mut script = String::new();
        let mut made = Vec::new();
        for put in puts {
            if let kind @ (SetKind::Net4(_) | SetKind::Net6(_)) = put.kind {
                if self.net_sets.insert(put.set.clone()) {
                    script += &sets_script(&self.options.table, &put.jail, [kind]);
                    made.push(put.set.clone());
                }
            }
        }
        if !made.is_empty() {
            script += &self.rules();
        }
        (script, made)
    }

    /// The puts of `bans` at `now`, recorded in the book; ended bans are skipped.
    fn puts(&mut self, bans: &[Ban], now: SystemTime) -> Result<Vec<Put>, Error> {
        let mut puts = Vec::with_capacity(bans.len());
        for ban in bans {
            if !self.jails.contains_key(&ban.jail) {
                return Err(Error::UnknownJail(ban.jail.clone()));
            }
            let target = normalize(ban.target);
            let Some(timeout) = remaining(ban.expiry, now) else {
                continue;
            };
            let kind = SetKind::of(target);
            let held = self.book.ban(&ban.jail, target, ban.expiry);
            // A network set refuses `add; delete; add` of an element it lacks: replace only
            // one that is known to be there still.
            let replace = match kind {
                SetKind::Host4 | SetKind::Host6 => held.is_some() || self.adopted,
                SetKind::Net4(_) | SetKind::Net6(_) => held
                    .and_then(|e| remaining(e, now + Duration::from_secs(1)))
                    .is_some(),
            };
            puts.push(Put {
                set: set_name(&ban.jail, kind),
                jail: ban.jail.clone(),
                kind,
                target,
                timeout,
                replace,
            });
        }
        Ok(puts)
    }
}

impl Enforcer for NftEnforcer {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn describe(&self) -> String {
        format!("nftables: table inet {}", self.options.table)
    }

    fn add_jail(&mut self, jail: &JailScope) -> Result<(), Error> {
        if jail.ports.is_empty() {
            return Err(Error::EmptyPortScope {
                jail: jail.name.clone(),
            });
        }
        let previous = self.jails.insert(jail.name.clone(), jail.clone());
        let script = sets_script(&self.options.table, &jail.name, SetKind::HOSTS) + &self.rules();
        if let Err(err) = self.apply(script) {
            match previous {
                Some(old) => self.jails.insert(old.name.clone(), old),
                None => self.jails.remove(&jail.name),
            };
            return Err(err);
        }
        Ok(())
    }

    fn remove_jail(&mut self, name: &str) -> Result<(), Error> {
        let Some(old) = self.jails.remove(name) else {
            return Err(Error::UnknownJail(name.to_string()));
        };
        let mut script = self.rules();
        let kinds = self.kinds(name);
        for kind in &kinds {
            let set = set_name(name, *kind);
            let _ = writeln!(script, "delete set inet {} {set}", self.options.table);
        }
        if let Err(err) = self.apply(script) {
            self.jails.insert(name.to_string(), old);
            return Err(err);
        }
        for kind in kinds {
            self.net_sets.remove(&set_name(name, kind));
        }
        self.book.remove_jail(name);
        Ok(())
    }

    fn ban_many(&mut self, bans: &[Ban]) -> Result<(), Error> {
        let puts = self.puts(bans, SystemTime::now())?;
        let (mut script, made) = self.new_sets_script(&puts);
        script += &elements_script(&self.options.table, &puts);
        let result = self.apply(script);
        if result.is_err() {
            // The transaction changed nothing: neither may the book, nor the sets known.
            for ban in bans {
                self.book.unban(&ban.jail, normalize(ban.target));
            }
            for set in made {
                self.net_sets.remove(&set);
            }
        }
        result
    }

    fn unban(&mut self, jail: &str, target: IpNet) -> Result<(), Error> {
        if !self.jails.contains_key(jail) {
            return Err(Error::UnknownJail(jail.to_string()));
        }
        let target = normalize(target);
        let kind = SetKind::of(target);
        let set = set_name(jail, kind);
        // No set of its length: no such network was ever banned here.
        if SetKind::HOSTS.contains(&kind) || self.net_sets.contains(&set) {
            self.apply(remove_script(&self.options.table, &set, target))?;
        }
        self.book.unban(jail, target);
        Ok(())
    }

    fn set_allowed(&mut self, nets: &[IpNet]) -> Result<(), Error> {
        self.apply(allow_script(&self.options.table, nets))
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
        // The kernel has dropped the elements already; only the book is behind.
        Ok(self.book.remove_expired(SystemTime::now()).len())
    }

    fn detach(self: Box<Self>) -> Result<(), Error> {
        let t = &self.options.table;
        self.apply(format!("add table inet {t}\ndelete table inet {t}\n"))
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn net(s: &str) -> IpNet {
        crate::enforce::parse_target(s).unwrap()
    }

    #[test]
    fn chain_puts_the_allow_list_first_and_scopes_ports() {
        let sshd = JailScope {
            name: "sshd".into(),
            ports: PortScope::Ports {
                protocols: vec![6],
                ranges: vec![22..=22, 2200..=2299],
            },
            shadow: false,
        };
        let web = JailScope {
            name: "web-x".into(),
            ports: PortScope::All,
            shadow: true,
        };
        let kinds = vec![SetKind::Host4, SetKind::Host6, SetKind::Net4(24)];
        let s = chain_script(
            "banxdp",
            [(&sshd, kinds.clone()), (&web, kinds[..2].to_vec())],
        );
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "flush chain inet banxdp input");
        assert_eq!(
            lines[1],
            "add rule inet banxdp input ip saddr @allow4 accept"
        );
        assert_eq!(
            lines[3],
            "add rule inet banxdp input ip saddr @j_sshd_h4 meta l4proto { tcp } th dport { 22, 2200-2299 } counter drop"
        );
        assert_eq!(
            lines[5],
            "add rule inet banxdp input ip saddr @j_sshd_n4_24 meta l4proto { tcp } th dport { 22, 2200-2299 } counter drop"
        );
        assert!(lines[6].starts_with("add rule inet banxdp input ip saddr @j_web_x_"));
        assert!(lines[6].ends_with("h4 counter"), "{}", lines[6]);
        assert_eq!(lines.len(), 3 + 5);
    }

    #[test]
    fn ports_that_differ_by_protocol_get_a_rule_each() {
        let dns = JailScope {
            name: "dns".into(),
            ports: PortScope::union(&[
                PortScope::Ports {
                    protocols: vec![6],
                    ranges: vec![2222..=2222, 22..=22],
                },
                PortScope::Ports {
                    protocols: vec![17],
                    ranges: vec![53..=53],
                },
            ]),
            shadow: false,
        };
        let s = chain_script("banxdp", [(&dns, vec![SetKind::Host4])]);
        let rules: Vec<&str> = s.lines().skip(3).collect();
        assert_eq!(
            rules,
            [
                "add rule inet banxdp input ip saddr @j_dns_h4 meta l4proto { tcp } th dport { 22, 2222 } counter drop",
                "add rule inet banxdp input ip saddr @j_dns_h4 meta l4proto { udp } th dport { 53 } counter drop",
            ]
        );
    }

    #[test]
    fn set_names_tell_their_jail_and_prefix_length() {
        assert_eq!(set_name("sshd", SetKind::Net6(64)), "j_sshd_n6_64");
        assert_eq!(kind_in("sshd", "j_sshd_n6_64"), Some(SetKind::Net6(64)));
        assert_eq!(kind_in("sshd", "j_sshd_h4"), Some(SetKind::Host4));
        // Another jail's, a former layout's, or no length a family has.
        assert_eq!(kind_in("a", "j_a_n4_h4"), None);
        assert_eq!(kind_in("a_n4", "j_a_n4_24"), None);
        assert_eq!(kind_in("sshd", "j_sshd_n4"), None);
        assert_eq!(kind_in("sshd", "j_sshd_n4_33"), None);
        assert_eq!(kind_in("sshd", "j_sshd_n4_024"), None);
        let listed = "table inet banxdp {\n\tset allow4 {\n\t\ttype ipv4_addr\n\t}\n\tset j_sshd_n4_16 {\n\t}\n}\n";
        assert_eq!(listed_sets(listed), ["allow4", "j_sshd_n4_16"]);
    }

    #[test]
    fn elements_carry_timeouts_and_replacements_delete_first() {
        let puts = [
            Put {
                set: "j_sshd_h4".into(),
                jail: "sshd".into(),
                kind: SetKind::Host4,
                target: net("192.0.2.7"),
                timeout: Some(Duration::from_millis(1500)),
                replace: true,
            },
            Put {
                set: "j_sshd_n4_24".into(),
                jail: "sshd".into(),
                kind: SetKind::Net4(24),
                target: net("198.51.100.0/24"),
                timeout: None,
                replace: false,
            },
        ];
        assert_eq!(
            elements_script("t", &puts),
            "add element inet t j_sshd_h4 { 192.0.2.7 }\n\
             delete element inet t j_sshd_h4 { 192.0.2.7 }\n\
             add element inet t j_sshd_h4 { 192.0.2.7 timeout 1500ms }\n\
             add element inet t j_sshd_n4_24 { 198.51.100.0/24 }\n"
        );
    }

    #[test]
    fn large_batches_are_chunked_into_one_script() {
        let puts: Vec<Put> = (0..10_000u32)
            .map(|i| Put {
                set: "s".into(),
                jail: "s".into(),
                kind: SetKind::Host4,
                target: IpNet::from(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i))),
                timeout: None,
                replace: false,
            })
            .collect();
        let s = elements_script("t", &puts);
        assert_eq!(s.lines().count(), 10_000usize.div_ceil(CHUNK));
        assert!(s.contains("10.0.39.15"));
    }

    #[test]
    fn allow_list_splits_families_and_normalizes() {
        let s = allow_script("t", &[net("::ffff:192.0.2.9"), net("2001:db8::1/64")]);
        assert!(s.contains("add element inet t allow4 { 192.0.2.9 }"), "{s}");
        assert!(
            s.contains("add element inet t allow6 { 2001:db8::/64 }"),
            "{s}"
        );
    }

    #[test]
    fn removal_never_fails_on_a_missing_element() {
        assert_eq!(
            remove_script("t", "s", net("2001:db8::7")),
            "add element inet t s { 2001:db8::7 }\ndelete element inet t s { 2001:db8::7 }\n"
        );
    }
}
