//! Verdicts of the real XDP program on crafted frames, run by the kernel through
//! `BPF_PROG_TEST_RUN` (needs root). Each test loads its own private copy of the program (no
//! pins, no attachment) and checks the verdict and the exact counter movements.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant, SystemTime},
};

use banxdp::enforce::{
    Ban, Enforcer as _, Expiry, JailScope, PortScope,
    xdp::{ExpiryClock, XdpEnforcer, XdpPlan, clock, sys},
};
use banxdp_common::{EXPIRY_SLACK_NS, IPPROTO_TCP, IPPROTO_UDP, counter};
use banxdp_tests::{all_ports, ban_for, frame::*, privileged, udp_port};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
/// The kernel resolves a test run's ingress device: loopback (1) always exists.
const IFINDEX: u32 = 1;

const ATTACKER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 66);
const BYSTANDER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 67);
const VICTIM: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const ATTACKER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x66);
const VICTIM6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);

fn private_program() -> XdpEnforcer {
    program_on(ExpiryClock::Jiffies)
}

/// A private program allowed no cheaper bound of the boot clock than `clock`.
fn program_on(clock: ExpiryClock) -> XdpEnforcer {
    XdpEnforcer::load(&XdpPlan {
        interfaces: Vec::new(),
        pin_dir: None,
        clock,
        ..XdpPlan::default()
    })
    .unwrap_or_else(|e| panic!("load the embedded XDP program on {clock:?}: {e}"))
}

fn ban(jail: &str, target: &str) -> Ban {
    ban_for(jail, target, 600)
}

/// Runs `frame` and checks the verdict and that exactly `reason` (and `seen`) moved.
fn expect(xdp: &mut XdpEnforcer, frame: &[u8], action: u32, reason: usize) {
    let before = xdp.counters_of(IFINDEX).unwrap();
    let got = xdp.test_run(frame, IFINDEX).unwrap();
    let after = xdp.counters_of(IFINDEX).unwrap();
    assert_eq!(
        got,
        action,
        "verdict for {frame:02x?} (expected reason {})",
        counter::NAMES[reason]
    );
    for (i, name) in counter::NAMES.iter().enumerate() {
        let wanted = u64::from(i == counter::SEEN || i == reason);
        assert_eq!(
            after[i] - before[i],
            wanted,
            "counter {name} for {frame:02x?}"
        );
    }
}

#[test]
fn exact_bans_drop_their_source_only() {
    if !privileged("exact_bans_drop_their_source_only") {
        return;
    }
    let mut xdp = private_program();
    xdp.add_jail(&all_ports("sshd")).unwrap();
    xdp.ban_many(&[ban("sshd", "198.51.100.66"), ban("sshd", "2001:db8:1::66")])
        .unwrap();
    expect(
        &mut xdp,
        &udp4(ATTACKER, VICTIM, 22),
        XDP_DROP,
        counter::DROP_V4,
    );
    expect(
        &mut xdp,
        &udp4(BYSTANDER, VICTIM, 22),
        XDP_PASS,
        counter::PASS_CLEAN,
    );
    expect(
        &mut xdp,
        &udp6(ATTACKER6, VICTIM6, 22),
        XDP_DROP,
        counter::DROP_V6,
    );
    let other6 = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x67);
    expect(
        &mut xdp,
        &udp6(other6, VICTIM6, 22),
        XDP_PASS,
        counter::PASS_CLEAN,
    );
    // A packet *to* the banned address is not from it.
    expect(
        &mut xdp,
        &udp4(VICTIM, ATTACKER, 22),
        XDP_PASS,
        counter::PASS_CLEAN,
    );

    let active = xdp.active().unwrap();
    let v4 = active
        .iter()
        .find(|b| b.target.to_string() == "198.51.100.66/32")
        .unwrap();
    assert_eq!(v4.drops, Some(1));
    assert_eq!(v4.jails, ["sshd"]);
}

