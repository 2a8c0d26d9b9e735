//! Shared pieces of banxdp's privileged tests and benchmarks: the root gate, network
//! namespaces and veth pairs that undo themselves on drop, entering a namespace on the
//! current thread, and hand-built Ethernet frames.
//!
//! Every test builds its own namespaces with unique names and addresses from the
//! documentation ranges (`198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`), which exist only
//! inside them. Nothing here touches the root namespace's interfaces.

#![expect(
    clippy::must_use_candidate,
    reason = "command helpers return output that most callers run only for the effect"
)]

pub mod authlog;
pub mod clients;
pub mod daemon;
pub mod flood;
pub mod frame;
pub mod netns;
pub mod seccomp;
pub mod services;
pub mod stock;

pub use netns::{Netns, Topology, with_netns};

use std::time::{Duration, SystemTime};

use banxdp::enforce::{Ban, Expiry, JailScope, PortScope, parse_target};

/// A jail whose bans cover every port, not in shadow mode.
pub fn all_ports(name: &str) -> JailScope {
    JailScope {
        name: name.into(),
        ports: PortScope::All,
        shadow: false,
    }
}

/// A jail that bans UDP `port` alone.
pub fn udp_port(name: &str, port: u16) -> JailScope {
    JailScope {
        name: name.into(),
        ports: PortScope::Ports {
            protocols: vec![banxdp_common::IPPROTO_UDP],
            ranges: vec![port..=port],
        },
        shadow: false,
    }
}

/// `jail` bans `target` (an address or a network) for `secs` seconds from now.
pub fn ban_for(jail: &str, target: &str, secs: u64) -> Ban {
    ban_until(
        jail,
        target,
        Expiry::At(SystemTime::now() + Duration::from_secs(secs)),
    )
}

/// `jail` bans `target` until `expiry`.
pub fn ban_until(jail: &str, target: &str, expiry: Expiry) -> Ban {
    Ban {
        jail: jail.into(),
        target: parse_target(target).expect("a valid target"),
        expiry,
    }
}

/// Whether privileged tests may run. Without root they skip with a message, unless
/// `BANXDP_REQUIRE_PRIVILEGED=1` (as CI sets), where missing root is a failure.
#[must_use]
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return true;
    }
    assert!(
        std::env::var("BANXDP_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
        "{test}: needs root, and BANXDP_REQUIRE_PRIVILEGED=1 forbids skipping"
    );
    eprintln!(
        "skipped {test}: needs root (run as root, or set BANXDP_REQUIRE_PRIVILEGED=1 to fail instead)"
    );
    false
}

/// The failures in `fail2ban-regex -o row` output (`['ADDRESS',\tTIME,\t{...}],` per line):
/// (seconds since the epoch, address).
///
/// # Panics
/// On a row of another shape.
#[must_use]
pub fn fail2ban_rows(output: &str) -> Vec<(f64, String)> {
    output
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|line| {
            let mut parts = line.splitn(3, ",\t");
            let (Some(host), Some(time)) = (parts.next(), parts.next()) else {
                panic!("unexpected fail2ban-regex row `{line}`");
            };
            let host = host.trim_start_matches('[').trim_matches('\'').to_string();
            let time = time
                .parse()
                .unwrap_or_else(|_| panic!("no time in `{line}`"));
            (time, host)
        })
        .collect()
}

/// Runs `fail2ban-regex -o row` with `args` in UTC; its failures as [`fail2ban_rows`] reads
/// them.
///
/// # Panics
/// When fail2ban-regex cannot run or fails.
#[must_use]
pub fn fail2ban_regex_rows(args: &[&std::ffi::OsStr]) -> Vec<(f64, String)> {
    let out = std::process::Command::new("fail2ban-regex")
        .env("TZ", "UTC")
        .args(["-o", "row"])
        .args(args)
        .output()
        .expect("fail2ban-regex runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fail2ban_rows(&String::from_utf8_lossy(&out.stdout))
}

/// Whether the installed fail2ban (`program`: `fail2ban-client`, `fail2ban-regex`) can be
/// run; without it a test skips, except where `BANXDP_REQUIRE_PRIVILEGED=1` (CI) says every
/// test must run.
#[must_use]
pub fn fail2ban_present(test: &str, program: &str) -> bool {
    if std::process::Command::new(program)
        .arg("--help")
        .output()
        .is_ok()
    {
        return true;
    }
    assert!(
        std::env::var("BANXDP_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
        "{test}: needs {program} (apt-get install fail2ban)"
    );
    eprintln!("skipped {test}: needs {program} (apt-get install fail2ban)");
    false
}

/// Runs a Python `script` with `input` on its standard input and returns its standard
/// output. The input is fed from a thread: the script writes as it reads, and a full output
/// pipe would otherwise block both sides.
pub fn python(script: &str, input: Vec<u8>) -> Vec<u8> {
    use std::{io::Write as _, process::Stdio};
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut stdin = child.stdin.take().expect("piped");
    let feeder = std::thread::spawn(move || stdin.write_all(&input).expect("feed python3"));
    let out = child.wait_with_output().expect("python3 output");
    feeder.join().expect("feeder thread");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    out.stdout
}

/// Runs a command, panicking with its output when it fails.
pub fn sh(args: &[&str]) -> String {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A name unique to this process and call, short enough for an interface (15 bytes).
#[must_use]
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id() % 100_000)
}

/// Waits up to 10 s for `check` to hold, looking every 50 ms; panics naming `what` when it
/// does not.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("timed out waiting for: {what}");
}
