//! `banxdp trace`: the XDP program's verdicts streamed through aya-log (needs root).
//!
//! First the program alone, through `BPF_PROG_TEST_RUN`: the switch, the filter union and
//! the records. Then the real daemon in a namespace: a banned and an allowed source send
//! packets, `banxdp trace` prints the verdicts of the source it names and nothing else, and
//! the switch is off again once the client has gone.

use std::{
    io::{BufRead as _, BufReader},
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use aya::maps::{Array, Map, MapData, MapInfo};
use banxdp::enforce::{
    Enforcer as _,
    xdp::{ObjectSource, XdpEnforcer, XdpPlan, sys, trace::Tracer},
};
use banxdp_common::{MAP_BANS_V4, MAP_TRACE, TRACE_ON_V4, TRACE_ON_V6};
use banxdp_tests::{
    Topology, all_ports, ban_for,
    daemon::{Daemon, Setup, bin},
    eventually,
    frame::*,
    netns::IFACE,
    privileged,
};

/// The kernel resolves a test run's ingress device: loopback (1) always exists.
const IFINDEX: u32 = 1;
const ATTACKER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 66);
const BYSTANDER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 67);
const VICTIM: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const ATTACKER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x66);
const VICTIM6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);

fn private_program() -> (XdpEnforcer, Tracer) {
    let mut xdp = XdpEnforcer::load(&XdpPlan {
        interfaces: Vec::new(),
        pin_dir: None,
        ..XdpPlan::default()
    })
    .expect("load the embedded XDP program");
    let tracer = xdp.take_tracer().expect("the embedded program traces");
    assert!(xdp.take_tracer().is_none(), "the tracer is handed out once");
    (xdp, tracer)
}

/// What the tracer read, as `source verdict reason jails` lines.
fn drained(tracer: &mut Tracer) -> Vec<String> {
    tracer
        .drain()
        .into_iter()
        .map(|v| {
            assert_eq!(v.ifindex, IFINDEX);
            let verdict = if v.dropped { "drop" } else { "pass" };
            let jails = tracer.jail_names(v.jails).join(",");
            format!("{} {verdict} {} {jails}", v.source, v.reason)
        })
        .collect()
}

#[test]
fn the_switch_is_off_until_a_trace_runs_and_filters_by_source() {
    if !privileged("the_switch_is_off_until_a_trace_runs_and_filters_by_source") {
        return;
    }
    let (mut xdp, mut tracer) = private_program();
    xdp.add_jail(&all_ports("sshd")).unwrap();
    xdp.ban_many(&[
        ban_for("sshd", "198.51.100.66", 600),
        ban_for("sshd", "2001:db8:1::66", 600),
    ])
    .unwrap();
    let attacker = udp4(ATTACKER, VICTIM, 22);
    let bystander = udp4(BYSTANDER, VICTIM, 22);
    let attacker6 = udp6(ATTACKER6, VICTIM6, 22);

    // No trace: no record, whatever the verdict.
    assert_eq!(tracer.switch().unwrap(), 0);
    for frame in [&attacker, &bystander, &attacker6] {
        xdp.test_run(frame, IFINDEX).unwrap();
    }
    assert_eq!(drained(&mut tracer), Vec::<String>::new());

    // One trace of the attacker: its verdicts only.
    tracer
        .add(Some("198.51.100.66/32".parse().unwrap()))
        .unwrap();
    assert_eq!(tracer.switch().unwrap(), TRACE_ON_V4);
    for frame in [&attacker, &bystander, &attacker6] {
        xdp.test_run(frame, IFINDEX).unwrap();
    }
    assert_eq!(drained(&mut tracer), ["198.51.100.66 drop drop_v4 sshd"]);

    // A second, wider trace: the union; the first one's end leaves the second running.
    tracer
        .add(Some("198.51.100.0/24".parse().unwrap()))
        .unwrap();
    tracer
        .remove(Some("198.51.100.66/32".parse().unwrap()))
        .unwrap();
    for frame in [&attacker, &bystander, &attacker6] {
        xdp.test_run(frame, IFINDEX).unwrap();
    }
    assert_eq!(
        drained(&mut tracer),
        [
            "198.51.100.66 drop drop_v4 sshd",
            "198.51.100.67 pass pass_clean "
        ]
    );

    // The allow list wins over the ban, and the trace says so (with the ban's jail).
    xdp.set_allowed(&["198.51.100.66/32".parse().unwrap()])
        .unwrap();
    xdp.test_run(&attacker, IFINDEX).unwrap();
    assert_eq!(
        drained(&mut tracer),
        ["198.51.100.66 pass pass_allowed sshd"]
    );
    xdp.set_allowed(&[]).unwrap();

    // A trace of everything adds IPv6; when the last trace ends the switch is off.
    tracer.add(None).unwrap();
    assert_eq!(tracer.switch().unwrap(), TRACE_ON_V4 | TRACE_ON_V6);
    xdp.test_run(&attacker6, IFINDEX).unwrap();
    assert_eq!(drained(&mut tracer), ["2001:db8:1::66 drop drop_v6 sshd"]);
    tracer.remove(None).unwrap();
    tracer
        .remove(Some("198.51.100.0/24".parse().unwrap()))
        .unwrap();
    assert_eq!(tracer.switch().unwrap(), 0);
    for frame in [&attacker, &bystander, &attacker6] {
        xdp.test_run(frame, IFINDEX).unwrap();
    }
    assert_eq!(drained(&mut tracer), Vec::<String>::new());
}

