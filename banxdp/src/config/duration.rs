//! fail2ban's time expressions (`bantime = 1h 30m`, `findtime = 1d12h`, `-1`), parsed rather
//! than evaluated: fail2ban rewrites units into arithmetic and hands the result to Python's
//! `eval`; banxdp reads the same language (signed terms with optional units, summed) and
//! nothing else.
//!
//! Units, in any case: `s`/`ss`/`sec`/`second(s)`, `m`/`mm`/`min`/`minute(s)`,
//! `h`/`hh`/`hou`/`hour(s)`, `d`/`dd`/`da`/`day(s)`, `w`/`ww`/`we`/`wee`/`week(s)`,
//! `mo`/`mon`/`month(s)` (a twelfth of an average year), `y`/`yy`/`ye`/`yea`/`year(s)`
//! (365.25 days). A number without a unit is seconds.

/// An expression that is not a time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a time: {why} (examples: 600, 10m, 1h 30m, 1d, 1w, -1)")]
pub struct DurationError {
    pub text: String,
    pub why: String,
}

const YEAR: f64 = 365.25 * 86_400.0;

fn unit_seconds(unit: &str) -> Option<f64> {
    Some(match unit.to_lowercase().as_str() {
        "" | "s" | "ss" | "se" | "sec" | "second" | "seconds" => 1.0,
        "m" | "mm" | "mi" | "min" | "minute" | "minutes" => 60.0,
        "h" | "hh" | "ho" | "hou" | "hour" | "hours" => 3_600.0,
        "d" | "dd" | "da" | "day" | "days" => 86_400.0,
        "w" | "ww" | "we" | "wee" | "week" | "weeks" => 7.0 * 86_400.0,
        "mo" | "mon" | "month" | "months" => YEAR / 12.0,
        "y" | "yy" | "ye" | "yea" | "year" | "years" => YEAR,
        _ => return None,
    })
}

/// Parses a time expression into whole seconds (rounded toward zero, as fail2ban's `int()`).
pub fn parse_seconds(text: &str) -> Result<i64, DurationError> {
    let error = |why: &str| DurationError {
        text: text.to_string(),
        why: why.to_string(),
    };
    let mut total = 0.0f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(error("it is empty"));
    }
    let mut terms = 0;
    while !rest.is_empty() {
        let mut sign = 1.0;
        while let Some(r) = rest.strip_prefix(['+', '-']) {
            if rest.starts_with('-') {
                sign = -sign;
            }
            rest = r.trim_start();
        }
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return Err(error(&format!("expected a number at `{rest}`")));
        }
        let number: f64 = rest[..number_len]
            .parse()
            .map_err(|_| error(&format!("`{}` is not a number", &rest[..number_len])))?;
        rest = rest[number_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let factor = unit_seconds(unit).ok_or_else(|| error(&format!("unknown unit `{unit}`")))?;
        total += sign * number * factor;
        rest = rest[unit_len..].trim_start();
        terms += 1;
    }
    if terms == 0 || !total.is_finite() || total.abs() > 1e15 {
        return Err(error("it is out of range"));
    }
    #[expect(clippy::cast_possible_truncation, reason = "range checked above")]
    Ok(total.trunc() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fail2ban_time_expressions() {
        for (text, seconds) in [
            ("600", 600),
            ("10m", 600),
            ("1h", 3_600),
            ("1d", 86_400),
            ("1w", 604_800),
            ("-1", -1),
            ("1h 30m", 5_400),
            ("1hour+30min", 5_400),
            ("0d 1h 30m", 5_400),
            ("1d12h", 129_600),
            ("1year-6mo", 15_778_800),
            ("6 months", 15_778_800),
            ("5W", 3_024_000),
            ("0.5h", 1_800),
        ] {
            assert_eq!(parse_seconds(text), Ok(seconds), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for text in [
            "",
            "10x",
            "ten minutes",
            "1h; rm -rf /",
            "__import__('os')",
            "1e400",
        ] {
            let e = parse_seconds(text).unwrap_err();
            assert!(e.to_string().contains("is not a time"), "{e}");
        }
    }
}
