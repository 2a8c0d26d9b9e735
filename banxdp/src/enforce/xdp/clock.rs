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

/// How often the line is checked against a fresh sample (when bans are written).
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The program's `.data.clock` global and what user space keeps to fill it.
pub(super) struct ProgramClock {
    map: Option<ClockMap>,
    jiffies: Option<Jiffies>,
    coarse: bool,
    /// How far the bound is made to lag the boot clock (tests of the exact path); 0 else.
    lag_ns: u64,
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
    /// Whether the program has been given `jiffy_base` (with `jiffy_ns` still 0) yet.
    base_written: bool,
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
                self.fail(format_args!("the clock probe failed: {e}"));
                return None;
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

impl ProgramClock {
    /// `map` is the object's clock global, if it has one; `jiffies` and `coarse` say which
    /// bounds the program was loaded to allow.
    pub(super) fn new(map: Option<Map>, jiffies: bool, coarse: bool) -> Result<Self, XdpError> {
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
        let jiffies = if jiffies && matches!(map, Some(ClockMap::Full(_))) {
            match ClockProbe::load() {
                Ok(probe) => Some(Jiffies {
                    probe,
                    line: None,
                    base_written: false,
                    sampled: None,
                    failed: false,
                }),
                Err(e) => {
                    tracing::info!(
                        "xdp: cannot read jiffies ({e}); expiry checks use the coarse clock"
                    );
                    None
                }
            }
        } else {
            None
        };
        Ok(Self {
            map,
            jiffies,
            coarse,
            lag_ns: 0,
        })
    }

    /// Writes the global: the boot offset, and the jiffies line once it is known (its base
    /// first, in a write of its own, so that no run of the program sees the tick without it).
    pub(super) fn refresh(&mut self) -> Result<(), XdpError> {
        let boot_offset = sys::boot_offset_ns();
        let offset = boot_offset.wrapping_sub(self.lag_ns);
        match &mut self.map {
            None => Ok(()),
            Some(ClockMap::OffsetOnly(map)) => map.set(0, offset, 0).map_err(map_err(MAP_CLOCK)),
            Some(ClockMap::Full(map)) => {
                let mut clock = Clock {
                    boot_offset: offset,
                    jiffy_ns: 0,
                    jiffy_base: 0,
                };
                if let Some((jiffies, line)) = self
                    .jiffies
                    .as_mut()
                    .and_then(|jiffies| jiffies.line().map(|line| (jiffies, line)))
                {
                    // The line bounds the monotonic clock; the offset lifts it to the boot
                    // clock.
                    clock.jiffy_base = line.base.wrapping_add(offset);
                    if !jiffies.base_written {
                        map.set(0, clock, 0).map_err(map_err(MAP_CLOCK))?;
                        jiffies.base_written = true;
                    }
                    clock.jiffy_ns = line.tick_ns;
                }
                map.set(0, clock, 0).map_err(map_err(MAP_CLOCK))
            }
        }
    }

    /// Makes the bound lag the boot clock by `lag` from now on (tests of the exact path).
    pub(super) fn lag(&mut self, lag: Duration) -> Result<(), XdpError> {
        self.lag_ns = u64::try_from(lag.as_nanos()).unwrap_or(u64::MAX);
        self.refresh()
    }

    /// The bound the program checks expiries on, far from a ban's end.
    pub(super) fn in_use(&self) -> ExpiryClock {
        if self
            .jiffies
            .as_ref()
            .is_some_and(|jiffies| jiffies.base_written && jiffies.line.is_some())
        {
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
