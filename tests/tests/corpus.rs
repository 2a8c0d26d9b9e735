//! fail2ban's own filter test corpus, run through banxdp's engine: each filter of Debian's
//! /etc/fail2ban/filter.d against its sample log in fail2ban's test files, with the semantics
//! of fail2ban's `samplestestcase.py`. A line after `# failJSON: {...}` must match or not as
//! annotated, with the same host (as written) and time (local time of the suite's zone,
//! at the suite's "now"); a plain line must not match. `# filterOptions` runs the following
//! lines once per option set (modes); `# addFILE` continues in another file.
//!
//! Every assertion must pass: the test fails on any miss (each listed, by filter, in its
//! output), on a file it cannot read (`# addFILE` included) or an annotation it cannot
//! parse, and when the number of assertions is not [`TOTAL`], so that a miss cannot hide
//! behind an assertion gained elsewhere.
//!
//! Every line is also searched by every pattern of every filter variant through the engine
//! as it runs (PCRE2's JIT where it serves) and through the exact engine alone: the two must
//! give the same match and the same groups.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
};

use banxdp::filter::{
    Failure, Scanner,
    date::{Clock, Zone},
};
use banxdp_tests::stock::{CONFIG, LOGS, logs_with_filters, scanner as build};
use serde_json::{Map, Value as Json};
/// fail2ban's test "now": Sun Aug 14 12:00:00 CEST 2005.
const TEST_NOW: i64 = 1_124_013_600;
/// The time zone fail2ban's test suite sets.
const TEST_TZ: &str = "CET-01CEST-02,M3.5.0,M10.5.0";
/// The assertions of fail2ban 1.0.2's corpus that banxdp runs (all but those whose
/// constraint it cannot read, [`UNREAD`]).
const TOTAL: usize = 1381;
/// Assertions whose `constraint` (a Python expression) banxdp does not evaluate.
const UNREAD: usize = 0;

/// A filter as the corpus runs it, or why banxdp cannot run it yet.
struct Variant {
    name: String,
    opts: Map<String, Json>,
    /// The filter with what the file's earlier lines left (failure ids, buffer, last date).
    engine: Result<Scanner, String>,
}

/// The corpus' two kinds of condition: `name == 'x'` and `opts.get('k') ==/!= 'v'`.
fn condition(expr: &str, name: &str, opts: &Map<String, Json>) -> Option<bool> {
    let (left, negate, right) = if let Some((l, r)) = expr.split_once("!=") {
        (l.trim(), true, r.trim())
    } else {
        let (l, r) = expr.split_once("==")?;
        (l.trim(), false, r.trim())
    };
    let right = right.trim_matches(['\'', '"']);
    let value = if left == "name" {
        Some(name.to_string())
    } else {
        let key = left.strip_prefix("opts.get('")?.strip_suffix("')")?;
        opts.get(key).and_then(Json::as_str).map(str::to_string)
    };
    Some((value.as_deref() == Some(right)) != negate)
}

/// Local time (`TEST_TZ`) `YYYY-MM-DDTHH:MM:SS[.f]` as seconds since the epoch (fields may
/// have one digit, as Python's strptime allows).
fn local_time(text: &str) -> Option<f64> {
    let (main, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let parts: Vec<i32> = main
        .split(['-', 'T', ':'])
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [year, month, day, hour, minute, second] = parts.as_slice() else {
        return None;
    };
    // SAFETY: plain data, filled before mktime reads it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = *day;
    tm.tm_hour = *hour;
    tm.tm_min = *minute;
    tm.tm_sec = *second;
    tm.tm_isdst = -1;
    // SAFETY: a valid `tm`.
    let seconds = unsafe { libc::mktime(&raw mut tm) };
    #[expect(
        clippy::cast_precision_loss,
        reason = "times of 2005 fit a double exactly"
    )]
    Some(seconds as f64 + format!("0.{fraction}").parse::<f64>().ok()?)
}

