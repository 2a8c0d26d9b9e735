//! fail2ban itself as the oracle: the installed fail2ban 1.0.2's own `setBanTimeExtra`
//! computes ban times for a table of increment options, and Python's `eval` computes a few
//! thousand random formulas; ours must agree. Skipped (with a line on stderr) where
//! /usr/bin/python3 cannot import fail2ban.

use std::{
    io::Write as _,
    process::{Command, Stdio},
};

use super::{
    formula::{Formula, Num, Vars},
    increment::Increment,
};
use crate::config::jails::Increment as IncrementConf;

const PYTHON: &str = "/usr/bin/python3";

/// Runs `script` with `input` on stdin; `None` when fail2ban's Python is not here.
fn python(test: &str, script: &str, input: &str) -> Option<String> {
    let probe = Command::new(PYTHON)
        .args(["-c", "import fail2ban.server.jail"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("{test}: skipped, {PYTHON} cannot import fail2ban");
        return None;
    }
    let mut child = Command::new(PYTHON)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_string();
    let feeder = std::thread::spawn(move || stdin.write_all(input.as_bytes()).expect("feed"));
    let out = child.wait_with_output().expect("python3 output");
    feeder.join().expect("feeder");
    assert!(out.status.success(), "python3 failed");
    Some(String::from_utf8(out.stdout).expect("utf-8"))
}

const BAN_TIMES: &str = r"
import sys, json, logging
logging.disable(logging.CRITICAL)
from fail2ban.server.jail import Jail
from fail2ban.server.observer import ObserverThread
for line in sys.stdin:
    opts = json.loads(line)
    j = object.__new__(Jail)
    j._banExtra = {}
    j.database = None
    j.setBanTimeExtra('increment', 'true')
    for k in ('factor', 'formula', 'multipliers', 'maxtime'):
        if opts.get(k) is not None:
            j.setBanTimeExtra(k, opts[k])
    ev = j.getBanTimeExtra()['evformula']
    print(json.dumps([float(ev(ObserverThread.BanTimeIncr(opts['bantime'], n))) for n in range(1, 25)]))
";

#[test]
fn ban_times_agree_with_fail2ban() {
    // (factor, formula, multipliers, maxtime in seconds, bantime)
    type Case = (
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        Option<i64>,
        i64,
    );
    let cases: [Case; 10] = [
        (None, None, None, None, 600),
        (Some("2"), None, None, None, 600),
        (Some("1.5"), None, None, Some(86_400), 600),
        (None, None, Some("1 2 4 8 16 32 64"), None, 600),
        (
            Some("3"),
            None,
            Some("1 5 30 60 300 720 1440 2880"),
            None,
            60,
        ),
        (
            Some("2.0 / 2.885385"),
            Some("ban.Time * math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)"),
            None,
            Some(604_800),
            600,
        ),
        (None, Some("ban.Time * ban.Count ** 2"), None, None, 300),
        (
            None,
            Some("min(ban.Time * 10 ** ban.Count, 3600 * 24 * 7)"),
            None,
            None,
            100,
        ),
        (
            None,
            Some("ban.Time + 60 * ban.Count if ban.Count < 5 else ban.Time * 100"),
            None,
            None,
            120,
        ),
        (
            None,
            Some("ban.Time // 3 * (ban.Count % 4 + 1) - 7"),
            None,
            None,
            1000,
        ),
    ];
    let mut input = String::new();
    for (factor, formula, multipliers, maxtime, bantime) in &cases {
        let opts = serde_json::json!({
            "factor": factor, "formula": formula, "multipliers": multipliers,
            "maxtime": maxtime.map(|m| m.to_string()), "bantime": bantime,
        });
        input.push_str(&opts.to_string());
        input.push('\n');
    }
    let Some(out) = python("ban_times_agree_with_fail2ban", BAN_TIMES, &input) else {
        return;
    };
    for ((factor, formula, multipliers, maxtime, bantime), line) in cases.iter().zip(out.lines()) {
        let theirs: Vec<f64> = serde_json::from_str(line).unwrap();
        let conf = IncrementConf {
            enabled: true,
            factor: factor.map(Into::into),
            formula: formula.map(Into::into),
            multipliers: multipliers.map(Into::into),
            maxtime: *maxtime,
            rndtime: None,
            overalljails: false,
        };
        let inc = Increment::from_config(&conf).unwrap().unwrap();
        for (n, want) in (1..).zip(theirs) {
            let ours = inc.ban_time(*bantime, n, 0.0).unwrap();
            // fail2ban keeps the float; a ban lasts its whole seconds.
            #[expect(
                clippy::cast_possible_truncation,
                reason = "ban times are far below 2^63"
            )]
            let want = want.trunc() as i64;
            assert_eq!(
                ours, want,
                "{formula:?} {multipliers:?} factor {factor:?}, count {n}"
            );
        }
    }
}

