//! The line that turns the kernel's jiffies counter into a lower bound of its monotonic
//! clock, for the XDP program's expiry check (see [`banxdp_common::Clock`]).
//!
//! Reading jiffies costs the program one load (the kernel inlines `bpf_jiffies64`), where
//! the coarse clock is a helper call. But a jiffy's length (`1e9 / HZ` ns) is a build option
//! of the kernel that it exposes nowhere, so user space works it out from one
//! [`ClockSample`]: jiffies start at `2^32 - 300 * HZ` when the kernel boots (so that their
//! low 32 bits wrap five minutes in), and so for the right `HZ` the jiffies elapsed since that
//! start agree with the monotonic clock within the moment the first tick took, while for any
//! other of the values kernels are built with they disagree by a sixth or more of the time
//! since the wrap. Where the choice is not clear (about five minutes after boot, when those
//! values all agree) or none fits, the program keeps the coarse clock and a later sample tries
//! again.
//!
//! The kernel advances jiffies by whole ticks at moments of the monotonic clock a tick apart,
//! never ahead of it, so `monotonic >= jiffies * tick + c` for some constant `c`. A sample
//! taken when the counter is at most [`MARGIN_NS`] behind its tick gives a `c` no higher than
//! the true one; later samples check that the line stays below the clock and near it, and
//! switch it off for good when it does not.

use std::time::{Duration, Instant};

use aya::maps::{Array, Map, MapData};
use banxdp_common::{Clock, MAP_CLOCK};

use super::{
    XdpError, map_err,
    plan::ExpiryClock,
    sys::{self, ClockProbe, ClockSample},
};

/// The `HZ` values Linux offers on x86 and arm64.
const HZ_CHOICES: [u64; 4] = [100, 250, 300, 1000];
/// How far the jiffies of the right `HZ` may lag the monotonic clock from boot on (the first
/// tick's delay): 5 s, against the tens of ms seen. Wider makes the window around the
/// five-minute mark in which no `HZ` can be told apart wider, not the answer wrong.
const BOOT_LAG_NS: u64 = 5_000_000_000;
/// How far behind its tick the counter may be when sampled (a timekeeping tick delayed by a
/// busy or preempted CPU): the line is lowered by this much on top of the tick it may be late.
pub const MARGIN_NS: u64 = 100_000_000;
/// How far the line may come to lag the clock before it is taken for wrong (a jiffy length
/// that is off makes the lag grow with time). Half of `EXPIRY_SLACK_NS`, so that the bound
/// still decides bans more than half a second from their end.
pub const MAX_LAG_NS: u64 = 500_000_000;

/// A kernel's jiffy in ns, rounded as the kernel rounds it (`TICK_NSEC`).
#[must_use]
pub fn tick_ns(hz: u64) -> u64 {
    (1_000_000_000 + hz / 2) / hz
}

/// The `HZ` the kernel that took `sample` was built with, when exactly one choice fits.
#[must_use]
pub fn identify_hz(sample: ClockSample) -> Option<u64> {
    let fits = |hz: &u64| {
        let start = (1u64 << 32) - 300 * hz;
        let elapsed_ns = i128::from(sample.jiffies.wrapping_sub(start)) * i128::from(tick_ns(*hz));
        (elapsed_ns - i128::from(sample.monotonic_ns)).unsigned_abs() <= u128::from(BOOT_LAG_NS)
    };
    let mut fitting = HZ_CHOICES.iter().filter(|hz| fits(hz));
    match (fitting.next(), fitting.next()) {
        (Some(hz), None) => Some(*hz),
        _ => None,
    }
}

/// `monotonic >= jiffies * tick_ns + base`, in wrapping arithmetic: `base` is far below zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JiffyLine {
    pub hz: u64,
    pub tick_ns: u64,
    pub base: u64,
}

/// What a later sample says of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Below the clock, and within [`MAX_LAG_NS`] of it.
    Holds,
    /// Above the clock: a bound built on it would end bans early.
    Ahead(Duration),
    /// More than [`MAX_LAG_NS`] below it.
    Lags(Duration),
}

impl JiffyLine {
    /// The line through `sample`, lowered by a tick and [`MARGIN_NS`]; `None` where the
    /// kernel's `HZ` cannot be told from it.
    #[must_use]
    pub fn calibrate(sample: ClockSample) -> Option<Self> {
        let hz = identify_hz(sample)?;
        let tick_ns = tick_ns(hz);
        let base = sample
            .monotonic_ns
            .wrapping_sub(sample.jiffies.wrapping_add(1).wrapping_mul(tick_ns))
            .wrapping_sub(MARGIN_NS);
        Some(Self { hz, tick_ns, base })
    }