#[test]
fn ipv4_mapped_ban_drops_the_ipv4_peer() {
    if !privileged("ipv4_mapped_ban_drops_the_ipv4_peer") {
        return;
    }
    let mut xdp = private_program();
    xdp.add_jail(&all_ports("sshd")).unwrap();
    xdp.ban(&ban("sshd", "::ffff:198.51.100.66")).unwrap();
    expect(
        &mut xdp,
        &udp4(ATTACKER, VICTIM, 22),
        XDP_DROP,
        counter::DROP_V4,
    );
}

#[test]
fn vlan_and_qinq_frames_are_judged_by_their_inner_source() {
    if !privileged("vlan_and_qinq_frames_are_judged_by_their_inner_source") {
        return;
    }
    let mut xdp = private_program();
    xdp.add_jail(&all_ports("sshd")).unwrap();
    xdp.ban(&ban("sshd", "198.51.100.66")).unwrap();
    let inner = ipv4(ATTACKER, VICTIM, UDP, 0, &udp(1, 22, b"x"));
    let clean = ipv4(BYSTANDER, VICTIM, UDP, 0, &udp(1, 22, b"x"));
    for tags in [
        vec![(ETH_P_8021Q, 100)],
        vec![(ETH_P_8021AD, 10), (ETH_P_8021Q, 100)],
    ] {
        expect(
            &mut xdp,
            &eth(&tags, ETH_P_IP, &inner),
            XDP_DROP,
            counter::DROP_V4,
        );
        expect(
            &mut xdp,
            &eth(&tags, ETH_P_IP, &clean),
            XDP_PASS,
            counter::PASS_CLEAN,
        );
    }
    // Three tags are more than the program walks: the third is not IP to it.
    let three = [(ETH_P_8021AD, 1), (ETH_P_8021Q, 2), (ETH_P_8021Q, 3)];
    expect(
        &mut xdp,
        &eth(&three, ETH_P_IP, &inner),
        XDP_PASS,
        counter::PASS_NOT_IP,
    );
}

#[test]
fn truncated_and_malformed_frames_pass() {
    if !privileged("truncated_and_malformed_frames_pass") {
        return;
    }
    let mut xdp = private_program();
    xdp.add_jail(&all_ports("sshd")).unwrap();
    xdp.ban_many(&[ban("sshd", "198.51.100.66"), ban("sshd", "2001:db8:1::66")])
        .unwrap();
    let good = udp4(ATTACKER, VICTIM, 22);
    let good6 = udp6(ATTACKER6, VICTIM6, 22);

    // An Ethernet header with nothing after it (the kernel refuses test frames shorter than
    // 14 bytes), an IPv4 header cut short, an IPv6 header cut short.
    expect(&mut xdp, &good[..14], XDP_PASS, counter::PASS_MALFORMED);
    expect(
        &mut xdp,
        &good[..14 + 19],
        XDP_PASS,
        counter::PASS_MALFORMED,
    );
    expect(
        &mut xdp,
        &good6[..14 + 39],
        XDP_PASS,
        counter::PASS_MALFORMED,
    );
    // A VLAN tag with nothing after it.
    expect(
        &mut xdp,
        &eth(&[(ETH_P_8021Q, 5)], ETH_P_IP, &[])[..16],
        XDP_PASS,
        counter::PASS_MALFORMED,
    );
    // IHL below 5, and a version field that lies.
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x44;
    expect(&mut xdp, &bad_ihl, XDP_PASS, counter::PASS_MALFORMED);
    let mut bad_version = good.clone();
    bad_version[14] = 0x65;
    expect(&mut xdp, &bad_version, XDP_PASS, counter::PASS_MALFORMED);
    let mut bad_version6 = good6.clone();
    bad_version6[14] = 0x40;
    expect(&mut xdp, &bad_version6, XDP_PASS, counter::PASS_MALFORMED);
    // ARP is not IP.
    expect(
        &mut xdp,
        &eth(&[], ETH_P_ARP, &[0; 28]),
        XDP_PASS,
        counter::PASS_NOT_IP,
    );
    // An IHL pointing past the end still drops on an all-ports ban: the source is known.
    let mut long_ihl = good.clone();
    long_ihl[14] = 0x4f;
    expect(&mut xdp, &long_ihl, XDP_DROP, counter::DROP_V4);
}