/// Checks one line against its annotation; `Err` says how it differs.
fn check_line(
    variant: &mut Variant,
    line: &str,
    expected: &Map<String, Json>,
) -> Result<(), String> {
    let journal = variant.opts.get("logtype").and_then(Json::as_str) == Some("journal");
    let prefix = variant
        .opts
        .get("test.prefix-line")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string();
    let scanner = variant.engine.as_mut().map_err(|e| e.clone())?;
    scanner.set_check_all(true);
    // As the corpus runs filters: every failregex is tried, and a line must give exactly one
    // failure with an address (pending or no-fail results are not failures).
    let read = if journal {
        scanner.timed_line(&format!("{prefix}{line}"), TEST_NOW)
    } else {
        let clock = Clock {
            now: TEST_NOW,
            zone: Zone::Local,
        };
        scanner.line(line, &clock)
    };
    let time = read.time;
    let found: Vec<Failure> = read.failures.into_iter().filter(|t| !t.nofail).collect();
    if found.len() > 1 {
        return Err(format!("{} failregexes matched", found.len()));
    }
    let failure = found.into_iter().next();
    let should_match = expected
        .get("match")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let Some(failure) = failure else {
        return if should_match {
            Err("no match".into())
        } else {
            Ok(())
        };
    };
    if !should_match {
        return Err(format!("matched (host {:?}) but should not", failure.raw));
    }
    for (key, want) in expected {
        if matches!(key.as_str(), "time" | "match" | "desc" | "constraint") {
            continue;
        }
        // A list is compared as a sorted set; `null` means absent.
        if let Json::Array(items) = want {
            let mut want: Vec<String> = items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                .collect();
            want.sort();
            let got = if key == "users" {
                failure.users.clone()
            } else {
                Vec::new()
            };
            if got != want {
                return Err(format!("{key}: expected {want:?}, got {got:?}"));
            }
            continue;
        }
        let got = if key == "host" {
            Some(failure.raw.to_string())
        } else if key == "attempts" {
            Some(failure.attempts.to_string())
        } else {
            failure
                .fields
                .iter()
                .find(|(n, _)| n == key)
                .map(|(_, v)| v.to_string())
        };
        if want.is_null() {
            if got.as_deref().is_some_and(|g| !g.is_empty()) {
                return Err(format!("{key}: expected none, got {got:?}"));
            }
            continue;
        }
        let want_text = want
            .as_str()
            .map_or_else(|| want.to_string(), str::to_string);
        if got.as_deref() != Some(want_text.as_str()) {
            return Err(format!("{key}: expected {want}, got {got:?}"));
        }
    }
    if let Some(want) = expected.get("time").and_then(Json::as_str) {
        let want = local_time(want).ok_or("bad annotation time")?;
        #[expect(
            clippy::cast_precision_loss,
            reason = "times of 2005 fit a double exactly"
        )]
        let got = time.map(|t| t as f64);
        if got != Some(want) {
            return Err(format!("time: expected {want}, got {got:?}"));
        }
    }
    Ok(())
}

unsafe extern "C" {
    /// POSIX: re-read `TZ` (not exported by the libc crate).
    fn tzset();
}

#[derive(Default)]
struct Tally {
    passed: usize,
    skipped: usize,
    /// Files that could not be read, annotations that could not be parsed.
    broken: Vec<String>,
    misses: BTreeMap<String, Vec<String>>,
    /// Searches run through both the engine as it runs and the exact engine alone.
    engines_compared: usize,
    /// Searches the JIT answered among them.
    jit_served: usize,
    /// Where they differed: pattern, text, and the two answers.
    engines_differ: Vec<String>,
}

