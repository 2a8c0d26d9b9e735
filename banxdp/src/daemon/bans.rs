//! The ban manager: every active ban the daemon placed or adopted, with its expiry, kept in
//! step with the enforcing backend and the store.
//!
//! A ban is enforced first (the XDP map update takes microseconds), then handed to the store's
//! group-commit writer, which never makes the ban path wait for the disk. Expiry is known
//! here, in a sorted set of deadlines (mini-redis's shape): the daemon sleeps until the next
//! one and lifts what is due, so nothing ever walks the backend's maps to find what expired
//! (the XDP program also compares expiries itself, so a ban ends on time while the daemon is
//! down). Time is given by the caller in Unix seconds.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ipnet::IpNet;

use crate::{
    enforce::{self, ActiveBan, Ban, Enforcer, Expiry},
    store::{BanRecord, Writer},
};

/// One active ban of one jail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub start: i64,
    /// `None`: permanent.
    pub end: Option<i64>,
    pub ban_count: u32,
}

/// The daemon's bans, the backend that enforces them and the store that remembers them.
pub struct Bans {
    enforcer: Box<dyn Enforcer + Send>,
    store: Option<Writer>,
    /// Per jail, the targets it bans.
    held: HashMap<Arc<str>, HashMap<IpNet, Held>>,
    deadlines: BTreeSet<(i64, Arc<str>, IpNet)>,
    /// Bans placed since the start, per jail (`status`'s "Total banned").
    totals: HashMap<Arc<str>, u64>,
}

/// Seconds since the epoch as the backends' `SystemTime`.
fn system_time(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

impl Bans {
    #[must_use]
    pub fn new(enforcer: Box<dyn Enforcer + Send>, store: Option<Writer>) -> Self {
        Self {
            enforcer,
            store,
            held: HashMap::new(),
            deadlines: BTreeSet::new(),
            totals: HashMap::new(),
        }
    }

    #[must_use]
    pub fn enforcer(&self) -> &(dyn Enforcer + Send) {
        self.enforcer.as_ref()
    }

    pub fn enforcer_mut(&mut self) -> &mut (dyn Enforcer + Send) {
        self.enforcer.as_mut()
    }

    /// Bans from now on are also written to `store`.
    pub fn set_store(&mut self, store: Writer) {
        self.store = Some(store);
    }

    #[must_use]
    pub fn store(&self) -> Option<&Writer> {
        self.store.as_ref()
    }

    fn to_ban(record: &BanRecord) -> Ban {
        Ban {
            jail: record.jail.clone(),
            target: record.target,
            expiry: record
                .duration
                .map_or(Expiry::Never, |d| Expiry::At(system_time(record.start + d))),
        }
    }

    /// The shared name of `jail`.
    fn key(&mut self, jail: &str) -> Arc<str> {
        if let Some((key, _)) = self.held.get_key_value(jail) {
            return key.clone();
        }
        let key: Arc<str> = Arc::from(jail);
        self.held.insert(key.clone(), HashMap::new());
        key
    }

    fn index(&mut self, record: &BanRecord) -> Arc<str> {
        let jail = self.key(&record.jail);
        let end = record.duration.map(|d| record.start + d);
        let held = Held {
            start: record.start,
            end,
            ban_count: record.ban_count,
        };
        let old = self
            .held
            .get_mut(&jail)
            .expect("keyed above")
            .insert(record.target, held);
        if let Some(old_end) = old.and_then(|o| o.end) {
            self.deadlines
                .remove(&(old_end, jail.clone(), record.target));
        }
        if let Some(end) = end {
            self.deadlines.insert((end, jail.clone(), record.target));
        }
        jail
    }

    /// Enforces a new ban at once, then queues it for the store; `false` when the jail held
    /// the target already (nothing changes).
    pub fn place(&mut self, record: BanRecord) -> Result<bool, enforce::Error> {
        if self.held(&record.jail, record.target).is_some() {
            return Ok(false);
        }
        self.enforcer.ban(&Self::to_ban(&record))?;
        let jail = self.index(&record);
        *self.totals.entry(jail).or_default() += 1;
        if let Some(store) = &self.store {
            store.add_ban(record);
        }
        Ok(true)
    }

    /// Restores bans read from the store (or adopted from the backend) in one batch; they are
    /// not written to the store again.
    pub fn restore(&mut self, records: &[BanRecord]) -> Result<(), enforce::Error> {
        let bans: Vec<Ban> = records.iter().map(Self::to_ban).collect();
        self.enforcer.ban_many(&bans)?;
        for record in records {
            self.index(record);
        }
        Ok(())
    }

    /// Lifts `jail`'s ban of `target`; `false` when it held none.
    pub fn lift(&mut self, jail: &str, target: IpNet, now: i64) -> Result<bool, enforce::Error> {
        let Some((key, targets)) = self.held.get_key_value(jail) else {
            return Ok(false);
        };
        let key = key.clone();
        let Some(held) = targets.get(&target).cloned() else {
            return Ok(false);
        };
        self.enforcer.unban(jail, target)?;
        if let Some(targets) = self.held.get_mut(jail) {
            targets.remove(&target);
        }
        if let Some(end) = held.end {
            self.deadlines.remove(&(end, key, target));
        }
        if let Some(store) = &self.store {
            store.remove_ban(jail, target, now);
        }
        Ok(true)
    }

    /// The earliest expiry still ahead.
    #[must_use]
    pub fn next_deadline(&self) -> Option<i64> {
        self.deadlines.first().map(|(at, _, _)| *at)
    }

    /// Lifts every ban whose expiry is `now` or earlier; returns them.
    pub fn expire(&mut self, now: i64) -> Result<Vec<(Arc<str>, IpNet)>, enforce::Error> {
        let mut due = Vec::new();
        while let Some((at, jail, target)) = self.deadlines.first().cloned() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(targets) = self.held.get_mut(&jail) {
                targets.remove(&target);
            }
            self.enforcer.unban(&jail, target)?;
            due.push((jail, target));
        }
        Ok(due)
    }

    /// The targets `jail` bans now, sorted.
    #[must_use]
    pub fn of_jail(&self, jail: &str) -> Vec<IpNet> {
        let mut targets: Vec<IpNet> = self
            .held
            .get(jail)
            .map(|t| t.keys().copied().collect())
            .unwrap_or_default();
        targets.sort();
        targets
    }

    /// Every (jail, target) held, for `unban --all` and reloads.
    #[must_use]
    pub fn all(&self) -> Vec<(Arc<str>, IpNet)> {
        self.held
            .iter()
            .flat_map(|(j, t)| t.keys().map(move |t| (j.clone(), *t)))
            .collect()
    }

    /// The ban `jail` holds on `target`.
    #[must_use]
    pub fn held(&self, jail: &str, target: IpNet) -> Option<&Held> {
        self.held.get(jail).and_then(|t| t.get(&target))
    }

    /// How many bans are held.
    #[must_use]
    pub fn count(&self) -> usize {
        self.held.values().map(HashMap::len).sum()
    }

    /// Bans placed since the start by `jail`.
    #[must_use]
    pub fn total(&self, jail: &str) -> u64 {
        self.totals.get(jail).copied().unwrap_or(0)
    }

    /// What the backend holds, with its drop counts.
    pub fn active(&self) -> Result<Vec<ActiveBan>, enforce::Error> {
        self.enforcer.active()
    }

    /// Gives the backend and the store back, for a clean stop.
    #[must_use]
    pub fn into_parts(self) -> (Box<dyn Enforcer + Send>, Option<Writer>) {
        (self.enforcer, self.store)
    }
}
