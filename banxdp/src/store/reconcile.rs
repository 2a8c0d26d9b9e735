//! Start-up reconciliation of the store with the pinned XDP maps, as a pure function: the
//! maps kept enforcing while the daemon was down, and either side may know a ban the other
//! lost. A ban found only in the maps reached the map but not the store (the daemon died
//! within a group-commit window): it is adopted into the store. A ban found only in the store
//! is re-applied to the maps (they were lost with a reboot, or a map entry was removed by
//! hand). No I/O, no clock.

use std::collections::HashMap;

use ipnet::IpNet;

use super::{BanRecord, canonical, unix_seconds};
use crate::enforce::{ActiveBan, Ban, Expiry};

/// Seconds by which two ends of one ban may differ and still count as the same: the store
/// keeps whole seconds, the maps keep nanoseconds of the boot clock.
pub const EXPIRY_TOLERANCE: i64 = 2;

/// What to do so that the store and the maps agree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// Bans to record in the store (with [`super::Store::adopted`] and
    /// [`super::Writer::add_ban`]): the maps enforce them and the store does not know them,
    /// or knows them with an earlier end.
    pub adopt: Vec<Ban>,
    /// Bans to apply to the maps (one `ban_many`): the store holds them and the maps do not,
    /// or hold them with an earlier end.
    pub reapply: Vec<Ban>,
}

/// An end in unix seconds, `None` for never.
type End = Option<i64>;

fn end_of(expiry: Expiry) -> End {
    match expiry {
        Expiry::Never => None,
        Expiry::At(at) => Some(unix_seconds(at)),
    }
}

/// Whether `a` ends later than `b` by more than [`EXPIRY_TOLERANCE`].
fn outlasts(a: End, b: End) -> bool {
    match (a, b) {
        (None, Some(_)) => true,
        (Some(a), Some(b)) => a > b.saturating_add(EXPIRY_TOLERANCE),
        (_, None) => false,
    }
}

/// Compares the store's bans that hold at `now` (`stored`, as [`super::Store::active_bans`]
/// gives them) with the maps' (`mapped`, as `Enforcer::active` gives them). Targets are
/// compared in [`canonical`] form; map entries already expired are ignored (their removal is
/// the enforcer's sweep). The result is sorted by jail, then target.
///
/// A map entry carries the latest end among its jails, so: a jail the store lacks is adopted
/// with that end; a jail whose stored end is later than the map's is re-applied; and when the
/// map's end outlasts every stored end of its jails, the map saw a later ban the store missed,
/// adopted for the jail whose stored end is latest.
///
/// This is [`Reconciler`] over two slices; the daemon streams both sides through one.
#[must_use]
pub fn reconcile(stored: &[BanRecord], mapped: &[ActiveBan], now: i64) -> Reconciliation {
    let mut reconciler = Reconciler::new(now);
    for entry in mapped {
        reconciler.mapped(entry);
    }
    let mut reapply = Vec::new();
    for record in stored {
        if reconciler.stored(record) == Stored::Absent && record.is_active(now) {
            reapply.push(ban(&record.jail, canonical(record.target), record.until()));
        }
    }
    let mut out = reconciler.finish();
    out.reapply.extend(reapply);
    for list in [&mut out.adopt, &mut out.reapply] {
        list.sort_by(|a, b| (&a.jail, a.target).cmp(&(&b.jail, b.target)));
    }
    out
}

/// [`reconcile`] one ban at a time, the maps' side first: it keeps about 50 bytes per map
/// entry (none per stored ban), so neither side is ever held whole as records. A stored ban
/// whose target the maps do not hold is the caller's to re-apply at once
/// ([`Reconciler::stored`] says which); for the others, what to re-apply is decided as they
/// pass and what to adopt at [`Reconciler::finish`].
#[derive(Default)]
pub struct Reconciler {
    now: i64,
    /// Unexpired map entries by canonical target: their index in `entries`.
    index: HashMap<IpNet, u32>,
    entries: Vec<MapSide>,
    /// Entries of a target listed twice (no backend does), which the store cannot reach.
    twice: Vec<(IpNet, u32)>,
    /// The jails of entries banned by more than one, with what the store says of each.
    shared: Vec<Vec<(u16, i64)>>,
    /// Jail names by id.
    jails: Vec<String>,
    /// Entries given, expired ones included.
    seen: usize,
    reapply: Vec<Ban>,
}

