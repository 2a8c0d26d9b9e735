//! `banxdp trace`: the XDP program's verdicts streamed through aya-log (needs root).
//!
//! First the program alone, through `BPF_PROG_TEST_RUN`: the switch, the filter union and
//! the records. Then the real daemon in a namespace: a banned and an allowed source send
//! packets, `banxdp trace` prints the verdicts of the source it names and nothing else, and
//! the switch is off again once the client has gone.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant},
};

use banxdp::enforce::{
    Enforcer as _,
    xdp::{XdpEnforcer, XdpPlan, trace::Tracer},
};
use banxdp_common::{TRACE_ON_V4, TRACE_ON_V6};
use banxdp_tests::{all_ports, ban_for, frame::*, privileged};

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
