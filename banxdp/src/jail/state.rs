//! The jail's state machine: failures in, ban decisions out, time injected.
//!
//! A failure counts when it is younger than `findtime` (a restart re-reading old lines does
//! not ban), its address is not ignored, and this jail does not ban the address already.
//! When an address's count reaches `maxretry` within `findtime`, the jail decides a ban:
//! `bantime`, grown by `bantime.increment` for repeat offenders. The daemon enforces the
//! decision, and tells the jail when a ban ends ([`Jail::unbanned`]) or when `ignorecommand`
//! spared the address ([`Jail::spared`]). Ban counts (for the increment) start from what the
//! store holds ([`Jail::restore`]).
//!
//! Pure: no I/O, no clock, no randomness but a generator seeded from the parameters.

use std::time::{Duration, SystemTime};

use hashbrown::HashMap;
use ipnet::IpNet;

use super::{
    JailParams,
    ignore::canonical_net,
    increment::Increment,
    tracker::{Failure, Key, Tracker},
};
use crate::{
    config::jails::Bantime,
    enforce::{Ban, Expiry},
};

/// A ban the jail decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub target: IpNet,
    /// When the ban starts (unix seconds): the time of the failure that reached
    /// `maxretry`, or now for a manual ban.
    pub start: i64,
    /// How long it lasts, in seconds; `None` is permanent.
    pub duration: Option<i64>,
    /// How many times this jail (or every jail, with `bantime.overalljails`) has banned the
    /// target, this ban included.
    pub ban_count: u32,
    /// Failures that led to it.
    pub failures: u32,
    /// The last `maxmatches` matched lines, oldest first.
    pub matches: Vec<String>,
}

impl Decision {
    /// When the ban ends (unix seconds); `None` is never.
    #[must_use]
    pub fn end(&self) -> Option<i64> {
        self.duration.map(|d| self.start.saturating_add(d))
    }

    /// The ban as enforcers take it.
    #[must_use]
    pub fn to_ban(&self, jail: &str) -> Ban {
        let expiry = match self.end() {
            None => Expiry::Never,
            Some(end) => {
                let since_epoch = Duration::from_secs(u64::try_from(end).unwrap_or(0));
                Expiry::At(SystemTime::UNIX_EPOCH + since_epoch)
            }
        };
        Ban {
            jail: jail.to_string(),
            target: self.target,
            expiry,
        }
    }
}

/// What the jail has counted since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JailStats {
    /// Addresses with failures being counted now.
    pub currently_failed: usize,
    /// Failures counted.
    pub total_failed: u64,
    /// Failures of ignored addresses (`ignoreip`, `ignoreself`), dropped.
    pub ignored: u64,
    /// Failures older than `findtime`, or than the address's last ban, dropped.
    pub too_old: u64,
    /// Failures of addresses this jail bans already, dropped.
    pub already_banned: u64,
    /// Addresses forgotten because the jail's tracking limits were reached.
    pub evicted: u64,
    /// Bans decided (manual ones included).
    pub total_banned: u64,
    /// Bans in force, as far as the jail was told.
    pub currently_banned: usize,
    /// Bytes of matched lines kept.
    pub match_bytes: usize,
    /// Bans that got the plain `bantime` because `bantime.formula` failed on them.
    pub formula_errors: u64,
}

/// What the jail knows of an address it has banned. Packed (13 bytes where 16 pad out): a
/// daemon restoring a million bans keeps one of these for each.
#[derive(Clone, Copy, Debug)]
#[repr(C, packed)]
struct Known {
    /// Bans so far.
    count: u32,
    /// Start of the last ban.
    last_ban: i64,
    active: bool,
}

/// A jail (see the module's text).
#[derive(Debug)]
pub struct Jail {
    params: JailParams,
    tracker: Tracker,
    known: HashMap<Key, Known, foldhash::fast::RandomState>,
    /// How many of `known` are active.
    active: usize,
    stats: JailStats,
    rng: u64,
}

impl Jail {
    #[must_use]
    pub fn new(params: JailParams) -> Self {
        let rng = params.seed | 1;
        Self {
            params,
            tracker: Tracker::new(),
            known: HashMap::default(),
            active: 0,
            stats: JailStats::default(),
            rng,
        }
    }

