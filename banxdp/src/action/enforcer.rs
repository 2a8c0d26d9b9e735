//! [`CommandEnforcer`]: enforcement through action.d commands only (`[enforce] backend =
//! actions`), as fail2ban enforces: each jail's [`ActionSet`] runs `actionban` and
//! `actionunban`, and this backend keeps the index of what it banned, with expiries, so that
//! it answers `active` and lifts expired bans itself (commands have no kernel-side expiry).
//!
//! Port scope lives in the action files (the jail's `port`/`protocol` reach them as tags);
//! the allow list and shadow mode are applied here: an allowed or shadowed ban is held but its
//! `actionban` does not run (and a ban that becomes allowed is unbanned).

use std::{
    collections::{BTreeMap, HashMap},
    time::SystemTime,
};

use ipnet::IpNet;

use super::{ActionSet, BanInfo, Context};
use crate::enforce::{ActiveBan, Ban, Enforcer, Error, Expiry, JailScope};

/// A ban this backend holds.
#[derive(Debug)]
struct Held {
    info: BanInfo,
    expiry: Expiry,
    /// `actionban` ran (and `actionunban` is owed).
    applied: bool,
}

/// Bans carried out by action.d commands.
#[derive(Debug)]
pub struct CommandEnforcer {
    sets: HashMap<String, ActionSet>,
    jails: HashMap<String, JailScope>,
    bans: BTreeMap<(String, IpNet), Held>,
    allowed: Vec<IpNet>,
    ctx: Context,
}

impl CommandEnforcer {
    /// A backend running `sets` (one per jail); jails declared without a set run no command.
    #[must_use]
    pub fn new(sets: Vec<ActionSet>, ctx: Context) -> Self {
        Self {
            sets: sets
                .into_iter()
                .map(|s| (s.jail().to_string(), s))
                .collect(),
            jails: HashMap::new(),
            bans: BTreeMap::new(),
            allowed: Vec::new(),
            ctx,
        }
    }

    /// Applies a ban with what the jail knows of it (failures, matches, fields), which the
    /// trait's [`Ban`] does not carry. `info.ip` is replaced by the ban's target.
    pub fn ban_with(&mut self, ban: &Ban, mut info: BanInfo) -> Result<(), Error> {
        info.ip = ban.target;
        info.bantime = bantime(ban.expiry, info.time);
        self.hold(ban, info)
    }

    /// Applies bans restored at start: actions marked `norestored` skip them.
    pub fn restore(&mut self, bans: &[Ban]) -> Result<(), Error> {
        self.each_ban(bans, true)
    }

    fn each_ban(&mut self, bans: &[Ban], restored: bool) -> Result<(), Error> {
        let now = (self.ctx.clock)();
        let mut first = Ok(());
        for ban in bans {
            let mut info = BanInfo::new(ban.target, now);
            info.bantime = bantime(ban.expiry, now);
            info.restored = restored;
            if let Err(e) = self.hold(ban, info) {
                first = first.and(Err(e));
            }
        }
        first
    }

    fn is_allowed(&self, target: &IpNet) -> bool {
        self.allowed.iter().any(|a| a.contains(target))
    }

    fn hold(&mut self, ban: &Ban, info: BanInfo) -> Result<(), Error> {
        let scope = self
            .jails
            .get(&ban.jail)
            .ok_or_else(|| Error::UnknownJail(ban.jail.clone()))?;
        // A ban whose time is up (a restore after a long stop) runs nothing: its commands
        // would only be undone at the next expiry sweep.
        if matches!(ban.expiry, Expiry::At(end) if end <= info.time) {
            return Ok(());
        }
        let key = (ban.jail.clone(), ban.target);
        if let Some(held) = self.bans.get_mut(&key) {
            // Banned already: only the expiry moves (idempotent, as every backend).
            held.expiry = held.expiry.max(ban.expiry);
            return Ok(());
        }
        let apply = !scope.shadow && !self.is_allowed(&ban.target);
        if !apply {
            tracing::info!(jail = %ban.jail, target = %ban.target, shadow = scope.shadow, "ban held without running its actions");
        }
        let result = match self.sets.get_mut(&ban.jail) {
            Some(set) if apply => set.ban(&info),
            _ => Ok(()),
        };
        self.bans.insert(
            key,
            Held {
                info,
                expiry: ban.expiry,
                applied: apply,
            },
        );
        result.map_err(Error::from)
    }