#[test]
fn cidr_bans_cover_their_range() {
    if !privileged("cidr_bans_cover_their_range") {
        return;
    }
    let mut xdp = private_program();
    xdp.add_jail(&all_ports("recidive")).unwrap();
    xdp.ban_many(&[
        ban("recidive", "203.0.113.0/24"),
        ban("recidive", "2001:db8:2::/64"),
    ])
    .unwrap();
    for last in [0, 7, 255] {
        let src = Ipv4Addr::new(203, 0, 113, last);
        expect(
            &mut xdp,
            &udp4(src, VICTIM, 80),
            XDP_DROP,
            counter::DROP_CIDR_V4,
        );
    }
    expect(
        &mut xdp,
        &udp4(Ipv4Addr::new(203, 0, 114, 1), VICTIM, 80),
        XDP_PASS,
        counter::PASS_CLEAN,
    );
    let inside = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0xdead, 0xbeef, 0, 1);
    let outside = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 1);
    expect(
        &mut xdp,
        &udp6(inside, VICTIM6, 80),
        XDP_DROP,
        counter::DROP_CIDR_V6,
    );
    expect(
        &mut xdp,
        &udp6(outside, VICTIM6, 80),
        XDP_PASS,
        counter::PASS_CLEAN,
    );

    // Unbanning the range lets it through again, and the program skips the empty trie.
    xdp.unban("recidive", "203.0.113.0/24".parse().unwrap())
        .unwrap();
    expect(
        &mut xdp,
        &udp4(Ipv4Addr::new(203, 0, 113, 7), VICTIM, 80),
        XDP_PASS,
        counter::PASS_CLEAN,
    );
}

#[test]
fn allow_list_beats_every_ban() {
    if !privileged("allow_list_beats_every_ban") {
        return;
    }
    let mut xdp = private_program();
    xdp.add_jail(&all_ports("sshd")).unwrap();
    xdp.ban_many(&[ban("sshd", "198.51.100.0/24"), ban("sshd", "198.51.100.66")])
        .unwrap();
    xdp.set_allowed(&["198.51.100.64/30".parse().unwrap()])
        .unwrap();
    expect(
        &mut xdp,
        &udp4(ATTACKER, VICTIM, 22),
        XDP_PASS,
        counter::PASS_ALLOWED,
    );
    expect(
        &mut xdp,
        &udp4(Ipv4Addr::new(198, 51, 100, 9), VICTIM, 22),
        XDP_DROP,
        counter::DROP_CIDR_V4,
    );
    // Emptying the allow list restores the ban.
    xdp.set_allowed(&[]).unwrap();
    expect(
        &mut xdp,
        &udp4(ATTACKER, VICTIM, 22),
        XDP_DROP,
        counter::DROP_V4,
    );
}