    /// The line's value at `jiffies`.
    #[must_use]
    pub fn at(&self, jiffies: u64) -> u64 {
        jiffies.wrapping_mul(self.tick_ns).wrapping_add(self.base)
    }

    #[must_use]
    pub fn check(&self, sample: ClockSample) -> Check {
        // Wrapping, then signed: the two are within centuries of each other.
        #[expect(
            clippy::cast_possible_wrap,
            reason = "the difference of two nearby u64 values, read as signed"
        )]
        let below = sample.monotonic_ns.wrapping_sub(self.at(sample.jiffies)) as i64;
        let by = Duration::from_nanos(below.unsigned_abs());
        if below < 0 {
            Check::Ahead(by)
        } else if below.unsigned_abs() > MAX_LAG_NS {
            Check::Lags(by)
        } else {
            Check::Holds
        }
    }
}

/// How often the line is checked against a fresh sample: when bans are written, and on the
/// daemon's tidy tick (once a minute).
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Whether this build reads jiffies at all: the CPUs whose kernels offer exactly
/// [`HZ_CHOICES`] (others build with values such as 1024, which a choice near it would
/// mistake).
const JIFFIES_HERE: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// The program's `.data.clock` global and what user space keeps to fill it.
pub(super) struct ProgramClock {
    map: Option<ClockMap>,
    jiffies: Option<Jiffies>,
    published: Published,
    coarse: bool,
    /// How far the bound is made to lag the boot clock (tests of the exact path); 0 else.
    lag_ns: u64,
    /// How far the jiffies line is made to run ahead of it (tests that the program reads it).
    lead_ns: u64,
}

/// The global's layout: the whole [`Clock`], or the boot offset alone (an object from before
/// the jiffies line).
enum ClockMap {
    Full(Array<MapData, Clock>),
    OffsetOnly(Array<MapData, u64>),
}

struct Jiffies {
    probe: ClockProbe,
    line: Option<JiffyLine>,
    sampled: Option<Instant>,
    /// Set when a sample contradicted the line: the coarse clock serves from then on.
    failed: bool,
}

impl Jiffies {
    /// The line, once known and while samples (at most one per [`CHECK_EVERY`]) bear it out.
    fn line(&mut self) -> Option<JiffyLine> {
        if self.failed || self.sampled.is_some_and(|at| at.elapsed() < CHECK_EVERY) {
            return self.line;
        }
        self.sampled = Some(Instant::now());
        let sample = match self.probe.sample() {
            Ok(sample) => sample,
            Err(e) => {
                // The line found so far still holds; the next check samples again.
                tracing::debug!("xdp: the clock probe failed: {e}");
                return self.line;
            }
        };
        match self.line {
            None => {
                self.line = JiffyLine::calibrate(sample);
                if let Some(line) = self.line {
                    tracing::info!(
                        "xdp: expiry checks read jiffies (the kernel ticks at {} Hz)",
                        line.hz
                    );
                }
            }
            Some(line) => match line.check(sample) {
                Check::Holds => {}
                Check::Ahead(by) => self.fail(format_args!(
                    "jiffies at {} Hz ran {by:?} ahead of the monotonic clock",
                    line.hz
                )),
                Check::Lags(by) => self.fail(format_args!(
                    "jiffies at {} Hz fell {by:?} behind the monotonic clock",
                    line.hz
                )),
            },
        }
        self.line
    }

    fn fail(&mut self, why: std::fmt::Arguments<'_>) {
        tracing::warn!("xdp: {why}; expiry checks use the coarse clock from now on");
        self.failed = true;
        self.line = None;
    }
}

/// What the program holds of the line, and the writes that change it safely. The program
/// reads the tick, then jiffies, then the base, in loads of their own, while a write of the
/// global replaces all three: a run may see one field from before a write and the next from
/// after it. So a base only ever changes to another lower bound of the boot clock (a new
/// boot offset lifts it no further than the clock itself moved), the base reaches the
/// program before its first non-zero tick, and turning the line off leaves the last base in
/// place (a tick of 0 with a base of 0, read beside the old tick, would put the bound at
/// about 2^32 ticks, and end every ban at once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Published {
    base: Option<u64>,
    ticking: bool,
}

impl Published {
    /// The values to write, in order, so that the program reads `line` (`(tick, base)`, or
    /// none for the coarse clock) with `boot_offset`.
    fn writes(&mut self, boot_offset: u64, line: Option<(u64, u64)>) -> Vec<Clock> {
        let clock = |jiffy_ns, jiffy_base| Clock {
            boot_offset,
            jiffy_ns,
            jiffy_base,
        };
        let Some((tick, base)) = line else {
            self.ticking = false;
            return vec![clock(0, self.base.unwrap_or(0))];
        };
        let mut writes = Vec::with_capacity(2);
        if !self.ticking {
            writes.push(clock(0, base));
        }
        writes.push(clock(tick, base));
        *self = Self {
            base: Some(base),
            ticking: true,
        };
        writes
    }
}