/// Runs every pattern of every variant's filter on `line`, on `line` without its date, and
/// on the prefregex's `content` of either (what the failregexes see), through the engine
/// and through the exact engine alone: the two must give the same match and groups.
fn compare_engines(variants: &[Variant], line: &str, tally: &mut Tally) {
    let clock = Clock {
        now: TEST_NOW,
        zone: Zone::Local,
    };
    for scanner in variants.iter().filter_map(|v| v.engine.as_ref().ok()) {
        let mut texts = vec![line.to_string()];
        if let Some((date, _)) = scanner.dates().find(line, &clock) {
            texts.push(date.strip(line));
        }
        for pattern in scanner.filter().patterns() {
            let mut contents = Vec::new();
            for text in &texts {
                let fast = pattern.search(text);
                let exact = pattern.search_exact(text);
                tally.engines_compared += 1;
                if pattern.has_jit() && text.is_ascii() && !text.contains('\n') {
                    tally.jit_served += 1;
                }
                // Past a bound each engine gives up in its own way; only answers count.
                if fast.is_ok() && exact.is_ok() && fast != exact {
                    tally.engines_differ.push(format!(
                        "{}\n    on {text:?}\n    engine {fast:?}\n    exact {exact:?}",
                        pattern.as_str()
                    ));
                }
                let groups = exact.ok().flatten().map(|hit| hit.groups);
                contents.extend(
                    groups
                        .into_iter()
                        .flatten()
                        .filter(|(name, _)| *name == "content")
                        .map(|(_, value)| value),
                );
            }
            texts.extend(contents);
        }
    }
}

/// The filter variants a `# filterOptions` line asks for (one per option set), and whether
/// the block that follows is skipped (`test.condition` false).
fn variants_for(filter: &str, data: Json, common: &Map<String, Json>) -> (Vec<Variant>, bool) {
    let mut variants = Vec::new();
    let mut ignore_block = false;
    let sets = match data {
        Json::Array(sets) => sets,
        other => vec![other],
    };
    for set in sets {
        let mut opts = common.clone();
        opts.extend(set.as_object().cloned().unwrap_or_default());
        if let Some(cond) = opts.get("test.condition").and_then(Json::as_str) {
            ignore_block = !condition(cond, filter, &opts).unwrap_or(false);
        }
        if !ignore_block {
            let name = format!("{filter}{opts:?}");
            let engine = build(filter, &opts);
            variants.push(Variant { name, opts, engine });
        }
    }
    (variants, ignore_block)
}

fn run_file(filter: &str, file: &str, tally: &mut Tally) {
    let mut files = vec![file.to_string()];
    let mut variants: Vec<Variant> = Vec::new();
    let mut common = Map::new();
    let mut ignore_block = false;
    let mut i = 0;
    while i < files.len() {
        let path = PathBuf::from(LOGS).join(&files[i]);
        i += 1;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) => {
                tally.broken.push(format!("{}: {error}", path.display()));
                continue;
            }
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let mut lines = text.lines().enumerate();
        while let Some((number, line)) = lines.next() {
            let annotation = line
                .trim_start_matches('#')
                .trim_start()
                .split_once(':')
                .filter(|_| line.starts_with('#'))
                .filter(|(k, _)| {
                    matches!(*k, "failJSON" | "fileOptions" | "filterOptions" | "addFILE")
                });
            let (expected, log_line) = if let Some((kind, json)) = annotation {
                let data = match serde_json::from_str::<Json>(json.trim()) {
                    Ok(data) => data,
                    Err(error) => {
                        tally.broken.push(format!(
                            "{}:{}: {kind}: {error}",
                            files[i - 1],
                            number + 1
                        ));
                        continue;
                    }
                };
                match kind {
                    "fileOptions" => {
                        common = data.as_object().cloned().unwrap_or_default();
                        continue;
                    }
                    "addFILE" => {
                        match data.as_str() {
                            Some(name) => files.push(name.to_string()),
                            None => tally.broken.push(format!(
                                "{}:{}: addFILE {data}",
                                files[i - 1],
                                number + 1
                            )),
                        }
                        continue;
                    }
                    "filterOptions" => {
                        (variants, ignore_block) = variants_for(filter, data, &common);
                        continue;
                    }
                    _ => {
                        let Some((_, next)) = lines.next() else { break };
                        (data.as_object().cloned().unwrap_or_default(), next)
                    }
                }
            } else if ignore_block || line.starts_with('#') || line.trim().is_empty() {
                continue;
            } else {
                (Map::new(), line)
            };
            if ignore_block {
                continue;
            }
            if variants.is_empty() {
                let opts = Map::new();
                let engine = build(filter, &opts);
                variants.push(Variant {
                    name: filter.to_string(),
                    opts,
                    engine,
                });
            }
            let place = format!("{}:{}", files[i - 1], number + 2);
            check_variants(filter, &mut variants, log_line, &expected, &place, tally);
        }
    }
}

