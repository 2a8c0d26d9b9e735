//! The running jails: for each, its filter's scanner and its state machine, and which of the
//! log sources' follow specs feed it. Lines in, ban decisions out; the daemon enforces them.
//!
//! Building a jail gathers the facts its parameters need from the machine (the text of
//! /etc/services, the local addresses for `ignoreself`, DNS answers for `ignoreip` names):
//! the one place here that does I/O besides `ignorecommand`. A jail that cannot be built is
//! reported with its reason and left out; the others run.

use std::{
    collections::HashMap,
    net::{IpAddr, ToSocketAddrs as _},
    path::PathBuf,
    time::Duration,
};

use ipnet::IpNet;

use super::{Bans, DaemonError};
use crate::{
    config::jails::{Bantime, JailConfig},
    enforce::Enforcer,
    filter::{
        Scanner,
        date::{Clock, Zone},
    },
    jail::{
        self, Decision, Env, IgnoreCommand, IgnoreCommandError, Jail, JailParams, Services, Verdict,
    },
    source::{Batch, Encoding, FollowSpec, JailSource, JournalSpec, Position},
    store::{LogPosition, Store},
};

/// How long `ignorecommand` may run before the failure counts anyway.
const IGNORECOMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `command` on a decided ban's address, bounded by [`IGNORECOMMAND_TIMEOUT`]: blocking,
/// so the daemon calls it on a thread of tokio's blocking pool.
pub fn ask_ignorecommand(
    command: &IgnoreCommand,
    target: IpNet,
) -> Result<Verdict, IgnoreCommandError> {
    command.check(target.addr(), IGNORECOMMAND_TIMEOUT)
}

/// One jail at work.
pub struct JailRun {
    pub config: JailConfig,
    /// `backend = systemd`: what the jail reads from the journal.
    pub journal: Option<JournalSpec>,
    scanner: Scanner,
    pub state: Jail,
    zone: Zone,
    /// When the jail last warned of a line dated far from the present.
    odd_date_warned: i64,
}

/// How far from the present (seconds) a new line's date may be before it is taken as wrong.
const ODD_DATE: i64 = 60;

impl JailRun {
    /// The failures of one scanned line through the jail's state machine: the bans it
    /// decides go to `decided`.
    fn decide(
        &mut self,
        scanned: &crate::filter::Scanned,
        line: &str,
        now: i64,
        decided: &mut Vec<(String, Decision)>,
    ) {
        let time = scanned.time.unwrap_or(now);
        for failure in &scanned.failures {
            if failure.nofail {
                continue;
            }
            let targets = jail::targets(&failure.host, self.state.params().usedns, &resolve);
            if targets.warn {
                tracing::warn!(
                    "[{}] host name resolved (usedns = warn): {line}",
                    self.config.name
                );
            }
            for target in targets.nets {
                if let Some(decision) = self.state.failure(target, time, line, now) {
                    decided.push((self.config.name.clone(), decision));
                }
            }
        }
    }

    /// A line written while its file was followed, dated more than [`ODD_DATE`] away from
    /// the present, happened now: its date is wrong (a log in another time zone than the
    /// jail's `logtimezone`, a clock off), as fail2ban reads such lines, saying so once a day.
    fn in_operation(&mut self, scanned: &mut crate::filter::Scanned, line: &str, now: i64) {
        let Some(time) = scanned.time.filter(|t| (t - now).abs() > ODD_DATE) else {
            return;
        };
        scanned.time = Some(now);
        if scanned.failures.is_empty() || self.odd_date_warned > now - 86_400 {
            return;
        }
        self.odd_date_warned = now;
        let (off, side) = if time < now {
            (now - time, "before")
        } else {
            (time - now, "after")
        };
        tracing::warn!(
            "[{}] a new line is dated {off} s {side} the present: taken as happening now, as \
             fail2ban does (check the jail's logtimezone and the clocks; said once a day): {line}",
            self.config.name
        );
    }

    #[must_use]
    pub fn currently_failed(&self) -> u64 {
        self.state.currently_failed() as u64
    }

    #[must_use]
    pub fn total_failed(&self) -> u64 {
        self.state.total_failed()
    }