impl ProgramClock {
    /// `map` is the object's clock global, if it has one; `probe` is there when the program
    /// was loaded to read jiffies, and `coarse` says whether it may read the coarse clock.
    pub(super) fn new(
        map: Option<Map>,
        probe: Option<ClockProbe>,
        coarse: bool,
    ) -> Result<Self, XdpError> {
        let map = match map {
            None => None,
            // An object from before the jiffies line holds the boot offset alone.
            Some(map) if Array::<&MapData, Clock>::try_from(&map).is_err() => Some(
                ClockMap::OffsetOnly(Array::try_from(map).map_err(map_err(MAP_CLOCK))?),
            ),
            Some(map) => Some(ClockMap::Full(
                Array::try_from(map).map_err(map_err(MAP_CLOCK))?,
            )),
        };
        let jiffies = probe
            .filter(|_| matches!(map, Some(ClockMap::Full(_))))
            .map(|probe| Jiffies {
                probe,
                line: None,
                sampled: None,
                failed: false,
            });
        Ok(Self {
            map,
            jiffies,
            published: Published::default(),
            coarse,
            lag_ns: 0,
            lead_ns: 0,
        })
    }

    /// The probe the program's jiffies branch needs, where this build and the kernel allow
    /// it: `None` keeps that branch out of the program.
    pub(super) fn probe() -> Option<ClockProbe> {
        if !JIFFIES_HERE {
            return None;
        }
        ClockProbe::load()
            .inspect_err(|e| {
                tracing::info!(
                    "xdp: cannot read jiffies ({e}); expiry checks use the coarse clock"
                );
            })
            .ok()
    }

    /// Writes the global: the boot offset, and the jiffies line while it is known and holds.
    pub(super) fn refresh(&mut self) -> Result<(), XdpError> {
        let boot_offset = sys::boot_offset_ns();
        let offset = boot_offset.wrapping_sub(self.lag_ns);
        match &mut self.map {
            None => Ok(()),
            Some(ClockMap::OffsetOnly(map)) => map.set(0, offset, 0).map_err(map_err(MAP_CLOCK)),
            Some(ClockMap::Full(map)) => {
                // The line bounds the monotonic clock; the offset lifts it to the boot clock.
                let line = self.jiffies.as_mut().and_then(Jiffies::line).map(|line| {
                    let base = line.base.wrapping_add(offset).wrapping_add(self.lead_ns);
                    (line.tick_ns, base)
                });
                for clock in self.published.writes(offset, line) {
                    map.set(0, clock, 0).map_err(map_err(MAP_CLOCK))?;
                }
                Ok(())
            }
        }
    }

    /// Makes the bound lag the boot clock by `lag` from now on (tests of the exact path).
    pub(super) fn lag(&mut self, lag: Duration) -> Result<(), XdpError> {
        self.lag_ns = u64::try_from(lag.as_nanos()).unwrap_or(u64::MAX);
        self.refresh()
    }

    /// Makes the jiffies line run ahead of the boot clock by `lead` from now on, as a wrong
    /// one would (tests that the program reads it).
    pub(super) fn lead_jiffies(&mut self, lead: Duration) -> Result<(), XdpError> {
        self.lead_ns = u64::try_from(lead.as_nanos()).unwrap_or(u64::MAX);
        self.refresh()
    }

