//! The ban manager: every active ban the daemon placed or adopted, with its expiry, kept in
//! step with the enforcing backend and the store.
//!
//! A ban is enforced first (the XDP map update takes microseconds), then handed to the store's
//! group-commit writer, which never makes the ban path wait for the disk. Expiry is known
//! here, in a heap of deadlines (mini-redis's shape, lifted bans dropped lazily): the daemon
//! sleeps until the next one and lifts what is due, so nothing ever walks the backend's maps to find what expired
//! (the XDP program also compares expiries itself, so a ban ends on time while the daemon is
//! down). Time is given by the caller in Unix seconds.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    net::{IpAddr, Ipv6Addr},
    sync::Arc,
};

use ipnet::IpNet;

use crate::{
    enforce::{self, ActiveBan, Ban, Enforcer, book::normalize},
    store::{BanRecord, Writer},
};

/// One active ban of one jail, as [`Bans::held`] tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    /// Unix seconds; `None`: permanent. Ends after 2106 are kept as 2106-02-07.
    pub end: Option<i64>,
}

/// A jail's index in [`Bans`]'s names.
type JailId = u16;

/// A target in 17 bytes: the address as IPv6 (IPv4 mapped) and the prefix length in that
/// space, where an `IpNet` takes 18 and pads to 20 beside a `u32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Packed([u8; 17]);

impl Packed {
    fn of(target: IpNet) -> Self {
        let (octets, prefix) = match normalize(target) {
            IpNet::V4(n) => (n.addr().to_ipv6_mapped().octets(), n.prefix_len() + 96),
            IpNet::V6(n) => (n.addr().octets(), n.prefix_len()),
        };
        let mut bytes = [0; 17];
        bytes[..16].copy_from_slice(&octets);
        bytes[16] = prefix;
        Packed(bytes)
    }

    fn net(self) -> IpNet {
        let octets: [u8; 16] = self.0[..16].try_into().expect("16 bytes");
        let addr = Ipv6Addr::from(octets);
        let prefix = self.0[16];
        // A canonical target is never an IPv4-mapped IPv6 network: mapped means IPv4.
        match (addr.to_ipv4_mapped(), prefix.checked_sub(96)) {
            (Some(v4), Some(p)) => IpNet::new(IpAddr::V4(v4), p),
            _ => IpNet::new(IpAddr::V6(addr), prefix),
        }
        .expect("a prefix packed from a valid network")
    }
}

/// An end as the index keeps it: unix seconds in 32 bits, [`NEVER`] for a permanent ban.
type End = u32;

/// An [`End`] as a map value: bytes, so that a (target, end) slot takes 21 bytes, unpadded.
type EndBytes = [u8; 4];

const NEVER: End = End::MAX;

fn pack_end(end: Option<i64>) -> End {
    end.map_or(NEVER, |e| {
        End::try_from(e.max(0)).map_or(NEVER - 1, |e| e.min(NEVER - 1))
    })
}

fn unpack_end(end: End) -> Option<i64> {
    (end != NEVER).then_some(i64::from(end))
}

/// The daemon's bans, the backend that enforces them and the store that remembers them.
///
/// Kept compact, as a million bans may be held: jails are interned (an id of 2 bytes), each
/// jail's targets map a packed target (17 bytes) to its end (4 bytes), and the deadlines are
/// a heap of (end, jail, target) from which lifted bans are dropped lazily (an entry whose
/// end no longer matches its jail's is stale), about 50 bytes a ban in all.
pub struct Bans {
    enforcer: Box<dyn Enforcer + Send>,
    store: Option<Writer>,
    /// Jail names by id.
    names: Vec<Arc<str>>,
    /// By jail id, the targets it bans and when each ban ends.
    held: Vec<HashMap<Packed, EndBytes>>,
    /// The ends still ahead (stale ones included, until they reach the top).
    deadlines: BinaryHeap<Reverse<(End, JailId, Packed)>>,
    /// Bans placed since the start, by jail id (`status`'s "Total banned").
    totals: Vec<u64>,
}