    /// The files among `followed` that this jail's `logpath` names.
    #[must_use]
    pub fn files(&self, followed: &[PathBuf]) -> Vec<String> {
        let patterns: Vec<glob::Pattern> = self
            .config
            .logpaths
            .iter()
            .filter_map(|l| {
                glob::Pattern::new(&FollowSpec::from_logpath(l, Encoding::Auto, false).pattern).ok()
            })
            .collect();
        followed
            .iter()
            .filter(|f| patterns.iter().any(|p| p.matches_path(f)))
            .map(|f| f.display().to_string())
            .collect()
    }
}

/// Every running jail, in configuration order.
pub struct Jails {
    runs: Vec<JailRun>,
    specs: Vec<FollowSpec>,
    /// Follow spec index → jail index.
    owner: Vec<usize>,
}

/// `logtimezone`: `UTC`, `UTC+0200`, `-0130`; anything else (or none) is local time.
fn zone(c: &JailConfig) -> Zone {
    let Some(text) = c.logtimezone.as_deref().map(str::trim) else {
        return Zone::Local;
    };
    let offset = text
        .strip_prefix("UTC")
        .or_else(|| text.strip_prefix("GMT"))
        .unwrap_or(text);
    if offset.is_empty() {
        return Zone::Offset(0);
    }
    let (sign, digits) = match offset.as_bytes().first() {
        Some(b'+') => (1, &offset[1..]),
        Some(b'-') => (-1, &offset[1..]),
        _ => return Zone::Local,
    };
    match (digits.len(), digits.parse::<i32>()) {
        (4, Ok(hhmm)) => Zone::Offset(sign * (hhmm / 100 * 60 + hhmm % 100)),
        _ => Zone::Local,
    }
}