#[test]
fn filters_beyond_the_tries_capacity_are_refused_whole() {
    if !privileged("filters_beyond_the_tries_capacity_are_refused_whole") {
        return;
    }
    let (_xdp, mut tracer) = private_program();
    let cap = banxdp_common::TRACE_FILTERS;
    for i in 0..cap {
        let net = format!("10.0.{}.{}/32", i / 256, i % 256);
        tracer.add(Some(net.parse().unwrap())).unwrap();
    }
    // The same filter again only counts; a new one does not fit.
    tracer.add(Some("10.0.0.0/32".parse().unwrap())).unwrap();
    let error = tracer
        .add(Some("192.0.2.0/24".parse().unwrap()))
        .unwrap_err();
    assert!(error.to_string().contains("192.0.2.0/24"), "{error}");
    // Every source needs room in both families: refused, and IPv6 stays off.
    assert!(tracer.add(None).is_err());
    assert_eq!(tracer.switch().unwrap(), TRACE_ON_V4);
    for i in 0..cap {
        let net = format!("10.0.{}.{}/32", i / 256, i % 256);
        tracer.remove(Some(net.parse().unwrap())).unwrap();
    }
    assert_eq!(
        tracer.switch().unwrap(),
        TRACE_ON_V4,
        "10.0.0.0/32 was asked twice"
    );
    tracer.remove(Some("10.0.0.0/32".parse().unwrap())).unwrap();
    assert_eq!(tracer.switch().unwrap(), 0);
    tracer.add(None).unwrap();
    assert_eq!(tracer.switch().unwrap(), TRACE_ON_V4 | TRACE_ON_V6);
}

/// The ids of the loaded programs.
fn program_ids() -> std::collections::HashSet<u32> {
    aya::programs::loaded_programs()
        .flatten()
        .map(|p| p.id())
        .collect()
}

/// A private program from `object` with one all-ports ban, and its descriptor (found as the
/// one `banxdp` program that appeared with it).
fn measured(object: ObjectSource) -> (XdpEnforcer, aya::programs::ProgramFd) {
    let before = program_ids();
    let mut xdp = XdpEnforcer::load(&XdpPlan {
        object,
        interfaces: Vec::new(),
        pin_dir: None,
        ..XdpPlan::default()
    })
    .unwrap();
    xdp.add_jail(&all_ports("sshd")).unwrap();
    xdp.ban_many(&[ban_for("sshd", "198.51.100.66", 6000)])
        .unwrap();
    let new: Vec<_> = aya::programs::loaded_programs()
        .flatten()
        .filter(|p| !before.contains(&p.id()) && p.name_as_str() == Some("banxdp"))
        .collect();
    assert_eq!(new.len(), 1, "another program loaded meanwhile; run again");
    let fd = new[0].fd().unwrap();
    (xdp, fd)
}