const EVAL: &str = r"
import sys, math, ast
class Ban:
    Time = 600
    Count = 3
ENV = {'__builtins__': {'min': min, 'max': max, 'abs': abs, 'int': int, 'float': float,
    'round': round, 'pow': pow, 'True': True, 'False': False},
    'math': math, 'ban': Ban, 'banFactor': 2}
def beyond_64_bits(tree):
    # Python's integers grow without bound, ours are 64 bits: formulas with a part that
    # goes past 2**62 are not compared.
    for node in ast.walk(tree):
        if isinstance(node, ast.expr):
            try:
                v = eval(compile(ast.Expression(node), 'f', 'eval'), ENV)
            except Exception:
                continue
            if isinstance(v, int) and abs(v) >= 2**62:
                return True
    return False
for line in sys.stdin:
    try:
        tree = ast.parse(line.strip(), mode='eval')
    except SyntaxError:
        print('S')
        continue
    if beyond_64_bits(tree):
        print('X')
        continue
    try:
        v = eval(compile(tree, 'f', 'eval'), ENV)
        print('F', repr(v)) if isinstance(v, float) else print('I', int(v))
    except (ArithmeticError, ValueError, TypeError):
        print('E')
";

const BINARY: [&str; 19] = [
    "+", "-", "*", "/", "//", "%", "**", "<<", ">>", "&", "|", "^", "<", "<=", ">", ">=", "==",
    "!=", "and",
];

/// A random formula from a grammar that covers the language.
fn random_formula(rng: &mut u64, depth: u32) -> String {
    fn pick(rng: &mut u64, n: u64) -> u64 {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng % n
    }
    if depth == 0 || pick(rng, 4) == 0 {
        return match pick(rng, 9) {
            0 => "ban.Time".into(),
            1 => "ban.Count".into(),
            2 => "banFactor".into(),
            3 => format!("{}.5", pick(rng, 4)),
            4 => "True".into(),
            _ => pick(rng, 12).to_string(),
        };
    }
    let op = usize::try_from(pick(rng, 28)).expect("small");
    let sub = |rng: &mut u64| random_formula(rng, depth - 1);
    match op {
        0..=18 => {
            let (a, b) = (sub(rng), sub(rng));
            // Small exponents and shifts, so that most results stay within 64 bits.
            let b = match BINARY[op] {
                "**" => format!("(({b}) % 3)"),
                "<<" => format!("(({b}) % 9)"),
                _ => b,
            };
            format!("{a} {} {b}", BINARY[op])
        }
        19 => format!("({})", sub(rng)),
        20 => format!("-{}", sub(rng)),
        21 => format!("not {}", sub(rng)),
        22 => format!("{} if {} else {}", sub(rng), sub(rng), sub(rng)),
        23 => format!("min({}, {})", sub(rng), sub(rng)),
        24 => format!("max({}, {}, {})", sub(rng), sub(rng), sub(rng)),
        25 => format!("int({})", sub(rng)),
        26 => format!("round({})", sub(rng)),
        _ => format!("{} or {}", sub(rng), sub(rng)),
    }
}