/// The machine's own addresses (`ignoreself`).
fn local_addresses() -> Vec<IpAddr> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that freeifaddrs releases; every
    // node's `ifa_addr` is checked for null and read according to its family.
    unsafe {
        if libc::getifaddrs(&raw mut list) != 0 {
            return found;
        }
        let mut node = list;
        while !node.is_null() {
            let addr = (*node).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let v4 = addr.cast::<libc::sockaddr_in>().read_unaligned();
                        found.push(IpAddr::from(u32::from_be(v4.sin_addr.s_addr).to_be_bytes()));
                    }
                    libc::AF_INET6 => {
                        let v6 = addr.cast::<libc::sockaddr_in6>().read_unaligned();
                        found.push(IpAddr::from(v6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            node = (*node).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    found.sort();
    found.dedup();
    found
}

/// A host name's addresses, through the system's resolver (empty when it has none).
fn resolve(name: &str) -> Vec<IpAddr> {
    let mut found: Vec<IpAddr> = (name, 0)
        .to_socket_addrs()
        .map(|addrs| addrs.map(|a| a.ip()).collect())
        .unwrap_or_default();
    found.sort();
    found.dedup();
    found
}

fn build_one(c: &JailConfig, env: &Env<'_>, year: i32) -> Result<(Scanner, Jail), String> {
    let params = JailParams::from_config(c, env).map_err(|e| e.to_string())?;
    for name in &params.ignore.unresolved {
        tracing::warn!(
            "jail `{}`: ignoreip `{name}` resolves to no address",
            c.name
        );
    }
    let scanner = Scanner::new(&c.filter_spec(), year)
        .map_err(|e| format!("jail `{}`: filter: {:#}", c.name, anyhow::Error::from(e)))?;
    if let Some(hint) = blocks_anyway(c, params.shadow) {
        tracing::info!("{hint}");
    }
    Ok((scanner, Jail::new(params)))
}

/// For a jail that names actions, none of which blocks traffic (`mail-whois` alone): that
/// banxdp enforces its bans all the same, where fail2ban would only have run the actions.
/// (banxdp's own configuration reads `action` as what runs beside its enforcement; an
/// /etc/fail2ban jail of that kind meant "tell me, do not block".)
fn blocks_anyway(c: &JailConfig, shadow: bool) -> Option<String> {
    let blocking = c
        .actions
        .iter()
        .any(|a| crate::action::is_firewall_action(&a.name));
    if shadow || c.actions.is_empty() || blocking {
        return None;
    }
    let names: Vec<&str> = c.actions.iter().map(|a| a.name.as_str()).collect();
    Some(format!(
        "jail `{}`: none of its actions ({}) blocks traffic; banxdp enforces its bans all the \
         same (`shadow = true` only counts them, as fail2ban would block nothing)",
        c.name,
        names.join(", ")
    ))
}

/// What the jails' parameters need from the machine, read at start and at each reload.
struct Machine {
    services: Services,
    local: Vec<IpAddr>,
}

impl Machine {
    fn read() -> Self {
        Self {
            services: Services::parse(
                &std::fs::read_to_string("/etc/services").unwrap_or_default(),
            ),
            local: local_addresses(),
        }
    }

    /// The facts for `jails` jails, seeded with `now`; one tracking budget for the whole
    /// daemon, whatever the number of jails.
    fn env(&self, jails: usize, now: i64) -> Env<'_> {
        Env {
            services: &self.services,
            local_addrs: &self.local,
            resolve: &resolve,
            seed: u64::try_from(now).unwrap_or(1),
            limits: jail::Limits::default().shared_by(jails),
        }
    }
}

impl Jails {
    /// Builds every jail of `configs` that can run, with the ban history of `store`.
    pub fn build(configs: &[JailConfig], store: &Store) -> Result<Self, DaemonError> {
        let machine = Machine::read();
        let env = machine.env(configs.len(), super::unix_now());
        let now = super::unix_now();
        let year = crate::filter::report::iso8601(now)[..4]
            .parse()
            .unwrap_or(2026);
        let mut jails = Self {
            runs: Vec::new(),
            specs: Vec::new(),
            owner: Vec::new(),
        };
        for c in configs {
            match build_one(c, &env, year) {
                Ok((scanner, state)) => jails.push(c.clone(), scanner, state),
                Err(message) => tracing::error!("{message}; the jail is disabled"),
            }
        }
        // Every jail's ban history in one pass over the store.
        store.each_history(now, |name, history| {
            if let Some(run) = jails.runs.iter_mut().find(|r| r.config.name == name) {
                let crate::store::History {
                    target,
                    ban_count,
                    start,
                    active,
                } = history;
                run.state.restore(target, ban_count, start, active);
            }
        })?;
        Ok(jails)
    }

    fn push(&mut self, config: JailConfig, scanner: Scanner, state: Jail) {
        let index = self.runs.len();
        let mut journal = None;
        match crate::source::for_jail(&config) {
            Ok(JailSource::Files(specs)) => {
                for spec in specs {
                    self.specs.push(spec);
                    self.owner.push(index);
                }
            }
            Ok(JailSource::Journal(mut spec)) => {
                // As fail2ban seeks: the failures of the last findtime count.
                spec.since = spec.since.or(Some(super::unix_now() - config.findtime));
                journal = Some(spec);
            }
            Err(error) => {
                tracing::warn!("{error}; it bans only through `banxdp ban`");
            }
        }
        let zone = zone(&config);
        self.runs.push(JailRun {
            config,
            journal,
            scanner,
            state,
            zone,
            odd_date_warned: i64::MIN,
        });
    }

    /// Declares every jail to the enforcer, and the union of their `ignoreip` as its allow
    /// list; a jail the enforcer refuses is reported and left out.
    pub fn declare(&mut self, enforcer: &mut (dyn Enforcer + Send)) {
        let mut refused = Vec::new();
        for run in &self.runs {
            let scope = run.state.params().scope();
            if let Err(e) = enforcer.add_jail(&scope) {
                tracing::error!(
                    "jail `{}`: {:#}; the jail is disabled",
                    run.config.name,
                    anyhow::Error::from(e)
                );
                refused.push(run.config.name.clone());
            }
        }
        if !refused.is_empty() {
            let keep: Vec<JailRun> = std::mem::take(&mut self.runs)
                .into_iter()
                .filter(|r| !refused.contains(&r.config.name))
                .collect();
            self.rebuild_specs(keep);
        }
        // The kernel's allow list is shared by every jail, `ignoreip` is per jail: only what
        // every jail ignores goes there (each jail still drops its own ignored failures).
        let mut lists = self
            .runs
            .iter()
            .map(|r| r.state.params().ignore.allowed_nets());
        let mut allowed: Vec<IpNet> = lists.next().unwrap_or_default();
        for list in lists {
            allowed.retain(|net| list.contains(net));
        }
        allowed.sort();
        allowed.dedup();
        if let Err(e) = enforcer.set_allowed(&allowed) {
            tracing::error!("allow list (ignoreip): {:#}", anyhow::Error::from(e));
        }
    }

    fn rebuild_specs(&mut self, runs: Vec<JailRun>) {
        self.specs.clear();
        self.owner.clear();
        for run in runs {
            let JailRun {
                config,
                scanner,
                state,
                ..
            } = run;
            self.push(config, scanner, state);
        }
    }

    /// What the log sources must follow.
    #[must_use]
    pub fn follow_specs(&self) -> Vec<FollowSpec> {
        self.specs.clone()
    }

    /// Where each file that exists now was left, from the store.
    pub fn positions(&self, store: &Store) -> Result<HashMap<PathBuf, Position>, DaemonError> {
        let mut found = HashMap::new();
        for (spec, owner) in self.specs.iter().zip(&self.owner) {
            let jail = &self.runs[*owner].config.name;
            let Ok(paths) = glob::glob(&spec.pattern) else {
                continue;
            };
            for path in paths.flatten() {
                if let Some(position) = store.log_position(jail, &path)? {
                    let hash = position
                        .first_line_hash
                        .as_slice()
                        .try_into()
                        .map_or(0, u64::from_be_bytes);
                    found.insert(
                        path,
                        Position {
                            offset: position.offset,
                            first_line_hash: hash,
                        },
                    );
                }
            }
        }
        Ok(found)
    }

    /// The names of the running jails, in order.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.runs.iter().map(|r| r.config.name.clone()).collect()
    }

    #[must_use]
    pub fn get(&self, name: &str) -> Option<&JailRun> {
        self.runs.iter().find(|r| r.config.name == name)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut JailRun> {
        self.runs.iter_mut().find(|r| r.config.name == name)
    }

    /// Reads a batch of lines through every jail that follows its file; returns the bans
    /// decided, with their jail's name.
    pub fn lines(&mut self, batch: &Batch, now: i64) -> Vec<(String, Decision)> {
        let mut jails: Vec<usize> = batch
            .specs
            .iter()
            .filter_map(|s| self.owner.get(*s).copied())
            .collect();
        jails.sort_unstable();
        jails.dedup();
        let mut decided = Vec::new();
        for index in jails {
            let run = &mut self.runs[index];
            let clock = Clock {
                now,
                zone: run.zone,
            };
            for line in &batch.lines {
                let mut scanned = run.scanner.line(line, &clock);
                if batch.in_operation {
                    run.in_operation(&mut scanned, line, now);
                }
                run.decide(&scanned, line, now, &mut decided);
            }
        }
        decided
    }

    /// One journal entry of jail `name`, whose time (Unix microseconds) the journal gives.
    pub fn journal_line(
        &mut self,
        name: &str,
        line: &str,
        realtime_us: u64,
        now: i64,
    ) -> Vec<(String, Decision)> {
        let mut decided = Vec::new();
        if let Some(run) = self.get_mut(name) {
            let time = i64::try_from(realtime_us / 1_000_000).unwrap_or(now);
            let scanned = run.scanner.timed_line(line, time);
            run.decide(&scanned, line, now, &mut decided);
        }
        decided
    }

    /// The journals the jails read, by jail.
    #[must_use]
    pub fn journals(&self) -> Vec<JournalSpec> {
        self.runs.iter().filter_map(|r| r.journal.clone()).collect()
    }

    /// The jail's `ignorecommand`, which a decided ban waits for (off the event loop).
    #[must_use]
    pub fn ignorecommand(&self, name: &str) -> Option<IgnoreCommand> {
        self.get(name)?.state.params().ignorecommand.clone()
    }

    /// What a jail's `ignorecommand` said of a decided ban (see `ask_ignorecommand`); true
    /// when it spares the target, which the jail then forgets as banned.
    pub fn command_said(
        &mut self,
        name: &str,
        target: IpNet,
        said: &Result<Verdict, IgnoreCommandError>,
    ) -> bool {
        match said {
            Ok(Verdict::Ignore) => {
                if let Some(run) = self.get_mut(name) {
                    run.state.spared(target);
                }
                tracing::info!(
                    "[{name}] Ignore {} by command",
                    crate::control::proto::target_text(&target)
                );
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::error!("[{name}] ignorecommand: {e}; the ban stands");
                false
            }
        }
    }

    /// A manual ban in `name`; `None` when no such jail runs.
    pub fn manual_ban(
        &mut self,
        name: &str,
        target: IpNet,
        duration: Option<i64>,
        now: i64,
    ) -> Option<Decision> {
        let run = self.get_mut(name)?;
        let duration = duration.map(|d| {
            if d < 0 {
                Bantime::Permanent
            } else {
                Bantime::Seconds(d)
            }
        });
        Some(run.state.manual_ban(target, duration, now))
    }

    /// Frees the failure windows that `findtime` has closed.
    pub fn expire_failures(&mut self, now: i64) {
        for run in &mut self.runs {
            run.state.expire(now);
        }
    }

    /// `name`'s ban of `target` ended.
    pub fn unbanned(&mut self, name: &str, target: IpNet) {
        if let Some(run) = self.get_mut(name) {
            run.state.unbanned(target);
        }
    }

    /// Replaces the jails with `configs` (all of them, or only `only`), keeping every active
    /// ban of a jail that remains; bans of jails that are gone are lifted.
    pub fn reload(
        &mut self,
        configs: &[JailConfig],
        only: Option<&str>,
        bans: &mut Bans,
    ) -> Result<String, String> {
        let now = super::unix_now();
        let machine = Machine::read();
        let env = machine.env(configs.len(), now);
        let year = crate::filter::report::iso8601(now)[..4]
            .parse()
            .unwrap_or(2026);
        if let Some(name) = only
            && !configs.iter().any(|c| c.name == name)
        {
            return Err(format!("no jail `{name}` in the configuration"));
        }
        let old: Vec<JailRun> = std::mem::take(&mut self.runs);
        let mut kept = Vec::new();
        let mut rebuilt = Vec::new();
        for run in old {
            let replaced = only.is_none_or(|n| n == run.config.name);
            let new = configs.iter().find(|c| c.name == run.config.name);
            match (replaced, new) {
                (false, _) => kept.push(run),
                (true, Some(c)) => match build_one(c, &env, year) {
                    Ok((scanner, fresh)) => {
                        // The failures counted so far and the ban history stay.
                        let mut state = run.state;
                        state.reconfigure(fresh.params().clone());
                        rebuilt.push(c.name.clone());
                        kept.push(JailRun {
                            config: c.clone(),
                            journal: None,
                            scanner,
                            state,
                            zone: zone(c),
                            odd_date_warned: i64::MIN,
                        });
                    }
                    Err(message) => {
                        tracing::error!("{message}; keeping the running jail as it was");
                        kept.push(run);
                    }
                },
                (true, None) => {
                    for target in bans.of_jail(&run.config.name) {
                        let _ = bans.lift(&run.config.name, target, now);
                    }
                    let _ = bans.enforcer_mut().remove_jail(&run.config.name);
                    tracing::info!(
                        "jail `{}` is gone from the configuration: stopped",
                        run.config.name
                    );
                }
            }
        }
        if only.is_none() {
            let running: Vec<String> = kept.iter().map(|r| r.config.name.clone()).collect();
            for c in configs.iter().filter(|c| !running.contains(&c.name)) {
                match build_one(c, &env, year) {
                    Ok((scanner, state)) => {
                        rebuilt.push(c.name.clone());
                        kept.push(JailRun {
                            config: c.clone(),
                            journal: None,
                            scanner,
                            state,
                            zone: zone(c),
                            odd_date_warned: i64::MIN,
                        });
                    }
                    Err(message) => tracing::error!("{message}; the jail is disabled"),
                }
            }
        }
        self.rebuild_specs(kept);
        self.declare(bans.enforcer_mut());
        Ok(format!(
            "{} jail(s) read again: {}",
            rebuilt.len(),
            rebuilt.join(", ")
        ))
    }

    /// The jails that read `path`.
    #[must_use]
    pub fn readers(&self, specs: &[usize]) -> Vec<&str> {
        let mut names: Vec<&str> = specs
            .iter()
            .filter_map(|s| self.owner.get(*s))
            .map(|i| self.runs[*i].config.name.as_str())
            .collect();
        names.dedup();
        names
    }
}

/// The store's form of a follower's position.
#[must_use]
pub fn log_position(position: &Position) -> LogPosition {
    LogPosition {
        first_line_hash: position.first_line_hash.to_be_bytes().to_vec(),
        offset: position.offset,
    }
}