#[test]
fn port_scoped_bans_drop_only_their_jails_ports() {
    if !privileged("port_scoped_bans_drop_only_their_jails_ports") {
        return;
    }
    let mut xdp = private_program();
    let scope =
        |name: &str, protocols: Vec<u8>, ranges: Vec<std::ops::RangeInclusive<u16>>| JailScope {
            name: name.into(),
            ports: PortScope::Ports { protocols, ranges },
            shadow: false,
        };
    xdp.add_jail(&scope("sshd", vec![IPPROTO_TCP], vec![22..=22]))
        .unwrap();
    xdp.add_jail(&scope(
        "dns",
        vec![IPPROTO_UDP, IPPROTO_TCP],
        vec![53..=53, 5300..=5310],
    ))
    .unwrap();
    // The same address banned by both jails.
    xdp.ban_many(&[ban("sshd", "198.51.100.66"), ban("dns", "198.51.100.66")])
        .unwrap();
    let syn = |port| {
        eth(
            &[],
            ETH_P_IP,
            &ipv4(ATTACKER, VICTIM, TCP, 0, &tcp_syn(1234, port)),
        )
    };
    let dgram = |port| udp4(ATTACKER, VICTIM, port);
    expect(&mut xdp, &syn(22), XDP_DROP, counter::DROP_V4);
    expect(&mut xdp, &dgram(22), XDP_PASS, counter::PASS_OTHER_PORT);
    expect(&mut xdp, &dgram(53), XDP_DROP, counter::DROP_V4);
    expect(&mut xdp, &syn(5305), XDP_DROP, counter::DROP_V4);
    expect(&mut xdp, &syn(80), XDP_PASS, counter::PASS_OTHER_PORT);
    // A non-first fragment has no port: port-scoped bans cannot judge it.
    let fragment = eth(&[], ETH_P_IP, &ipv4(ATTACKER, VICTIM, UDP, 100, &[0; 16]));
    expect(&mut xdp, &fragment, XDP_PASS, counter::PASS_OTHER_PORT);

    // IPv6 through a hop-by-hop and a destination-options header to TCP 22.
    xdp.ban(&ban("sshd", "2001:db8:1::66")).unwrap();
    let mut ext = ipv6_options(60);
    ext.extend(ipv6_options(TCP));
    let v6 = eth(
        &[],
        ETH_P_IPV6,
        &ipv6(ATTACKER6, VICTIM6, 0, &ext, &tcp_syn(1, 22)),
    );
    expect(&mut xdp, &v6, XDP_DROP, counter::DROP_V6);
    let v6_other = eth(
        &[],
        ETH_P_IPV6,
        &ipv6(ATTACKER6, VICTIM6, 0, &ext, &tcp_syn(1, 23)),
    );
    expect(&mut xdp, &v6_other, XDP_PASS, counter::PASS_OTHER_PORT);
    // First fragment carries the port; a later one does not.
    let first = ipv6_fragment(TCP, 0, true);
    let v6_first = eth(
        &[],
        ETH_P_IPV6,
        &ipv6(ATTACKER6, VICTIM6, 44, &first, &tcp_syn(1, 22)),
    );
    expect(&mut xdp, &v6_first, XDP_DROP, counter::DROP_V6);
    let later = ipv6_fragment(TCP, 8, false);
    let v6_later = eth(
        &[],
        ETH_P_IPV6,
        &ipv6(ATTACKER6, VICTIM6, 44, &later, &[0; 20]),
    );
    expect(&mut xdp, &v6_later, XDP_PASS, counter::PASS_OTHER_PORT);

    // Lifting the sshd ban keeps the dns one.
    xdp.unban(
        "sshd",
        banxdp::enforce::parse_target("198.51.100.66").unwrap(),
    )
    .unwrap();
    expect(&mut xdp, &syn(22), XDP_PASS, counter::PASS_OTHER_PORT);
    expect(&mut xdp, &dgram(53), XDP_DROP, counter::DROP_V4);

    // Widening sshd to all ports takes effect for its existing bans (the IPv6 one).
    let v6_udp = udp6(ATTACKER6, VICTIM6, 9999);
    expect(&mut xdp, &v6_udp, XDP_PASS, counter::PASS_OTHER_PORT);
    xdp.add_jail(&all_ports("sshd")).unwrap();
    expect(&mut xdp, &v6_udp, XDP_DROP, counter::DROP_V6);
    expect(&mut xdp, &dgram(9999), XDP_PASS, counter::PASS_OTHER_PORT);
}