/// Where the maps stand on a stored ban's target ([`Reconciler::stored`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// The maps do not hold it: if the ban holds, the caller applies it.
    Absent,
    /// The maps hold exactly this ban: this jail alone, with the same end (within
    /// [`EXPIRY_TOLERANCE`]); nothing to write.
    Same,
    /// The maps hold the target otherwise (other jails too, or another end): the caller
    /// applies the ban, merged with what the maps hold.
    Other,
}

/// An end packed in an `i64`: [`NEVER`] for a permanent ban, [`UNSEEN`] for a jail of a
/// map entry whose stored ban has not (yet) come.
const NEVER: i64 = i64::MAX;
const UNSEEN: i64 = i64::MIN;

fn pack(end: End) -> i64 {
    end.map_or(NEVER, |e| e.min(NEVER - 1))
}

fn unpack(end: i64) -> End {
    (end != NEVER).then_some(end)
}

/// One unexpired map entry (its target is its key in the index): its first jail inline
/// (most have one), others in `shared`. 24 bytes.
struct MapSide {
    end: i64,
    jail: u16,
    /// The store's end of `jail`'s ban, or [`UNSEEN`].
    stored: i64,
    /// 1 + the index of the other jails in `shared`; 0 when there are none.
    more: u32,
}

impl Reconciler {
    #[must_use]
    pub fn new(now: i64) -> Self {
        Self {
            now,
            ..Self::default()
        }
    }

    fn intern(&mut self, jail: &str) -> u16 {
        let id = if let Some(id) = self.jails.iter().position(|j| j == jail) {
            id
        } else {
            self.jails.push(jail.to_string());
            self.jails.len() - 1
        };
        u16::try_from(id).expect("fewer than 65536 jails")
    }

    /// One entry of the maps (as `Enforcer::active` or `each_active` gives them). An entry
    /// already expired is ignored.
    pub fn mapped(&mut self, entry: &ActiveBan) {
        self.seen += 1;
        let end = end_of(entry.expiry);
        let Some(first) = entry.jails.first() else {
            return;
        };
        if end.is_some_and(|end| end <= self.now) {
            return;
        }
        let target = canonical(entry.target);
        let i = u32::try_from(self.entries.len()).expect("fewer than 2^32 map entries");
        // A target listed twice (no backend does) is found by the store the first time
        // only: the second entry's jails are adopted.
        if *self.index.entry(target).or_insert(i) != i {
            self.twice.push((target, i));
        }
        let jail = self.intern(first);
        let mut more = 0;
        if entry.jails.len() > 1 {
            let others = entry.jails[1..]
                .iter()
                .map(|j| (self.intern(j), UNSEEN))
                .collect();
            self.shared.push(others);
            more = u32::try_from(self.shared.len()).expect("fewer than 2^32 map entries");
        }
        self.entries.push(MapSide {
            end: pack(end),
            jail,
            stored: UNSEEN,
            more,
        });
    }

    /// How many map entries were given, expired ones included.
    #[must_use]
    pub fn mapped_count(&self) -> usize {
        self.seen
    }

    /// One ban of the store, and where the maps stand on its target (what to do about the
    /// ones they hold is decided here and at [`Reconciler::finish`]). A ban that no longer
    /// holds is ignored ([`Stored::Absent`], with nothing to re-apply).
    pub fn stored(&mut self, record: &BanRecord) -> Stored {
        if !record.is_active(self.now) {
            return Stored::Absent;
        }
        let target = canonical(record.target);
        let Some(&i) = self.index.get(&target) else {
            return Stored::Absent;
        };
        let jail = self.intern(&record.jail);
        let end = record.until();
        let entry = &mut self.entries[i as usize];
        let slot = if entry.jail == jail {
            Some(&mut entry.stored)
        } else if entry.more > 0 {
            self.shared[entry.more as usize - 1]
                .iter_mut()
                .find(|(j, _)| *j == jail)
                .map(|(_, stored)| stored)
        } else {
            None
        };
        let in_entry = slot.is_some();
        if let Some(slot) = slot.filter(|s| **s == UNSEEN) {
            *slot = pack(end);
        }
        let map_end = unpack(entry.end);
        let later = outlasts(end, map_end);
        if !in_entry || later {
            self.reapply.push(ban(&record.jail, target, end));
        }
        if entry.jail == jail && entry.more == 0 && !later && !outlasts(map_end, end) {
            return Stored::Same;
        }
        Stored::Other
    }