    #[must_use]
    pub fn params(&self) -> &JailParams {
        &self.params
    }

    /// New parameters (`banxdp reload`), keeping the failures counted and the bans known:
    /// the new `maxretry`, `findtime` and limits apply from the next failure, the new
    /// `ignoreip` to every failure from now on.
    pub fn reconfigure(&mut self, params: JailParams) {
        self.params = params;
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.params.name
    }

    /// One failure of `target` (an address, or a network from `<CIDR>`/`<SUBNET>`) at
    /// `time` (unix seconds, the line's), with its matched `line`. Returns the ban when this
    /// failure reaches `maxretry` within `findtime`. Targets are canonical in decisions:
    /// host bits cleared, `::ffff:192.0.2.1` as `192.0.2.1`.
    pub fn failure(&mut self, target: IpNet, time: i64, line: &str, now: i64) -> Option<Decision> {
        let target = canonical_net(target);
        // A time in the future (a guessed year, a skewed clock) is now, as in fail2ban.
        let time = time.min(now);
        let findtime = self.params.findtime;
        if time < now - findtime {
            self.stats.too_old += 1;
            return None;
        }
        if self.params.ignore.contains(target.addr()) {
            self.stats.ignored += 1;
            return None;
        }
        let key = Key::of(target);
        let known = self.known.get(&key).copied();
        if let Some(k) = known {
            if k.active {
                self.stats.already_banned += 1;
                return None;
            }
            if time <= k.last_ban {
                self.stats.too_old += 1;
                return None;
            }
        }
        let count = known.map_or(0, |k| k.count);
        let weight = match &self.params.increment {
            Some(_) => Increment::failure_weight(count, self.params.maxretry),
            None => 1,
        };
        let failure = Failure {
            time,
            now,
            line,
            weight,
            findtime,
            maxmatches: self.params.maxmatches,
        };
        self.stats.total_failed += 1;
        let window = self.tracker.add(key, &failure, self.params.limits);
        if window.retry < self.params.maxretry {
            return None;
        }
        let window = self.tracker.remove(&key).expect("the window just counted");
        let duration = self.duration(None, count);
        if duration.is_some_and(|d| time.saturating_add(d) <= now) {
            // The ban would be over already (old lines read late).
            self.stats.too_old += 1;
            return None;
        }
        let seen = (window.failures, window.matches());
        Some(self.decide(key, target, time, duration, count, seen))
    }

    /// The duration of a ban: `manual` if given, else `bantime` grown for an address banned
    /// `count` times before.
    fn duration(&mut self, manual: Option<Bantime>, count: u32) -> Option<i64> {
        match manual.unwrap_or(self.params.bantime) {
            Bantime::Permanent => None,
            Bantime::Seconds(base) if manual.is_some() => Some(base),
            Bantime::Seconds(base) => Some(match &self.params.increment {
                None => base,
                Some(inc) => {
                    let random = next_random(&mut self.rng);
                    // A formula that fails on some count (`1 / (ban.Count - 1)`) falls back
                    // to the plain ban time, as fail2ban's does; the daemon sees it counted.
                    inc.ban_time(base, count, random).unwrap_or_else(|_| {
                        self.stats.formula_errors += 1;
                        base
                    })
                }
            }),
        }
    }

    fn decide(
        &mut self,
        key: Key,
        target: IpNet,
        start: i64,
        duration: Option<i64>,
        count: u32,
        (failures, matches): (u32, Vec<String>),
    ) -> Decision {
        let ban_count = count.saturating_add(1);
        self.set_known(
            key,
            Some(Known {
                count: ban_count,
                last_ban: start,
                active: true,
            }),
        );
        self.stats.total_banned += 1;
        Decision {
            target,
            start,
            duration,
            ban_count,
            failures,
            matches,
        }
    }