#[test]
fn random_formulas_agree_with_python() {
    let mut rng = 0x2545_F491_4F6C_DD1D_u64;
    let formulas: Vec<String> = (0..3000).map(|_| random_formula(&mut rng, 4)).collect();
    let input = formulas.join("\n") + "\n";
    let Some(out) = python("random_formulas_agree_with_python", EVAL, &input) else {
        return;
    };
    let vars = Vars {
        time: Num::Int(600),
        count: 3,
        factor: Num::Int(2),
    };
    let (mut compared, mut syntax_errors, mut mismatches) = (0, 0, Vec::new());
    for (text, theirs) in formulas.iter().zip(out.lines()) {
        let parsed = Formula::parse(text, true);
        if theirs == "S" || parsed.is_err() {
            // Text Python cannot read (`1 < not 2`), nor can we.
            if theirs != "S" || parsed.is_ok() {
                mismatches.push(format!("{text}: python {theirs}, ours {parsed:?}"));
            }
            syntax_errors += 1;
            continue;
        }
        let ours = parsed.expect("checked").eval(&vars);
        let agree = match (theirs.split_once(' '), &ours) {
            (None, _) if theirs == "X" => continue, // beyond i64 in Python: not compared
            (None, Err(_)) => true,
            (Some(("I", v)), Ok(Num::Int(i))) => v.parse::<i64>().unwrap() == *i,
            (Some(("F", v)), Ok(Num::Float(f))) => {
                let v: f64 = v.parse().unwrap();
                (v - f).abs() <= 1e-9 * v.abs().max(1.0)
            }
            _ => false,
        };
        compared += 1;
        if !agree {
            mismatches.push(format!("{text}: python {theirs}, ours {ours:?}"));
        }
    }
    eprintln!("{compared} formulas compared, {syntax_errors} refused by both");
    assert!(compared > 2000, "{compared}");
    assert!(
        mismatches.is_empty(),
        "{}:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

const FAIL_MANAGER: &str = r"
import sys, json
from fail2ban.server.failmanager import FailManager
from fail2ban.server.ticket import FailTicket
for line in sys.stdin:
    case = json.loads(line)
    fm = FailManager()
    fm.setMaxRetry(case['maxretry'])
    fm.setMaxTime(case['findtime'])
    fm.maxMatches = case['maxmatches']
    bans = []
    now = 0
    for i, (ip, t) in enumerate(case['failures']):
        # The filter's clock is the newest time seen; it drops lines older than findtime
        # and cleans the failure list up before each line.
        now = max(now, t)
        if t < now - case['findtime']:
            continue
        fm.cleanup(now)
        attempts = fm.addFailure(FailTicket(ip, t, ['line %d' % i]))
        if attempts >= case['maxretry']:
            ticket = fm.toBan(ip)
            bans.append([i, ticket.getAttempt(), ticket.getMatches()])
    print(json.dumps(bans))
";

/// Random failures of a few addresses, some lines out of order, counted by fail2ban's own
/// `FailManager` (cleaned up before each failure: a real filter does it every few seconds)
/// and by ours: the same bans, at the same
/// failures, with the same counts and matches.
#[test]
fn failure_windows_agree_with_fail2ban() {
    use super::{
        Env, Jail, JailParams, Limits, Services,
        tests::{conf, resolve},
    };
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        i64::try_from(rng % n).expect("small")
    };
    let mut cases = Vec::new();
    for round in 0..40 {
        let (maxretry, findtime) = (2 + next(5), 60 * (1 + next(20)));
        let mut t = 1_765_000_000;
        let failures: Vec<(String, i64)> = (0..400)
            .map(|_| {
                // Mostly forward, sometimes a line a little out of order.
                t += if next(10) == 0 {
                    -next(30)
                } else {
                    next(u64::try_from(findtime / 2).unwrap())
                };
                (format!("192.0.2.{}", next(6 + round % 10)), t)
            })
            .collect();
        cases.push((maxretry, findtime, 1 + next(4), failures));
    }
    let mut input = String::new();
    for (maxretry, findtime, maxmatches, failures) in &cases {
        let case = serde_json::json!({
            "maxretry": maxretry, "findtime": findtime, "maxmatches": maxmatches,
            "failures": failures,
        });
        input.push_str(&case.to_string());
        input.push('\n');
    }
    let Some(out) = python("failure_windows_agree_with_fail2ban", FAIL_MANAGER, &input) else {
        return;
    };
    let services = Services::default();
    let mut total_bans = 0;
    for ((maxretry, findtime, maxmatches, failures), line) in cases.iter().zip(out.lines()) {
        let theirs: Vec<(usize, u32, Vec<String>)> = serde_json::from_str(line).unwrap();
        let mut c = conf();
        c.ignoreip.clear();
        c.ignoreself = false;
        c.port = None;
        c.maxretry = u32::try_from(*maxretry).unwrap();
        c.findtime = *findtime;
        c.maxmatches = Some(u32::try_from(*maxmatches).unwrap());
        let env = Env {
            services: &services,
            local_addrs: &[],
            resolve: &resolve,
            seed: 0,
            limits: Limits::default(),
        };
        let mut jail = Jail::new(JailParams::from_config(&c, &env).unwrap());
        let mut ours = Vec::new();
        for (i, (ip, t)) in failures.iter().enumerate() {
            let target = crate::enforce::parse_target(ip).unwrap();
            // `now` is the newest time seen: out-of-order lines are in the past.
            let now = failures[..=i].iter().map(|f| f.1).max().unwrap();
            if let Some(d) = jail.failure(target, *t, &format!("line {i}"), now) {
                ours.push((i, d.failures, d.matches));
                // FailManager knows nothing of bans: the address counts afresh.
                jail.unbanned(target);
            }
        }
        total_bans += ours.len();
        // The first difference, with the address's failures before it.
        if let Some(k) = (0..ours.len().min(theirs.len())).find(|&k| ours[k] != theirs[k]) {
            let at = ours[k].0.min(theirs[k].0);
            let ip = &failures[at].0;
            let before: Vec<_> = failures[at.saturating_sub(30)..=at]
                .iter()
                .filter(|f| &f.0 == ip)
                .collect();
            panic!(
                "maxretry {maxretry}, findtime {findtime}: ours {:?}, fail2ban's {:?}; {ip} \
                 failed at {before:?}",
                ours[k], theirs[k]
            );
        }
        assert_eq!(ours, theirs, "maxretry {maxretry}, findtime {findtime}");
    }
    assert!(total_bans > 500, "{total_bans} bans compared");
}
