//! `bantime.increment`: bans that grow for repeat offenders, as fail2ban 1.0.2's observer
//! computes them (`server/observer.py`, `server/jail.py`'s `setBanTimeExtra`).
//!
//! - The first ban of an address lasts `bantime`. An address banned `n > 0` times before gets
//!   `f(bantime, n)`: with `bantime.multipliers`, `bantime × factor × multipliers[n]` (the
//!   last multiplier once `n` passes the list); otherwise `max(bantime, formula)`, the
//!   formula defaulting to `ban.Time * (1<<(ban.Count if ban.Count<20 else 20)) * banFactor`.
//!   Then `min(…, maxtime)`, then `+ random × rndtime` (`random` in [0, 1), injected).
//! - A permanent `bantime` never changes.
//! - An address banned `n > 0` times before weighs more when it fails again: each of its
//!   failures counts `min(2^min(n, 20) / 2 + 1, maxretry)` (after 1 ban: 2, after 2: 3, after
//!   3: 5, 9…), as fail2ban's observer adds `retryCount - 1` to each failure the filter found.
//! - `overalljails` makes the count the sum over every jail's bans; the ban counts come from
//!   the store, so the daemon sums them (this module only says whether to).
//!
//! Pure: no I/O, no clock, no randomness of its own.

use super::formula::{Formula, FormulaError, Num, Vars};

/// fail2ban's default formula: doubling, capped at 2^20.
pub const DEFAULT_FORMULA: &str = "ban.Time * (1<<(ban.Count if ban.Count<20 else 20)) * banFactor";

/// How a repeat offender's ban time grows.
#[derive(Clone, Debug, PartialEq)]
pub enum Growth {
    Formula(Formula),
    /// `bantime.multipliers`: one whole number per previous ban count (index 0 unused).
    Multipliers(Vec<i64>),
}

/// `bantime.increment` and its options, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Increment {
    /// `bantime.factor` (`banFactor`), default 1.
    pub factor: Num,
    pub growth: Growth,
    /// `bantime.maxtime`: the longest ban, in seconds.
    pub maxtime: Option<i64>,
    /// `bantime.rndtime`: up to this many seconds are added at random.
    pub rndtime: Option<i64>,
    /// `bantime.overalljails`: count the address's bans in every jail.
    pub overalljails: bool,
}

/// An increment option that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IncrementError {
    #[error("invalid bantime.{option} {source}")]
    Formula {
        option: &'static str,
        #[source]
        source: FormulaError,
    },
    #[error("invalid bantime.multipliers `{text}`: `{word}` is not a whole number")]
    Multiplier { text: String, word: String },
}

impl Increment {
    /// The increment a jail's configuration asks for, or `None` when it is off.
    pub fn from_config(
        c: &crate::config::jails::Increment,
    ) -> Result<Option<Self>, IncrementError> {
        if !c.enabled {
            return Ok(None);
        }
        let formula_error = |option| move |source| IncrementError::Formula { option, source };
        let factor = match c.factor.as_deref().map(str::trim) {
            None | Some("") => Num::Int(1),
            Some(text) => {
                let vars = Vars {
                    time: Num::Int(0),
                    count: 0,
                    factor: Num::Int(1),
                };
                Formula::parse(text, false)
                    .and_then(|f| f.eval(&vars))
                    .map_err(formula_error("factor"))?
            }
        };
        let multipliers = c.multipliers.as_deref().unwrap_or("").trim();
        let growth = if multipliers.is_empty() {
            let text = c
                .formula
                .as_deref()
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .unwrap_or(DEFAULT_FORMULA);
            Growth::Formula(Formula::parse(text, true).map_err(formula_error("formula"))?)
        } else {
            let words = multipliers.split_whitespace();
            Growth::Multipliers(
                words
                    .map(|w| {
                        w.parse::<i64>().map_err(|_| IncrementError::Multiplier {
                            text: multipliers.into(),
                            word: w.into(),
                        })
                    })
                    .collect::<Result<_, _>>()?,
            )
        };
        let increment = Self {
            factor,
            growth,
            maxtime: c.maxtime,
            rndtime: c.rndtime.filter(|r| *r > 0),
            overalljails: c.overalljails,
        };
        // Evaluate once, so that a formula that cannot work (`1 << 1.5`) fails at start.
        increment
            .ban_time(600, 1, 0.0)
            .map_err(formula_error("formula"))?;
        Ok(Some(increment))
    }

    /// How long the ban of an address banned `count` times before lasts, for a jail whose
    /// `bantime` is `base` seconds; `random` is in [0, 1).
    pub fn ban_time(&self, base: i64, count: u32, random: f64) -> Result<i64, FormulaError> {
        if base <= 0 || count == 0 {
            return Ok(base);
        }
        let mut seconds = match &self.growth {
            Growth::Multipliers(m) => {
                let index = usize::try_from(count)
                    .unwrap_or(usize::MAX)
                    .min(m.len() - 1);
                Num::Int(base).as_f64() * self.factor.as_f64() * Num::Int(m[index]).as_f64()
            }
            Growth::Formula(formula) => {
                let vars = Vars {
                    time: Num::Int(base),
                    count: i64::from(count),
                    factor: self.factor,
                };
                formula.eval(&vars)?.as_f64().max(Num::Int(base).as_f64())
            }
        };
        if let Some(max) = self.maxtime {
            seconds = seconds.min(Num::Int(max).as_f64());
        }
        if let Some(rnd) = self.rndtime {
            seconds += random * Num::Int(rnd).as_f64();
        }
        Ok(to_seconds(seconds))
    }