    /// What to adopt and re-apply for the targets the maps hold (unsorted).
    #[must_use]
    pub fn finish(self) -> Reconciliation {
        let mut out = Reconciliation {
            adopt: Vec::new(),
            reapply: self.reapply,
        };
        let mut jails = Vec::new();
        for (target, i) in self.index.iter().map(|(t, i)| (*t, *i)).chain(self.twice) {
            let entry = &self.entries[i as usize];
            jails.clear();
            jails.push((entry.jail, entry.stored));
            if entry.more > 0 {
                jails.extend_from_slice(&self.shared[entry.more as usize - 1]);
            }
            let map_end = unpack(entry.end);
            let mut latest: Option<(u16, End)> = None;
            for &(jail, stored) in &jails {
                if stored == UNSEEN {
                    out.adopt
                        .push(ban(&self.jails[usize::from(jail)], target, map_end));
                } else if latest.is_none_or(|(_, best)| outlasts(unpack(stored), best)) {
                    latest = Some((jail, unpack(stored)));
                }
            }
            let all_known = jails.iter().all(|(_, stored)| *stored != UNSEEN);
            if let (true, Some((jail, end))) = (all_known, latest) {
                if outlasts(map_end, end) {
                    out.adopt
                        .push(ban(&self.jails[usize::from(jail)], target, map_end));
                }
            }
        }
        out
    }
}