    /// Sets (or with `None`, forgets) what the jail knows of `key`'s bans, keeping count of
    /// the active ones.
    fn set_known(&mut self, key: Key, known: Option<Known>) {
        let old = match known {
            Some(k) => self.known.insert(key, k),
            None => self.known.remove(&key),
        };
        if old.is_some_and(|k| k.active) {
            self.active -= 1;
        }
        if known.is_some_and(|k| k.active) {
            self.active += 1;
        }
    }

    /// A manual ban (`banxdp ban ADDR [--for DURATION]`): `duration` if given, else the
    /// jail's `bantime` with its increment. The failures counted for the target are dropped.
    pub fn manual_ban(&mut self, target: IpNet, duration: Option<Bantime>, now: i64) -> Decision {
        let target = canonical_net(target);
        let key = Key::of(target);
        let window = self.tracker.remove(&key);
        let count = self.known.get(&key).map_or(0, |k| k.count);
        let duration = self.duration(duration, count);
        let seen = window.map_or((0, Vec::new()), |w| (w.failures, w.matches()));
        self.decide(key, target, now, duration, count, seen)
    }

    /// What the store knows of `target` at start: its ban count (summed over every jail
    /// when `bantime.overalljails`), the start of its last ban, and whether that ban is
    /// still in force.
    pub fn restore(&mut self, target: IpNet, count: u32, last_ban: i64, active: bool) {
        let key = Key::of(target);
        if active {
            self.tracker.remove(&key);
        }
        if active || self.params.increment.is_some() {
            let known = Known {
                count,
                last_ban,
                active,
            };
            self.set_known(key, Some(known));
        }
    }

    /// The ban of `target` ended or was lifted: its failures count again. Its ban count is
    /// kept when `bantime.increment` needs it.
    pub fn unbanned(&mut self, target: IpNet) {
        let key = Key::of(target);
        let kept = self
            .known
            .get(&key)
            .copied()
            .filter(|_| self.params.increment.is_some());
        self.set_known(key, kept.map(|k| Known { active: false, ..k }));
    }

    /// `ignorecommand` spared `target` after the jail decided its ban: the ban does not
    /// count, and the failure is counted as ignored.
    pub fn spared(&mut self, target: IpNet) {
        let key = Key::of(target);
        if let Some(k) = self.known.get(&key).copied() {
            let count = k.count.saturating_sub(1);
            let kept = (count > 0).then_some(Known {
                count,
                active: false,
                ..k
            });
            self.set_known(key, kept);
        }
        self.stats.total_banned = self.stats.total_banned.saturating_sub(1);
        self.stats.ignored += 1;
    }

    /// Whether this jail bans `target` now (as far as it was told).
    #[must_use]
    pub fn is_banned(&self, target: IpNet) -> bool {
        self.known.get(&Key::of(target)).is_some_and(|k| k.active)
    }

    /// Frees the failure windows that `findtime` has closed at `now`; returns how many.
    /// The daemon calls it now and then (every `findtime / 10`, say).
    pub fn expire(&mut self, now: i64) -> usize {
        self.tracker.expire(now - self.params.findtime)
    }

    /// Forgets what the jail knows of `target`'s past bans (the store purged them).
    pub fn forget(&mut self, target: IpNet) {
        let key = Key::of(target);
        if self.known.get(&key).is_some_and(|k| !k.active) {
            self.set_known(key, None);
        }
    }

    #[must_use]
    pub fn currently_failed(&self) -> usize {
        self.tracker.len()
    }

    #[must_use]
    pub fn total_failed(&self) -> u64 {
        self.stats.total_failed
    }

    #[must_use]
    pub fn stats(&self) -> JailStats {
        JailStats {
            currently_failed: self.tracker.len(),
            evicted: self.tracker.evicted,
            currently_banned: self.active,
            match_bytes: self.tracker.match_bytes(),
            ..self.stats
        }
    }

    /// Heap bytes the failure windows hold, by the tracker's account.
    #[must_use]
    pub fn tracked_heap_bytes(&self) -> usize {
        self.tracker.heap_bytes()
    }
}

/// splitmix64, as a number in [0, 1): the randomness of `bantime.rndtime`.
fn next_random(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    #[expect(clippy::cast_precision_loss, reason = "53 random bits")]
    let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
    unit
}