impl Bans {
    #[must_use]
    pub fn new(enforcer: Box<dyn Enforcer + Send>, store: Option<Writer>) -> Self {
        Self {
            enforcer,
            store,
            names: Vec::new(),
            held: Vec::new(),
            deadlines: BinaryHeap::new(),
            totals: Vec::new(),
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

    /// The id of `jail`, if it ever held a ban.
    fn id(&self, jail: &str) -> Option<JailId> {
        self.names
            .iter()
            .position(|name| **name == *jail)
            .map(|id| JailId::try_from(id).expect("fewer than 65536 jails"))
    }

    /// The id of `jail`, interned on first use.
    fn intern(&mut self, jail: &str) -> JailId {
        if let Some(id) = self.id(jail) {
            return id;
        }
        self.names.push(Arc::from(jail));
        self.held.push(HashMap::new());
        self.totals.push(0);
        JailId::try_from(self.names.len() - 1).expect("fewer than 65536 jails")
    }

    fn index(&mut self, record: &BanRecord) -> JailId {
        let jail = self.intern(&record.jail);
        let target = Packed::of(record.target);
        let end = pack_end(record.until());
        self.held[usize::from(jail)].insert(target, end.to_ne_bytes());
        if end != NEVER {
            // An earlier end of the same ban, if any, is stale from now on.
            self.deadlines.push(Reverse((end, jail, target)));
        }
        jail
    }

    /// Enforces a new ban at once, then queues it for the store; `false` when the jail held
    /// the target already (nothing changes).
    pub fn place(&mut self, record: BanRecord) -> Result<bool, enforce::Error> {
        if self.held(&record.jail, record.target).is_some() {
            return Ok(false);
        }
        self.enforcer.ban(&record.to_ban())?;
        let jail = self.index(&record);
        self.totals[usize::from(jail)] += 1;
        if let Some(store) = &self.store {
            store.add_ban(record);
        }
        Ok(true)
    }

    /// [`Bans::restore`] for bans whose targets neither the backend nor any jail here holds
    /// (the start-up restore knows which): the backend need not look them up.
    pub fn restore_new(&mut self, records: &[BanRecord]) -> Result<(), enforce::Error> {
        if records.is_empty() {
            return Ok(());
        }
        let bans: Vec<Ban> = records.iter().map(BanRecord::to_ban).collect();
        self.enforcer.ban_many_new(&bans)?;
        for record in records {
            self.index(record);
        }
        Ok(())
    }

    /// Keeps track of bans the backend holds as they are (found in its pinned maps at
    /// start): they are indexed, not written again.
    pub fn track(&mut self, records: &[BanRecord]) {
        for record in records {
            self.index(record);
        }
    }

    /// Restores bans read from the store (or adopted from the backend) in one batch; they are
    /// not written to the store again.
    pub fn restore(&mut self, records: &[BanRecord]) -> Result<(), enforce::Error> {
        if records.is_empty() {
            return Ok(());
        }
        let bans: Vec<Ban> = records.iter().map(BanRecord::to_ban).collect();
        self.enforcer.ban_many(&bans)?;
        for record in records {
            self.index(record);
        }
        Ok(())
    }

    /// Whether any jail holds a ban of `target`.
    #[must_use]
    pub fn holds_any(&self, target: IpNet) -> bool {
        let packed = Packed::of(target);
        self.held
            .iter()
            .any(|targets| targets.contains_key(&packed))
    }

    /// Lifts `jail`'s ban of `target`; `false` when it held none.
    pub fn lift(&mut self, jail: &str, target: IpNet, now: i64) -> Result<bool, enforce::Error> {
        let Some(id) = self.id(jail) else {
            return Ok(false);
        };
        let packed = Packed::of(target);
        if !self.held[usize::from(id)].contains_key(&packed) {
            return Ok(false);
        }
        self.enforcer.unban(jail, target)?;
        self.held[usize::from(id)].remove(&packed);
        if self.deadlines.len() > 2 * self.count() + 1024 {
            self.rebuild_deadlines();
        }
        if let Some(store) = &self.store {
            store.remove_ban(jail, target, now);
        }
        Ok(true)
    }

    /// Drops the stale deadlines (of bans lifted before their end).
    fn rebuild_deadlines(&mut self) {
        let live: Vec<_> = self
            .held
            .iter()
            .enumerate()
            .flat_map(|(id, targets)| {
                let id = JailId::try_from(id).expect("fewer than 65536 jails");
                targets
                    .iter()
                    .map(|(target, end)| (*target, End::from_ne_bytes(*end)))
                    .filter(|(_, end)| *end != NEVER)
                    .map(move |(target, end)| Reverse((end, id, target)))
            })
            .collect();
        self.deadlines = BinaryHeap::from(live);
    }

    /// Whether a deadline is still the end of a ban held.
    fn is_live(&self, (end, jail, target): &(End, JailId, Packed)) -> bool {
        self.held[usize::from(*jail)].get(target) == Some(&end.to_ne_bytes())
    }

    /// The earliest expiry still ahead (or a stale one, which [`Bans::expire`] drops).
    #[must_use]
    pub fn next_deadline(&self) -> Option<i64> {
        self.deadlines
            .peek()
            .map(|Reverse((at, _, _))| i64::from(*at))
    }

    /// The enforcer's upkeep on the daemon's tidy tick.
    pub fn tidy(&mut self) -> Result<(), enforce::Error> {
        self.enforcer.tidy()
    }

    /// Lifts every ban whose expiry is `now` or earlier; returns them.
    pub fn expire(&mut self, now: i64) -> Result<Vec<(Arc<str>, IpNet)>, enforce::Error> {
        let mut due = Vec::new();
        while let Some(Reverse(top)) = self.deadlines.peek().copied() {
            let live = self.is_live(&top);
            if live && i64::from(top.0) > now {
                break;
            }
            self.deadlines.pop();
            if !live {
                continue;
            }
            let (_, jail, target) = top;
            self.held[usize::from(jail)].remove(&target);
            let name = self.names[usize::from(jail)].clone();
            self.enforcer.unban(&name, target.net())?;
            due.push((name, target.net()));
        }
        Ok(due)
    }

    /// The targets `jail` bans now, sorted.
    #[must_use]
    pub fn of_jail(&self, jail: &str) -> Vec<IpNet> {
        let mut targets: Vec<IpNet> = self
            .id(jail)
            .map(|id| self.held[usize::from(id)].keys().map(|t| t.net()).collect())
            .unwrap_or_default();
        targets.sort();
        targets
    }

    /// Every (jail, target) held, for `unban --all` and reloads.
    #[must_use]
    pub fn all(&self) -> Vec<(Arc<str>, IpNet)> {
        self.names
            .iter()
            .zip(&self.held)
            .flat_map(|(j, t)| t.keys().map(move |t| (j.clone(), t.net())))
            .collect()
    }

    /// The ban `jail` holds on `target`.
    #[must_use]
    pub fn held(&self, jail: &str, target: IpNet) -> Option<Held> {
        let id = self.id(jail)?;
        let end = self.held[usize::from(id)].get(&Packed::of(target))?;
        Some(Held {
            end: unpack_end(End::from_ne_bytes(*end)),
        })
    }

    /// How many bans are held.
    #[must_use]
    pub fn count(&self) -> usize {
        self.held.iter().map(HashMap::len).sum()
    }

    /// Bans placed since the start by `jail`.
    #[must_use]
    pub fn total(&self, jail: &str) -> u64 {
        self.id(jail).map_or(0, |id| self.totals[usize::from(id)])
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::{
        daemon::restore::tests::{Log, Recording},
        enforce::parse_target,
    };

    const NOW: i64 = 1_764_900_000;

    fn net(text: &str) -> IpNet {
        parse_target(text).unwrap()
    }

    fn bans() -> (Bans, Arc<Mutex<Log>>) {
        let log = Arc::new(Mutex::new(Log::default()));
        (Bans::new(Box::new(Recording(Arc::clone(&log))), None), log)
    }

    fn record(jail: &str, target: &str, duration: Option<i64>) -> BanRecord {
        BanRecord {
            jail: jail.into(),
            target: net(target),
            start: NOW,
            duration,
            ban_count: 1,
            failures: 1,
            matches: Vec::new(),
        }
    }

    #[test]
    fn packed_targets_come_back_as_they_went() {
        for text in [
            "192.0.2.7",
            "192.0.2.0/24",
            "0.0.0.0/0",
            "2001:db8::7",
            "2001:db8::/32",
            "::/0",
            "::1",
            "::",
        ] {
            assert_eq!(Packed::of(net(text)).net(), net(text), "{text}");
        }
        // Canonical: host bits cleared, IPv4-mapped IPv6 as IPv4.
        assert_eq!(Packed::of(net("192.0.2.77/24")).net(), net("192.0.2.0/24"));
        assert_eq!(Packed::of(net("::ffff:192.0.2.7")).net(), net("192.0.2.7"));
        assert_ne!(Packed::of(net("192.0.2.7")), Packed::of(net("::c000:207")));
    }

    #[test]
    fn ends_fit_in_32_bits() {
        assert_eq!(unpack_end(pack_end(None)), None);
        assert_eq!(unpack_end(pack_end(Some(NOW))), Some(NOW));
        assert_eq!(unpack_end(pack_end(Some(-5))), Some(0), "long past");
        let far = unpack_end(pack_end(Some(i64::MAX))).unwrap();
        assert_eq!(
            far,
            i64::from(u32::MAX - 1),
            "kept as 2106, never as permanent"
        );
    }

    #[test]
    fn lifted_and_replaced_bans_leave_stale_deadlines_that_expire_skips() {
        let (mut bans, log) = bans();
        assert!(bans.place(record("sshd", "192.0.2.1", Some(10))).unwrap());
        assert!(bans.place(record("sshd", "192.0.2.2", Some(20))).unwrap());
        assert!(bans.place(record("web", "192.0.2.1", Some(30))).unwrap());
        assert!(bans.place(record("web", "192.0.2.9", None)).unwrap());
        assert!(
            !bans.place(record("sshd", "192.0.2.1", Some(99))).unwrap(),
            "held"
        );
        assert_eq!(
            (bans.count(), bans.total("sshd"), bans.total("web")),
            (4, 2, 2)
        );
        assert!(bans.lift("sshd", net("192.0.2.1"), NOW).unwrap());
        assert!(!bans.lift("sshd", net("192.0.2.1"), NOW).unwrap());
        // The lifted ban's deadline is still on the heap, and passes by without effect.
        assert_eq!(bans.next_deadline(), Some(NOW + 10));
        assert!(bans.expire(NOW + 15).unwrap().is_empty());
        assert_eq!(bans.next_deadline(), Some(NOW + 20));
        // A restored ban replacing one held: the earlier end is stale.
        bans.restore(&[record("sshd", "192.0.2.2", Some(50))])
            .unwrap();
        assert!(bans.expire(NOW + 25).unwrap().is_empty());
        let due = bans.expire(NOW + 50).unwrap();
        let due: Vec<(String, IpNet)> = due.into_iter().map(|(j, t)| (j.to_string(), t)).collect();
        assert_eq!(
            due,
            [
                ("web".to_string(), net("192.0.2.1")),
                ("sshd".to_string(), net("192.0.2.2"))
            ]
        );
        assert_eq!(bans.next_deadline(), None, "the permanent ban has none");
        assert_eq!(bans.of_jail("web"), [net("192.0.2.9")]);
        assert_eq!(bans.held("web", net("192.0.2.9")), Some(Held { end: None }));
        assert_eq!(log.lock().unwrap().book.len(), 1);
    }

    #[test]
    fn many_lifts_do_not_let_stale_deadlines_pile_up() {
        let (mut bans, _log) = bans();
        for round in 0..5 {
            for i in 0..1000u32 {
                let target = std::net::Ipv4Addr::from(0x0a00_0000 | i).to_string();
                bans.place(record("sshd", &target, Some(3600 + i64::from(round))))
                    .unwrap();
                bans.lift("sshd", net(&target), NOW).unwrap();
            }
        }
        assert_eq!(bans.count(), 0);
        assert!(bans.deadlines.len() <= 1024 + 1, "{}", bans.deadlines.len());
    }
}