/// What tracing costs the program alone (`BPF_PROG_TEST_RUN`, 25 rounds of 2,000,000 runs,
/// min and median ns a run): off, on for another network, on for the packets' own. With
/// `BANXDP_BASELINE_OBJECT=path/to/older.bpf.o`, that object is measured alongside.
/// `cargo test --release -p banxdp-tests --test daemon_trace -- --ignored --nocapture`
#[test]
#[ignore = "a measurement; prints, asserts nothing"]
fn trace_cost_per_packet() {
    if !privileged("trace_cost_per_packet") {
        return;
    }
    let baseline = std::env::var_os("BANXDP_BASELINE_OBJECT")
        .map(|path| measured(ObjectSource::File(path.into())));
    let (mut xdp, fd) = measured(ObjectSource::Embedded);
    let mut tracer = xdp.take_tracer().unwrap();
    let drop = udp4(ATTACKER, VICTIM, 22);
    let pass = udp4(BYSTANDER, VICTIM, 22);
    let run = |fd: &aya::programs::ProgramFd, frame: &[u8]| {
        use std::os::fd::AsFd as _;
        sys::test_run(fd.as_fd(), frame, IFINDEX, 2_000_000, false, 0)
            .unwrap()
            .duration_ns
    };
    for (phase, filter) in [
        ("off", None),
        ("on, another network", Some("203.0.113.0/24")),
        ("on, these sources", Some("198.51.100.0/24")),
    ] {
        if let Some(net) = filter {
            tracer.add(Some(net.parse().unwrap())).unwrap();
        }
        let mut rows: Vec<[u32; 4]> = Vec::new();
        for _ in 0..25 {
            let old = baseline
                .as_ref()
                .map(|(_, fd)| (run(fd, &drop), run(fd, &pass)));
            let (a, b) = old.unwrap_or_default();
            rows.push([a, run(&fd, &drop), b, run(&fd, &pass)]);
            tracer.drain();
        }
        let stat = |i: usize| {
            let mut v: Vec<u32> = rows.iter().map(|r| r[i]).collect();
            v.sort_unstable();
            format!("{}/{}", v[0], v[v.len() / 2])
        };
        println!(
            "trace {phase}: drop {} ns (baseline {}), pass {} ns (baseline {})",
            stat(1),
            stat(0),
            stat(3),
            stat(2)
        );
    }
}

const BANNED: &str = "198.51.100.66";
const ALLOWED: &str = "198.51.100.67";
const N: usize = 10;

/// A `banxdp trace` client, its output lines arriving on a channel.
struct TraceClient {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl TraceClient {
    fn start(setup: &Setup, args: &[&str]) -> Self {
        let mut child = Command::new(bin())
            .arg("--socket")
            .arg(setup.path("banxdp.sock"))
            .arg("trace")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start banxdp trace");
        let lines = forward(child.stdout.take().unwrap());
        let stderr = forward(child.stderr.take().unwrap());
        Self {
            child,
            lines,
            stderr,
        }
    }

    /// Waits (up to 10 s) for the first stderr line: the daemon's "tracing ..." answer.
    fn started(&self) -> String {
        self.stderr
            .recv_timeout(Duration::from_secs(10))
            .expect("banxdp trace says it is tracing")
    }

    /// Up to `count` lines, waiting at most `wait` for each.
    fn take(&self, count: usize, wait: Duration) -> Vec<String> {
        let mut got = Vec::new();
        while got.len() < count {
            match self.lines.recv_timeout(wait) {
                Ok(line) => got.push(line),
                Err(_) => break,
            }
        }
        got
    }
}

impl Drop for TraceClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward(from: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            if send.send(line).is_err() {
                return;
            }
        }
    });
    receive
}

/// The `TRACE` switch of the program the daemon runs: the program that uses the pinned
/// `BANS_V4` map, and its (unpinned) `TRACE` map.
fn trace_switch(pins: &Path) -> u32 {
    let bans = MapData::from_pin(pins.join(MAP_BANS_V4)).expect("pinned BANS_V4");
    let bans = bans.info().unwrap().id();
    let mut found = Vec::new();
    // Programs and maps are the whole system's: another test's (or the host's) may be
    // unloaded between listing and opening, and is then not the one sought.
    for program in aya::programs::loaded_programs().flatten() {
        let Ok(Some(ids)) = program.map_ids() else {
            continue;
        };
        if !ids.contains(&bans) {
            continue;
        }
        for id in ids {
            let Ok(info) = MapInfo::from_id(id) else {
                continue;
            };
            if info.name_as_str() == Some(MAP_TRACE) {
                let map =
                    Array::<_, u32>::try_from(Map::Array(MapData::from_id(id).unwrap())).unwrap();
                found.push(map.get(&0, 0).unwrap());
            }
        }
    }
    assert_eq!(
        found.len(),
        1,
        "one program uses the pinned maps: {found:?}"
    );
    found[0]
}

fn fields(line: &str) -> Vec<&str> {
    line.split_whitespace().skip(1).collect()
}