#[test]
fn shadow_jails_count_and_pass() {
    if !privileged("shadow_jails_count_and_pass") {
        return;
    }
    let mut xdp = private_program();
    xdp.add_jail(&JailScope {
        name: "trial".into(),
        ports: PortScope::All,
        shadow: true,
    })
    .unwrap();
    xdp.ban(&ban("trial", "198.51.100.66")).unwrap();
    for _ in 0..3 {
        expect(
            &mut xdp,
            &udp4(ATTACKER, VICTIM, 22),
            XDP_PASS,
            counter::PASS_SHADOW,
        );
    }
    let active = xdp.active().unwrap();
    assert_eq!(active[0].shadow_hits, Some(3));
    assert_eq!(active[0].drops, Some(0));

    // A shadow all-ports jail does not hide an enforcing port jail banning the same source.
    xdp.add_jail(&udp_port("sshd", 22)).unwrap();
    xdp.ban(&ban("sshd", "198.51.100.66")).unwrap();
    expect(
        &mut xdp,
        &udp4(ATTACKER, VICTIM, 22),
        XDP_DROP,
        counter::DROP_V4,
    );
    expect(
        &mut xdp,
        &udp4(ATTACKER, VICTIM, 23),
        XDP_PASS,
        counter::PASS_SHADOW,
    );
    xdp.unban(
        "sshd",
        banxdp::enforce::parse_target("198.51.100.66").unwrap(),
    )
    .unwrap();
    // Leaving shadow mode enforces the same ban.
    xdp.add_jail(&all_ports("trial")).unwrap();
    expect(
        &mut xdp,
        &udp4(ATTACKER, VICTIM, 22),
        XDP_DROP,
        counter::DROP_V4,
    );
}

#[test]
fn expired_bans_pass_and_are_swept() {
    if !privileged("expired_bans_pass_and_are_swept") {
        return;
    }
    let mut xdp = private_program();
    xdp.add_jail(&all_ports("sshd")).unwrap();
    xdp.add_jail(&all_ports("web")).unwrap();
    let past = Ban {
        expiry: Expiry::At(SystemTime::now() - Duration::from_secs(1)),
        ..ban("sshd", "198.51.100.66")
    };
    xdp.ban(&past).unwrap();
    expect(
        &mut xdp,
        &udp4(ATTACKER, VICTIM, 22),
        XDP_PASS,
        counter::PASS_EXPIRED,
    );
    // Permanent bans never expire.
    xdp.ban(&Ban {
        expiry: Expiry::Never,
        ..ban("web", "198.51.100.67")
    })
    .unwrap();
    assert_eq!(xdp.remove_expired().unwrap(), 1);
    expect(
        &mut xdp,
        &udp4(ATTACKER, VICTIM, 22),
        XDP_PASS,
        counter::PASS_CLEAN,
    );
    expect(
        &mut xdp,
        &udp4(BYSTANDER, VICTIM, 22),
        XDP_DROP,
        counter::DROP_V4,
    );
}

/// The program decides expiry three ways, each checked here: far from a ban's end a cheap
/// lower bound of the boot clock (jiffies on a calibrated line, on this kernel) keeps it in
/// force, within `EXPIRY_SLACK_NS` of the end the exact boot clock decides, and once the bound
/// itself has passed the end it alone says expired.
#[test]
fn expiry_is_exact_on_jiffies_and_the_exact_clock() {
    if !privileged("expiry_is_exact_on_jiffies_and_the_exact_clock") {
        return;
    }
    past_the_jiffies_wrap();
    let xdp = private_program();
    assert_eq!(
        xdp.expiry_clock(),
        ExpiryClock::Jiffies,
        "this kernel has bpf_jiffies64 and a HZ banxdp knows, so the program reads jiffies"
    );
    expiry_holds_at_each_moment(xdp);
}

/// The same moments on the coarse monotonic clock: what kernels from 5.11 serve where the
/// jiffies line cannot be calibrated.
#[test]
fn expiry_is_exact_on_the_coarse_and_the_exact_clock() {
    if !privileged("expiry_is_exact_on_the_coarse_and_the_exact_clock") {
        return;
    }
    assert!(
        sys::has_coarse_clock(),
        "this kernel has the coarse clock, or this test checks only the exact one"
    );
    let xdp = program_on(ExpiryClock::Coarse);
    assert_eq!(xdp.expiry_clock(), ExpiryClock::Coarse);
    expiry_holds_at_each_moment(xdp);
}

/// The same moments where the kernel lacks both (before Linux 5.5): the program is loaded
/// with them switched off, the verifier drops those branches, and the exact clock decides
/// every time.
#[test]
fn expiry_is_exact_without_a_cheap_clock() {
    if !privileged("expiry_is_exact_without_a_cheap_clock") {
        return;
    }
    let xdp = program_on(ExpiryClock::Exact);
    assert_eq!(xdp.expiry_clock(), ExpiryClock::Exact);
    expiry_holds_at_each_moment(xdp);
}