    /// The bound the program checks expiries on, far from a ban's end.
    pub(super) fn in_use(&self) -> ExpiryClock {
        if self.published.ticking {
            ExpiryClock::Jiffies
        } else if self.coarse {
            ExpiryClock::Coarse
        } else {
            ExpiryClock::Exact
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    /// What a kernel built with `hz` reads `uptime_ns` after boot, its first tick `late_ns`
    /// late.
    fn sample(hz: u64, uptime_ns: u64, late_ns: u64) -> ClockSample {
        ClockSample {
            monotonic_ns: uptime_ns,
            jiffies: (1u64 << 32) - 300 * hz + (uptime_ns - late_ns) / tick_ns(hz),
        }
    }

    #[test]
    fn each_hz_is_told_apart_at_boot_and_hours_later() {
        for hz in HZ_CHOICES {
            for uptime in [
                2 * SECOND,
                60 * SECOND,
                3_600 * SECOND,
                400 * 86_400 * SECOND,
            ] {
                assert_eq!(
                    identify_hz(sample(hz, uptime, 60_000_000)),
                    Some(hz),
                    "HZ={hz} at {uptime} ns"
                );
            }
        }
    }

    #[test]
    fn near_the_five_minute_wrap_no_choice_is_made() {
        // There the jiffies of 250 and 300 Hz stand within seconds of each other.
        assert_eq!(identify_hz(sample(250, 301 * SECOND, 0)), None);
        assert_eq!(identify_hz(sample(300, 299 * SECOND, 0)), None);
    }

    #[test]
    fn a_counter_that_fits_no_choice_is_refused() {
        // As a kernel built with HZ=1024 (alpha) or with another start would read.
        let odd = ClockSample {
            monotonic_ns: 3_600 * SECOND,
            jiffies: (1u64 << 32) - 300 * 1024 + 3_600 * 1024,
        };
        assert_eq!(identify_hz(odd), None);
        assert_eq!(JiffyLine::calibrate(odd), None);
    }

    #[test]
    fn the_line_stays_below_the_clock_by_at_most_a_tick_and_the_margin() {
        for hz in HZ_CHOICES {
            let line = JiffyLine::calibrate(sample(hz, 3_600 * SECOND, 0)).unwrap();
            assert_eq!(line.hz, hz);
            // Every moment of the next day, with the counter as up to date as it can be.
            for at in (3_600 * SECOND..90_000 * SECOND).step_by(7_777_777_777) {
                let now = sample(hz, at, 0);
                let bound = line.at(now.jiffies);
                assert!(bound <= now.monotonic_ns, "HZ={hz}: ahead at {at}");
                assert!(
                    now.monotonic_ns - bound <= 2 * tick_ns(hz) + MARGIN_NS,
                    "HZ={hz}: lags at {at}"
                );
                assert_eq!(line.check(now), Check::Holds);
            }
        }
    }

    #[test]
    fn a_sample_with_a_stale_counter_still_gives_a_lower_bound() {
        // Taken while the counter was 80 ms behind (within the margin).
        let stale = ClockSample {
            monotonic_ns: 3_600 * SECOND,
            jiffies: sample(250, 3_600 * SECOND - 80_000_000, 0).jiffies,
        };
        let line = JiffyLine::calibrate(stale).unwrap();
        let fresh = sample(250, 3_600 * SECOND, 0);
        assert!(line.at(fresh.jiffies) <= fresh.monotonic_ns);
    }

    /// Every value a run of the program can read while one write replaces another: each
    /// field from either.
    fn torn(a: Clock, b: Clock) -> Vec<(u64, u64)> {
        let mut reads = Vec::new();
        for tick in [a.jiffy_ns, b.jiffy_ns] {
            for base in [a.jiffy_base, b.jiffy_base] {
                reads.push((tick, base));
            }
        }
        reads
    }

    #[test]
    fn no_torn_read_of_the_global_puts_a_tick_beside_a_base_not_on_a_line() {
        let line = |base| Some((4_000_000, base));
        let mut published = Published::default();
        let mut held = Clock::default();
        let mut bases = vec![];
        // Not yet known, known, lifted by a suspend, then contradicted.
        for (offset, next) in [
            (0, None),
            (0, line(7)),
            (5, line(12)),
            (5, line(12)),
            (5, None),
        ] {
            if let Some((_, base)) = next {
                bases.push(base);
            }
            for write in published.writes(offset, next) {
                for (tick, base) in torn(held, write) {
                    assert!(
                        tick == 0 || bases.contains(&base),
                        "tick {tick} beside base {base} between {held:?} and {write:?}"
                    );
                }
                held = write;
            }
        }
        assert_eq!(held.jiffy_ns, 0, "the line is off at the end");
        assert_eq!(held.jiffy_base, 12, "and its last base stays");
    }

    #[test]
    fn a_line_of_the_wrong_length_is_caught_ahead_or_lagging() {
        let truth = |at| sample(250, at, 0);
        let mut line = JiffyLine::calibrate(truth(3_600 * SECOND)).unwrap();
        line.tick_ns = tick_ns(300);
        line.base = truth(3_600 * SECOND)
            .monotonic_ns
            .wrapping_sub(truth(3_600 * SECOND).jiffies.wrapping_mul(line.tick_ns));
        assert!(matches!(line.check(truth(3_610 * SECOND)), Check::Lags(_)));
        line.tick_ns = tick_ns(100);
        line.base = truth(3_600 * SECOND)
            .monotonic_ns
            .wrapping_sub(truth(3_600 * SECOND).jiffies.wrapping_mul(line.tick_ns));
        assert!(matches!(line.check(truth(3_601 * SECOND)), Check::Ahead(_)));
    }
}