    fn lift(&mut self, jail: &str, held: &Held) -> Result<(), Error> {
        match self.sets.get_mut(jail) {
            Some(set) if held.applied => set.unban(&held.info).map_err(Error::from),
            _ => Ok(()),
        }
    }

    /// The jails' names with the actions each runs, for `status` and `dump`.
    #[must_use]
    pub fn actions(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = self
            .sets
            .values()
            .map(|s| {
                (
                    s.jail().to_string(),
                    s.names().iter().map(|n| (*n).to_string()).collect(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Brings each of these held bans in line with the allow list and its jail's shadow
    /// mode: carried out when neither spares it, lifted when one does.
    fn settle(&mut self, keys: Vec<(String, IpNet)>) -> Result<(), Error> {
        let mut first = Ok(());
        for key in keys {
            let allowed = self.is_allowed(&key.1);
            let shadow = self.jails.get(&key.0).is_some_and(|s| s.shadow);
            let (Some(held), Some(set)) = (self.bans.get_mut(&key), self.sets.get_mut(&key.0))
            else {
                continue;
            };
            let result = if held.applied && (allowed || shadow) {
                held.applied = false;
                set.unban(&held.info)
            } else if !held.applied && !allowed && !shadow {
                held.applied = true;
                set.ban(&held.info)
            } else {
                Ok(())
            };
            first = first.and(result.map_err(Error::from));
        }
        first
    }
}

/// `<bantime>` in seconds from the ban's expiry; -1 for a permanent ban.
fn bantime(expiry: Expiry, start: SystemTime) -> i64 {
    match expiry {
        Expiry::Never => -1,
        // Rounded up: a ban with half a second left must not read as `0` (no timeout).
        Expiry::At(end) => end.duration_since(start).map_or(0, |d| {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            i64::try_from(secs).unwrap_or(i64::MAX)
        }),
    }
}

impl Enforcer for CommandEnforcer {
    fn name(&self) -> &'static str {
        "actions"
    }

    fn add_jail(&mut self, jail: &JailScope) -> Result<(), Error> {
        match self.jails.insert(jail.name.clone(), jail.clone()) {
            None => {
                if let Some(set) = self.sets.get_mut(&jail.name) {
                    set.start()?;
                }
                Ok(())
            }
            // A reload that turns shadow mode on or off: the jail's held bans are lifted or
            // carried out now, as the other backends rewrite their rules.
            Some(old) if old.shadow != jail.shadow => {
                let keys = self
                    .bans
                    .keys()
                    .filter(|(j, _)| *j == jail.name)
                    .cloned()
                    .collect();
                self.settle(keys)
            }
            Some(_) => Ok(()),
        }
    }

    fn remove_jail(&mut self, name: &str) -> Result<(), Error> {
        if self.jails.remove(name).is_none() {
            return Ok(());
        }
        let keys: Vec<(String, IpNet)> = self
            .bans
            .keys()
            .filter(|(j, _)| j == name)
            .cloned()
            .collect();
        let held: Vec<Held> = keys.iter().filter_map(|k| self.bans.remove(k)).collect();
        let Some(set) = self.sets.get_mut(name) else {
            return Ok(());
        };
        let applied: Vec<BanInfo> = held
            .into_iter()
            .filter(|h| h.applied)
            .map(|h| h.info)
            .collect();
        let flushed = set.flush(&applied);
        let stopped = set.stop();
        flushed.and(stopped).map_err(Error::from)
    }

    fn ban_many(&mut self, bans: &[Ban]) -> Result<(), Error> {
        self.each_ban(bans, false)
    }

    fn unban(&mut self, jail: &str, target: IpNet) -> Result<(), Error> {
        match self.bans.remove(&(jail.to_string(), target)) {
            Some(held) => self.lift(jail, &held),
            None => Ok(()),
        }
    }

    fn set_allowed(&mut self, nets: &[IpNet]) -> Result<(), Error> {
        self.allowed = nets.to_vec();
        let keys: Vec<(String, IpNet)> = self.bans.keys().cloned().collect();
        self.settle(keys)
    }

    fn active(&self) -> Result<Vec<ActiveBan>, Error> {
        let mut merged: BTreeMap<IpNet, ActiveBan> = BTreeMap::new();
        for ((jail, target), held) in &self.bans {
            let entry = merged.entry(*target).or_insert_with(|| ActiveBan {
                target: *target,
                jails: Vec::new(),
                expiry: held.expiry,
                drops: None,
                shadow_hits: None,
            });
            entry.jails.push(jail.clone());
            entry.expiry = entry.expiry.max(held.expiry);
        }
        Ok(merged.into_values().collect())
    }

    fn remove_expired(&mut self) -> Result<usize, Error> {
        let now = (self.ctx.clock)();
        let expired: Vec<(String, IpNet)> = self
            .bans
            .iter()
            .filter(|(_, h)| matches!(h.expiry, Expiry::At(t) if t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        let mut first = Ok(());
        for key in &expired {
            if let Some(held) = self.bans.remove(key) {
                first = first.and(self.lift(&key.0, &held));
            }
        }
        first.map(|()| expired.len())
    }

    fn describe(&self) -> String {
        let list: Vec<String> = self
            .actions()
            .into_iter()
            .map(|(jail, names)| format!("{jail}: {}", names.join(", ")))
            .collect();
        format!("action.d commands ({})", list.join("; "))
    }

    fn detach(mut self: Box<Self>) -> Result<(), Error> {
        let jails: Vec<String> = self.jails.keys().cloned().collect();
        let mut first = Ok(());
        for jail in jails {
            first = first.and(self.remove_jail(&jail));
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use std::{
        path::Path,
        sync::atomic::{AtomicU64, Ordering},
        time::{Duration, UNIX_EPOCH},
    };

    use indexmap::IndexMap;

    use super::*;
    use crate::{
        action::{Action, HostNames, Shell},
        enforce::{PortScope, parse_target},
    };

    /// Seconds since the epoch that the test's clock shows.
    static NOW: AtomicU64 = AtomicU64::new(1000);

    fn clock() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW.load(Ordering::SeqCst))
    }

    fn enforcer(log: &Path) -> CommandEnforcer {
        let props: IndexMap<String, String> = [
            ("actionstart", "echo start >> <log>"),
            ("actionban", "echo ban <ip> <bantime> <F-USER> >> <log>"),
            ("actionunban", "echo unban <ip> >> <log>"),
            ("actionstop", "echo stop >> <log>"),
            ("norestored", "true"),
            ("log", &log.display().to_string()),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
        let ctx = Context {
            shell: Shell::default(),
            host: HostNames::default(),
            clock,
            reverse: |_| None,
        };
        let set = ActionSet::new(
            "sshd",
            vec![Action::new("sshd", "rec", props).unwrap()],
            ctx.clone(),
        );
        CommandEnforcer::new(vec![set], ctx)
    }

    fn scope(name: &str, shadow: bool) -> JailScope {
        JailScope {
            name: name.into(),
            ports: PortScope::All,
            shadow,
        }
    }

    fn ban(target: &str, secs: Option<u64>) -> Ban {
        Ban {
            jail: "sshd".into(),
            target: parse_target(target).unwrap(),
            expiry: secs.map_or(Expiry::Never, |s| {
                Expiry::At(UNIX_EPOCH + Duration::from_secs(s))
            }),
        }
    }

    fn lines(log: &Path) -> Vec<String> {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn bans_run_once_expire_and_stop() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut e = enforcer(&log);
        assert!(matches!(
            e.ban(&ban("192.0.2.7", None)),
            Err(Error::UnknownJail(_))
        ));
        e.add_jail(&scope("sshd", false)).unwrap();
        e.add_jail(&scope("sshd", false)).unwrap();
        e.ban_many(&[ban("192.0.2.7", Some(1600)), ban("192.0.2.7", Some(1700))])
            .unwrap();
        let mut info = BanInfo::new(parse_target("192.0.2.8").unwrap(), clock());
        info.fields.insert("user".into(), "x;y".into());
        e.ban_with(&ban("192.0.2.8", None), info).unwrap();
        e.restore(&[ban("192.0.2.9", Some(5000)), ban("192.0.2.10", Some(999))])
            .unwrap();
        let active = e.active().unwrap();
        assert_eq!(active.len(), 3);
        assert_eq!(
            active[0].expiry,
            Expiry::At(UNIX_EPOCH + Duration::from_secs(1700))
        );
        NOW.store(1650, Ordering::SeqCst);
        assert_eq!(e.remove_expired().unwrap(), 0);
        NOW.store(1700, Ordering::SeqCst);
        assert_eq!(e.remove_expired().unwrap(), 1);
        e.unban("sshd", parse_target("192.0.2.77").unwrap())
            .unwrap();
        Box::new(e).detach().unwrap();
        NOW.store(1000, Ordering::SeqCst);
        assert_eq!(
            lines(&log),
            [
                "start",
                "ban 192.0.2.7 600",
                "ban 192.0.2.8 -1 x;y",
                "unban 192.0.2.7",
                // The restored ban ran no `actionban` (`norestored`), so no `actionunban`.
                "unban 192.0.2.8",
                "stop"
            ]
        );
    }

    #[test]
    fn allowed_and_shadowed_bans_are_held_without_commands() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut e = enforcer(&log);
        e.add_jail(&scope("sshd", false)).unwrap();
        e.set_allowed(&[parse_target("192.0.2.0/28").unwrap()])
            .unwrap();
        e.ban(&ban("192.0.2.7", None)).unwrap();
        e.ban(&ban("198.51.100.7", None)).unwrap();
        e.set_allowed(&[parse_target("198.51.100.0/24").unwrap()])
            .unwrap();
        e.set_allowed(&[]).unwrap();
        e.add_jail(&scope("other", true)).unwrap();
        let mut shadowed = ban("192.0.2.1", None);
        shadowed.jail = "other".into();
        e.ban(&shadowed).unwrap();
        assert_eq!(e.active().unwrap().len(), 3);
        assert_eq!(
            lines(&log),
            [
                "start",
                "ban 198.51.100.7 -1",
                "ban 192.0.2.7 -1",
                "unban 198.51.100.7",
                "ban 198.51.100.7 -1"
            ]
        );
        assert_eq!(e.describe(), "action.d commands (sshd: rec)");
    }

    #[test]
    fn a_reload_that_turns_shadow_mode_on_or_off_lifts_or_carries_out_the_bans() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut e = enforcer(&log);
        e.add_jail(&scope("sshd", false)).unwrap();
        e.ban(&ban("192.0.2.7", None)).unwrap();
        e.add_jail(&scope("sshd", true)).unwrap();
        e.ban(&ban("192.0.2.8", None)).unwrap();
        e.add_jail(&scope("sshd", true)).unwrap();
        e.add_jail(&scope("sshd", false)).unwrap();
        assert_eq!(e.active().unwrap().len(), 2);
        assert_eq!(
            lines(&log),
            [
                "start",
                "ban 192.0.2.7 -1",
                "unban 192.0.2.7",
                "ban 192.0.2.7 -1",
                "ban 192.0.2.8 -1",
            ]
        );
    }
}