/// Far from the end, within the slack before it, just past it and past it by more than the
/// slack. Moments before the end are checked only when the run was over before it. The
/// program's bound of the boot clock is made to lag by half a second (as after a suspend
/// while no daemon ran), so that just past the end the bound still says "in force" and only
/// the exact clock can say "expired".
fn expiry_holds_at_each_moment(mut xdp: XdpEnforcer) {
    xdp.lag_clock(Duration::from_millis(500)).unwrap();
    xdp.add_jail(&all_ports("sshd")).unwrap();
    let slack = Duration::from_nanos(EXPIRY_SLACK_NS);
    let ends = SystemTime::now() + slack + Duration::from_millis(600);
    xdp.ban(&Ban {
        expiry: Expiry::At(ends),
        ..ban("sshd", "198.51.100.66")
    })
    .unwrap();
    let frame = udp4(ATTACKER, VICTIM, 22);
    let sleep_until = |at: SystemTime| {
        if let Ok(wait) = at.duration_since(SystemTime::now()) {
            std::thread::sleep(wait);
        }
    };
    // Far from the end (the coarse bound), then within the slack (the exact clock).
    for at in [
        ends - slack - Duration::from_millis(300),
        ends - Duration::from_millis(300),
    ] {
        sleep_until(at);
        let verdict = xdp.test_run(&frame, IFINDEX).unwrap();
        if SystemTime::now() < ends {
            assert_eq!(verdict, XDP_DROP, "in force until its end");
        }
    }
    // Just past the end, where the lagging bound still says "in force" and only the exact
    // clock knows, then past the end by more than the slack, where the bound knows.
    for after in [
        Duration::from_millis(100),
        slack + Duration::from_millis(100),
    ] {
        sleep_until(ends + after);
        expect(&mut xdp, &frame, XDP_PASS, counter::PASS_EXPIRED);
    }
}