fn ban(jail: &str, target: IpNet, end: End) -> Ban {
    Ban {
        jail: jail.to_string(),
        target,
        expiry: end.map_or(Expiry::Never, |e| Expiry::At(super::from_unix(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::parse_target;

    const NOW: i64 = 1_000_000;

    /// A stored ban: jail, target, end relative to NOW (`None`: permanent).
    fn rec(jail: &str, target: &str, end: Option<i64>) -> BanRecord {
        BanRecord {
            jail: jail.into(),
            target: parse_target(target).unwrap(),
            start: NOW - 100,
            duration: end.map(|e| e + 100),
            ban_count: 1,
            failures: 5,
            matches: vec![],
        }
    }

    /// A map entry: target, jails, end relative to NOW.
    fn map(target: &str, jails: &[&str], end: Option<i64>) -> ActiveBan {
        ActiveBan {
            target: parse_target(target).unwrap(),
            jails: jails.iter().map(|j| (*j).to_string()).collect(),
            expiry: end.map_or(Expiry::Never, |e| {
                Expiry::At(super::super::from_unix(NOW + e))
            }),
            drops: None,
            shadow_hits: None,
        }
    }

    /// A ban in the expected lists: jail, target, end relative to NOW.
    fn want(jail: &str, target: &str, end: Option<i64>) -> Ban {
        ban(jail, parse_target(target).unwrap(), end.map(|e| NOW + e))
    }

    #[test]
    fn one_jail_per_target() {
        check(vec![
            ("nothing anywhere", vec![], vec![], vec![], vec![]),
            (
                "the same ban on both sides",
                vec![rec("sshd", "192.0.2.1", Some(600))],
                vec![map("192.0.2.1/32", &["sshd"], Some(600))],
                vec![],
                vec![],
            ),
            (
                "ends within the tolerance are the same",
                vec![rec("sshd", "192.0.2.1", Some(600))],
                vec![map("192.0.2.1/32", &["sshd"], Some(601))],
                vec![],
                vec![],
            ),
            (
                "only in the maps: adopted",
                vec![],
                vec![
                    map("192.0.2.1/32", &["sshd"], Some(600)),
                    map("2001:db8::/32", &["web"], None),
                ],
                vec![
                    want("sshd", "192.0.2.1", Some(600)),
                    want("web", "2001:db8::/32", None),
                ],
                vec![],
            ),
            (
                "only in the store: re-applied",
                vec![
                    rec("sshd", "192.0.2.1", Some(600)),
                    rec("web", "10.0.0.0/8", None),
                ],
                vec![],
                vec![],
                vec![
                    want("sshd", "192.0.2.1", Some(600)),
                    want("web", "10.0.0.0/8", None),
                ],
            ),
            (
                "expired in the store: nothing to re-apply",
                vec![
                    rec("sshd", "192.0.2.1", Some(0)),
                    rec("sshd", "192.0.2.2", Some(-5)),
                ],
                vec![],
                vec![],
                vec![],
            ),
            (
                "expired in the map: ignored, the store's ban re-applied",
                vec![rec("sshd", "192.0.2.1", Some(600))],
                vec![
                    map("192.0.2.1/32", &["sshd"], Some(-1)),
                    map("192.0.2.9/32", &["sshd"], Some(0)),
                ],
                vec![],
                vec![want("sshd", "192.0.2.1", Some(600))],
            ),
            (
                "the store's end is later (the map entry was shortened): re-applied",
                vec![rec("sshd", "192.0.2.1", None)],
                vec![map("192.0.2.1/32", &["sshd"], Some(600))],
                vec![],
                vec![want("sshd", "192.0.2.1", None)],
            ),
        ]);
    }

    #[test]
    fn several_jails_per_target_and_target_forms() {
        check(vec![
            (
                "the map's end is later (a longer ban never reached the store): adopted",
                vec![rec("sshd", "192.0.2.1", Some(600))],
                vec![map("192.0.2.1/32", &["sshd"], Some(6000))],
                vec![want("sshd", "192.0.2.1", Some(6000))],
                vec![],
            ),
            (
                "two jails in the map, one in the store: the other adopted",
                vec![rec("sshd", "192.0.2.1", Some(600))],
                vec![map("192.0.2.1/32", &["sshd", "web"], Some(600))],
                vec![want("web", "192.0.2.1", Some(600))],
                vec![],
            ),
            (
                "a shared entry carries the latest end: the shorter jail is left alone",
                vec![
                    rec("sshd", "192.0.2.1", Some(600)),
                    rec("web", "192.0.2.1", Some(60)),
                ],
                vec![map("192.0.2.1/32", &["sshd", "web"], Some(600))],
                vec![],
                vec![],
            ),
            (
                "a shared entry outlasting every stored jail: the latest jail adopts it",
                vec![
                    rec("sshd", "192.0.2.1", Some(600)),
                    rec("web", "192.0.2.1", Some(60)),
                ],
                vec![map("192.0.2.1/32", &["web", "sshd"], Some(9000))],
                vec![want("sshd", "192.0.2.1", Some(9000))],
                vec![],
            ),
            (
                "the map lacks one of the store's jails: that one re-applied",
                vec![
                    rec("sshd", "192.0.2.1", Some(600)),
                    rec("web", "192.0.2.1", Some(60)),
                ],
                vec![map("192.0.2.1/32", &["sshd"], Some(600))],
                vec![],
                vec![want("web", "192.0.2.1", Some(60))],
            ),
            (
                "targets compare in canonical form",
                vec![
                    rec("sshd", "192.0.2.77/24", Some(600)),
                    rec("sshd", "::ffff:192.0.2.5", Some(600)),
                ],
                vec![
                    map("192.0.2.0/24", &["sshd"], Some(600)),
                    map("192.0.2.5/32", &["sshd"], Some(600)),
                ],
                vec![],
                vec![],
            ),
        ]);
    }

    #[test]
    fn stored_bans_say_where_the_maps_stand() {
        let mut r = Reconciler::new(NOW);
        for entry in [
            map("192.0.2.1/32", &["sshd"], Some(600)),
            map("192.0.2.2/32", &["sshd"], Some(60)),
            map("192.0.2.3/32", &["sshd", "web"], Some(600)),
            map("192.0.2.4/32", &["sshd"], Some(-1)),
        ] {
            r.mapped(&entry);
        }
        assert_eq!(r.mapped_count(), 4);
        let cases = [
            (rec("sshd", "192.0.2.1", Some(601)), Stored::Same),
            (rec("web", "192.0.2.1", Some(600)), Stored::Other),
            (rec("sshd", "192.0.2.2", Some(600)), Stored::Other),
            (rec("sshd", "192.0.2.3", Some(600)), Stored::Other),
            (rec("sshd", "192.0.2.4", Some(600)), Stored::Absent),
            (rec("sshd", "192.0.2.5", Some(600)), Stored::Absent),
            (rec("sshd", "192.0.2.1", Some(-1)), Stored::Absent),
        ];
        for (record, want) in cases {
            assert_eq!(r.stored(&record), want, "{record:?}");
        }
    }

    /// A case: name, the store's bans, the maps' entries, what to adopt, what to re-apply.
    type Case = (
        &'static str,
        Vec<BanRecord>,
        Vec<ActiveBan>,
        Vec<Ban>,
        Vec<Ban>,
    );

    fn check(cases: Vec<Case>) {
        for (name, stored, mapped, adopt, reapply) in cases {
            let got = reconcile(&stored, &mapped, NOW);
            assert_eq!(got.adopt, adopt, "{name}: adopt");
            assert_eq!(got.reapply, reapply, "{name}: reapply");
        }
    }
}