/// Checks one annotated line (at `place`) against every variant of the filter.
fn check_variants(
    filter: &str,
    variants: &mut [Variant],
    log_line: &str,
    expected: &Map<String, Json>,
    place: &str,
    tally: &mut Tally,
) {
    compare_engines(variants, log_line, tally);
    for variant in variants {
        if let Some(constraint) = expected.get("constraint").and_then(Json::as_str) {
            match condition(constraint, filter, &variant.opts) {
                Some(true) => {}
                Some(false) => continue,
                None => {
                    tally.skipped += 1;
                    continue;
                }
            }
        }
        match check_line(variant, log_line, expected) {
            Ok(()) => tally.passed += 1,
            Err(why) => {
                tally
                    .misses
                    .entry(variant.name.clone())
                    .or_default()
                    .push(format!("{place}: {why}: {log_line}"));
            }
        }
    }
}

#[test]
fn fail2ban_corpus_through_banxdps_engine() {
    if !Path::new(LOGS).is_dir() || !Path::new(CONFIG).join("filter.d").is_dir() {
        assert!(
            std::env::var("BANXDP_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "needs fail2ban installed (apt-get install fail2ban)"
        );
        eprintln!("skipped fail2ban_corpus_through_banxdps_engine: needs fail2ban installed");
        return;
    }
    // SAFETY: this test binary runs this one test; nothing else reads the environment.
    unsafe {
        std::env::set_var("TZ", TEST_TZ);
        tzset();
    }
    let names = logs_with_filters();
    let mut tally = Tally::default();
    for name in &names {
        run_file(name, name, &mut tally);
    }
    let missed: usize = tally.misses.values().map(Vec::len).sum();
    let mut report = String::new();
    for (variant, misses) in &tally.misses {
        let _ = writeln!(report, "{variant}: {} missed", misses.len());
        for miss in misses.iter().take(3) {
            let _ = writeln!(report, "    {miss}");
        }
    }
    eprintln!("{report}");
    eprintln!(
        "corpus: {} filters, {} assertions passed, {missed} missed, {} skipped (unreadable constraint)",
        names.len(),
        tally.passed,
        tally.skipped
    );
    for broken in &tally.broken {
        eprintln!("  unreadable: {broken}");
    }
    eprintln!(
        "engines: {} searches compared, {} of them by the JIT, {} differ",
        tally.engines_compared,
        tally.jit_served,
        tally.engines_differ.len()
    );
    for differ in tally.engines_differ.iter().take(10) {
        eprintln!("  {differ}");
    }
    assert!(tally.broken.is_empty(), "{} unreadable", tally.broken.len());
    assert!(
        tally.engines_differ.is_empty(),
        "the JIT and the exact engine agree"
    );
    assert!(
        tally.jit_served * 2 > tally.engines_compared,
        "the JIT answers most searches"
    );
    assert_eq!(missed, 0, "every assertion passes");
    assert_eq!(
        (tally.passed + missed, tally.skipped),
        (TOTAL, UNREAD),
        "the corpus's assertions, run and left unread"
    );
}