#[test]
fn a_shared_ban_keeps_each_jails_own_expiry() {
    if !privileged("a_shared_ban_keeps_each_jails_own_expiry") {
        return;
    }
    let mut xdp = private_program();
    xdp.add_jail(&udp_port("short", 22)).unwrap();
    xdp.add_jail(&udp_port("long", 80)).unwrap();
    // The short ban's window is generous (the 20,000-ban test beside this one can stall it);
    // its end is waited for, not assumed at a fixed moment.
    let ends = SystemTime::now() + Duration::from_secs(2);
    xdp.ban(&Ban {
        expiry: Expiry::At(ends),
        ..ban("short", "198.51.100.66")
    })
    .unwrap();
    xdp.ban(&ban("long", "198.51.100.66")).unwrap();
    let verdict = xdp.test_run(&udp4(ATTACKER, VICTIM, 22), IFINDEX).unwrap();
    if SystemTime::now() < ends {
        assert_eq!(
            verdict, XDP_DROP,
            "the short jail's port, before its ban ends"
        );
    }
    // The sweep lifts the short jail's part once it has ended; the long one stays.
    let deadline = SystemTime::now() + Duration::from_secs(10);
    loop {
        assert_eq!(xdp.remove_expired().unwrap(), 0);
        let lifted = SystemTime::now() > ends && xdp.active().unwrap()[0].jails == ["long"];
        if lifted || SystemTime::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let active = xdp.active().unwrap();
    assert_eq!(active[0].jails, ["long"]);
    expect(
        &mut xdp,
        &udp4(ATTACKER, VICTIM, 22),
        XDP_PASS,
        counter::PASS_OTHER_PORT,
    );
    expect(
        &mut xdp,
        &udp4(ATTACKER, VICTIM, 80),
        XDP_DROP,
        counter::DROP_V4,
    );
}

#[test]
fn removing_a_jail_lifts_its_bans() {
    if !privileged("removing_a_jail_lifts_its_bans") {
        return;
    }
    let mut xdp = private_program();
    xdp.add_jail(&all_ports("a")).unwrap();
    xdp.add_jail(&all_ports("b")).unwrap();
    xdp.ban_many(&[
        ban("a", "198.51.100.66"),
        ban("a", "203.0.113.0/24"),
        ban("b", "198.51.100.67"),
    ])
    .unwrap();
    xdp.remove_jail("a").unwrap();
    expect(
        &mut xdp,
        &udp4(ATTACKER, VICTIM, 22),
        XDP_PASS,
        counter::PASS_CLEAN,
    );
    expect(
        &mut xdp,
        &udp4(Ipv4Addr::new(203, 0, 113, 1), VICTIM, 22),
        XDP_PASS,
        counter::PASS_CLEAN,
    );
    expect(
        &mut xdp,
        &udp4(BYSTANDER, VICTIM, 22),
        XDP_DROP,
        counter::DROP_V4,
    );
    assert!(matches!(
        xdp.ban(&ban("a", "198.51.100.66")),
        Err(banxdp::enforce::Error::UnknownJail(_))
    ));
}

#[test]
fn many_bans_load_in_batches() {
    if !privileged("many_bans_load_in_batches") {
        return;
    }
    let mut xdp = private_program();
    xdp.add_jail(&all_ports("sshd")).unwrap();
    xdp.add_jail(&all_ports("web")).unwrap();
    // Entries that exist already, and a target twice in one batch, merge instead of
    // overwriting (the batch is written "create only" and stops at them).
    xdp.ban_many(&[ban("web", "10.0.0.5"), ban("web", "10.0.78.31")])
        .unwrap();
    let mut bans: Vec<Ban> = (0..20_000u32)
        .map(|i| {
            let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + i);
            ban("sshd", &addr.to_string())
        })
        .collect();
    bans.insert(100, ban("sshd", "10.0.0.7"));
    xdp.ban_many(&bans).unwrap();
    let active = xdp.active().unwrap();
    assert_eq!(active.len(), 20_000);
    let jails_of = |target: &str| {
        let mut jails = active
            .iter()
            .find(|b| b.target.to_string() == target)
            .unwrap()
            .jails
            .clone();
        jails.sort();
        jails
    };
    assert_eq!(jails_of("10.0.0.5/32"), ["sshd", "web"]);
    assert_eq!(jails_of("10.0.78.31/32"), ["sshd", "web"]);
    assert_eq!(jails_of("10.0.0.7/32"), ["sshd"]);
    assert_eq!(jails_of("10.0.0.8/32"), ["sshd"]);
    expect(
        &mut xdp,
        &udp4(Ipv4Addr::new(10, 0, 78, 31), VICTIM, 1),
        XDP_DROP,
        counter::DROP_V4,
    );
    expect(
        &mut xdp,
        &udp4(Ipv4Addr::new(10, 0, 78, 32), VICTIM, 1),
        XDP_PASS,
        counter::PASS_CLEAN,
    );
}

#[test]
fn new_bans_load_without_lookups_and_every_entry_reads_back() {
    if !privileged("new_bans_load_without_lookups_and_every_entry_reads_back") {
        return;
    }
    let mut xdp = private_program();
    xdp.add_jail(&all_ports("sshd")).unwrap();
    xdp.add_jail(&all_ports("web")).unwrap();
    // What the restore promises: no target here is in the maps yet. One comes twice (two
    // jails) in the batch, and merges.
    let mut bans: Vec<Ban> = (0..9_000u32)
        .map(|i| {
            let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 1, 0, 0)) + i);
            ban("sshd", &addr.to_string())
        })
        .collect();
    bans.extend((0..3_000u16).map(|i| ban("web", &format!("2001:db8:1::{i:x}"))));
    bans.push(ban("web", "10.1.0.9"));
    xdp.ban_many_new(&bans).unwrap();
    // Read back in batches of the kernel's (more than one batch per map).
    let active = xdp.active().unwrap();
    assert_eq!(active.len(), 12_000);
    let find = |target: &str| {
        active
            .iter()
            .find(|b| b.target.to_string() == target)
            .unwrap()
    };
    let mut jails = find("10.1.0.9/32").jails.clone();
    jails.sort();
    assert_eq!(jails, ["sshd", "web"]);
    assert_eq!(find("2001:db8:1::bb7/128").jails, ["web"]);
    expect(
        &mut xdp,
        &udp4(Ipv4Addr::new(10, 1, 35, 39), VICTIM, 1),
        XDP_DROP,
        counter::DROP_V4,
    );
}