    /// What each failure of an address banned `count` times before counts for.
    #[must_use]
    pub fn failure_weight(count: u32, maxretry: u32) -> u32 {
        if count == 0 {
            return 1;
        }
        ((1u32 << count.min(20)) / 2 + 1).min(maxretry.max(1))
    }
}

/// Whole seconds (toward zero), saturating: a formula may grow past any sensible ban.
fn to_seconds(f: f64) -> i64 {
    if f.is_nan() {
        0
    } else if f >= 9.2e18 {
        i64::MAX / 4
    } else {
        #[expect(clippy::cast_possible_truncation, reason = "range checked above")]
        let s = f as i64;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::jails::Increment as Conf;

    fn conf(formula: Option<&str>, multipliers: Option<&str>, factor: Option<&str>) -> Conf {
        Conf {
            enabled: true,
            factor: factor.map(Into::into),
            formula: formula.map(Into::into),
            multipliers: multipliers.map(Into::into),
            maxtime: None,
            rndtime: None,
            overalljails: false,
        }
    }

    fn times(inc: &Increment, base: i64) -> Vec<i64> {
        (0..8)
            .map(|n| inc.ban_time(base, n, 0.0).unwrap())
            .collect()
    }

    #[test]
    fn off_unless_enabled() {
        let mut c = conf(None, None, None);
        c.enabled = false;
        assert_eq!(Increment::from_config(&c).unwrap(), None);
    }

    #[test]
    fn stock_growth_examples() {
        // (formula, multipliers, factor, bantime, ban times for 0..8 previous bans)
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            i64,
            [i64; 8],
        );
        let cases: [Case; 5] = [
            // The default: 1, 2, 4, 8, ... times bantime.
            (
                None,
                None,
                None,
                600,
                [600, 1200, 2400, 4800, 9600, 19200, 38400, 76800],
            ),
            (
                None,
                None,
                Some("2"),
                600,
                [600, 2400, 4800, 9600, 19200, 38400, 76800, 153_600],
            ),
            // jail.conf's multipliers, the last one used past the list's end.
            (
                None,
                Some("1 2 4 8 16 32 64"),
                None,
                600,
                [600, 1200, 2400, 4800, 9600, 19200, 38400, 38400],
            ),
            (
                None,
                Some("1 5 30 60 300 720 1440 2880"),
                None,
                60,
                [60, 300, 1800, 3600, 18000, 43200, 86400, 172_800],
            ),
            // jail.conf's "more aggressive" formula with its factor: the same doubling.
            (
                Some("ban.Time * math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)"),
                None,
                Some("2.0 / 2.885385"),
                600,
                [600, 1200, 2399, 4799, 9599, 19199, 38399, 76799],
            ),
        ];
        for (formula, multipliers, factor, base, want) in cases {
            let inc = Increment::from_config(&conf(formula, multipliers, factor))
                .unwrap()
                .unwrap();
            let got = times(&inc, base);
            for (g, w) in got.iter().zip(want) {
                assert!(
                    (g - w).abs() <= 1,
                    "{formula:?} {multipliers:?}: {got:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn maxtime_caps_and_rndtime_adds() {
        let mut c = conf(None, None, None);
        c.maxtime = Some(3000);
        c.rndtime = Some(100);
        let inc = Increment::from_config(&c).unwrap().unwrap();
        assert_eq!(inc.ban_time(600, 1, 0.0).unwrap(), 1200);
        assert_eq!(inc.ban_time(600, 1, 0.5).unwrap(), 1250);
        assert_eq!(inc.ban_time(600, 5, 0.0).unwrap(), 3000);
        assert_eq!(inc.ban_time(600, 5, 0.99).unwrap(), 3099);
        // The first ban and permanent bans do not change.
        assert_eq!(inc.ban_time(600, 0, 0.99).unwrap(), 600);
        assert_eq!(inc.ban_time(-1, 4, 0.5).unwrap(), -1);
    }

    #[test]
    fn formula_never_shortens_a_ban() {
        let inc = Increment::from_config(&conf(Some("ban.Time / 10"), None, None))
            .unwrap()
            .unwrap();
        assert_eq!(inc.ban_time(600, 3, 0.0).unwrap(), 600);
        let inc = Increment::from_config(&conf(
            Some("min(ban.Time * ban.Count ** 2, 86400) if ban.Count > 1 else ban.Time * 3"),
            None,
            None,
        ))
        .unwrap()
        .unwrap();
        assert_eq!(times(&inc, 600)[..5], [600, 1800, 2400, 5400, 9600]);
        assert_eq!(inc.ban_time(600, 20, 0.0).unwrap(), 86400);
    }

    #[test]
    fn bad_options_are_errors() {
        let bad = [
            conf(Some("ban.Time * banFactr"), None, None),
            conf(Some("ban.Time *"), None, None),
            conf(Some("__import__('os').system('id')"), None, None),
            conf(Some("ban.Time << 1.5"), None, None),
            conf(None, Some("1 2 x"), None),
            conf(None, None, Some("ban.Time")),
        ];
        for c in bad {
            let err = Increment::from_config(&c).unwrap_err().to_string();
            assert!(err.starts_with("invalid bantime."), "{err}");
        }
    }

    #[test]
    fn repeat_offenders_weigh_more() {
        let weights: Vec<u32> = (0..6).map(|n| Increment::failure_weight(n, 10)).collect();
        assert_eq!(weights, [1, 2, 3, 5, 9, 10]);
        assert_eq!(Increment::failure_weight(40, 5), 5);
    }
}