#[test]
fn trace_streams_the_named_sources_verdicts_and_ends_with_its_client() {
    if !privileged("trace_streams_the_named_sources_verdicts_and_ends_with_its_client") {
        return;
    }
    let topo = Topology::new(&[BANNED, ALLOWED], &[]);
    let setup = Setup::new(
        "[web]\nenabled = true\nfilter = web\nport = 7000:7010\nprotocol = udp\n\
         logpath = /dev/null\nmaxretry = 3\nbantime = 600\n",
        "",
    );
    setup.filter("web", "[Definition]\nfailregex = ^fail <HOST>$\n");
    let mut daemon = Daemon::start(
        &topo.victim,
        &setup.path("banxdp.toml"),
        setup.path("daemon.log"),
    );
    daemon.wait_for_log("enforcing 0 ban(s)");
    let ban = setup.client(&["ban", BANNED, "--jail", "web"]);
    assert!(ban.status.success(), "{ban:?}");
    assert_eq!(trace_switch(&setup.pins.0), 0, "no trace runs yet");
    assert_eq!(topo.udp_delivered(BANNED, 7000, N), 0);

    // The banned source: its drops, with the reason, the interface and the jail; nothing of
    // the other source.
    let banned = TraceClient::start(&setup, &[BANNED]);
    let said = banned.started();
    assert!(said.contains(&format!("tracing {BANNED}")), "{said}");
    assert_eq!(trace_switch(&setup.pins.0), TRACE_ON_V4);
    assert_eq!(topo.udp_delivered(ALLOWED, 7000, N), N);
    assert_eq!(topo.udp_delivered(BANNED, 7000, N), 0);
    let lines = banned.take(N, Duration::from_secs(5));
    assert_eq!(lines.len(), N, "{lines:?}");
    for line in &lines {
        assert_eq!(
            fields(line),
            [IFACE, BANNED, "drop", "drop_v4", "web"],
            "{line}"
        );
    }

    // The same as JSON, one object a line.
    let json = TraceClient::start(&setup, &["--json", BANNED]);
    json.started();
    assert_eq!(topo.udp_delivered(BANNED, 7000, 2), 0);
    let lines = json.take(2, Duration::from_secs(5));
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["interface"], IFACE, "{line}");
        assert_eq!(event["source"], BANNED, "{line}");
        assert_eq!(event["verdict"], "drop", "{line}");
        assert_eq!(event["reason"], "drop_v4", "{line}");
        assert_eq!(event["jails"], serde_json::json!(["web"]), "{line}");
        assert!(
            event["time_ms"].as_u64().unwrap() > 1_600_000_000_000,
            "{line}"
        );
    }
    assert_eq!(banned.take(2, Duration::from_secs(5)).len(), 2);
    drop(json);

    // The other source, traced beside it: passes, no jail; the first trace still sees only
    // its own source.
    let allowed = TraceClient::start(&setup, &[&format!("{ALLOWED}/32")]);
    allowed.started();
    assert_eq!(topo.udp_delivered(ALLOWED, 7000, N), N);
    let lines = allowed.take(N, Duration::from_secs(5));
    assert_eq!(lines.len(), N, "{lines:?}");
    for line in &lines {
        assert_eq!(
            fields(line),
            [IFACE, ALLOWED, "pass", "pass_clean"],
            "{line}"
        );
    }
    assert_eq!(
        banned.take(1, Duration::from_millis(500)),
        Vec::<String>::new()
    );

    // Clients gone: the switch goes off with the last one.
    drop(allowed);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        trace_switch(&setup.pins.0),
        TRACE_ON_V4,
        "one trace still runs"
    );
    drop(banned);
    eventually("the trace switch is off", || {
        trace_switch(&setup.pins.0) == 0
    });

    // A trace does not survive the daemon: the client says so and fails.
    let mut everything = TraceClient::start(&setup, &[]);
    everything.started();
    assert_eq!(trace_switch(&setup.pins.0), TRACE_ON_V4 | TRACE_ON_V6);
    assert!(daemon.stop());
    let status = everything.child.wait().unwrap();
    assert!(!status.success());
    // Everything it wrote: the forwarder ends at the exited client's end of file.
    let said: Vec<String> = everything.stderr.iter().collect();
    assert!(
        said.iter()
            .any(|l| l.contains("the daemon ended the trace")),
        "{said:?}"
    );
    // The program the daemon leaves enforcing (its link is pinned) traces no more.
    assert_eq!(trace_switch(&setup.pins.0), 0);
    assert_eq!(topo.udp_delivered(BANNED, 7000, N), 0, "and still drops");
}