/// The probe reads the monotonic clock as user space does, and the line calibrated from one
/// of its samples stays below the clock and within a tick and the margin of it for the
/// samples of the next half second.
#[test]
fn the_jiffies_line_bounds_the_monotonic_clock() {
    if !privileged("the_jiffies_line_bounds_the_monotonic_clock") {
        return;
    }
    past_the_jiffies_wrap();
    let probe = sys::ClockProbe::load().expect("this kernel has bpf_jiffies64");
    let before = monotonic();
    let first = probe.sample().unwrap();
    let after = monotonic();
    assert!(
        (before..=after).contains(&first.monotonic_ns),
        "the probe reads CLOCK_MONOTONIC: {before} <= {} <= {after}",
        first.monotonic_ns
    );
    let line = clock::JiffyLine::calibrate(first).expect("this kernel's HZ is identified");
    let ends = Instant::now() + Duration::from_millis(500);
    // At least half a second and at least 100 samples, however slowly a loaded machine
    // schedules this thread.
    let mut samples = 0;
    while samples < 100 || Instant::now() < ends {
        let sample = probe.sample().unwrap();
        assert_eq!(
            line.check(sample),
            clock::Check::Holds,
            "{sample:?} against {line:?}"
        );
        assert!(
            sample.monotonic_ns - line.at(sample.jiffies) <= 3 * line.tick_ns + clock::MARGIN_NS,
            "{sample:?} against {line:?}"
        );
        samples += 1;
        std::thread::sleep(Duration::from_millis(3));
    }
}

/// The program decides on the jiffies line, not only user space's account of it: a line made
/// to run an hour ahead ends a ten-minute ban at once, while the same lead given to a program
/// on the coarse clock changes nothing.
#[test]
fn the_program_reads_the_jiffies_line() {
    if !privileged("the_program_reads_the_jiffies_line") {
        return;
    }
    past_the_jiffies_wrap();
    let frame = udp4(ATTACKER, VICTIM, 22);
    let mut xdp = private_program();
    assert_eq!(xdp.expiry_clock(), ExpiryClock::Jiffies);
    xdp.add_jail(&all_ports("sshd")).unwrap();
    xdp.ban(&ban("sshd", "198.51.100.66")).unwrap();
    expect(&mut xdp, &frame, XDP_DROP, counter::DROP_V4);
    xdp.lead_jiffies(Duration::from_secs(3600)).unwrap();
    expect(&mut xdp, &frame, XDP_PASS, counter::PASS_EXPIRED);

    let mut coarse = program_on(ExpiryClock::Coarse);
    coarse.add_jail(&all_ports("sshd")).unwrap();
    coarse.ban(&ban("sshd", "198.51.100.66")).unwrap();
    coarse.lead_jiffies(Duration::from_secs(3600)).unwrap();
    expect(&mut coarse, &frame, XDP_DROP, counter::DROP_V4);
}

fn monotonic() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) },
        0
    );
    u64::try_from(ts.tv_sec).unwrap() * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap()
}

/// Within about half a minute of the five-minute mark after boot, jiffies cannot tell 250 Hz
/// from 300 Hz (`clock::identify_hz`) and the program stays on the coarse clock until a later
/// sample: a test that needs the line waits that moment out (a machine booted just before).
fn past_the_jiffies_wrap() {
    let window = 260_000_000_000..340_000_000_000;
    let now = monotonic();
    if window.contains(&now) {
        std::thread::sleep(Duration::from_nanos(window.end - now));
    }
}
