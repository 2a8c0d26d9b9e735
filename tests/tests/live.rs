//! Real packets across a veth pair between two namespaces this test creates, with banxdp's
//! XDP program attached to the victim's end (needs root). What is asserted is delivery: a
//! socket in the victim namespace receives, or does not.

use std::time::Duration;

use banxdp::enforce::{
    Enforcer as _, JailScope, PortScope, parse_target,
    xdp::{AttachMode, AttachedMode, XdpEnforcer, XdpPlan},
};
use banxdp_common::{IPPROTO_TCP, counter};
use std::net::Ipv4Addr;

use banxdp_tests::{
    Topology, ban_for,
    frame::{ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, UDP, ethernet, ipv4, udp},
    netns::{ATTACKER_MAC, IFACE, VICTIM_MAC, retry_in_use},
    privileged, with_netns,
};

const N: usize = 50;

/// Waits up to ten seconds for `condition`, checking every 20 ms; whether it came true. Frames
/// sent raw reach the victim's program in its softirq, after `sendto` has returned, and an
/// expiry is a moment on the kernel's clock: tests wait for the condition, not a fixed time.
fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if condition() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn attach(topo: &Topology, mode: AttachMode) -> XdpEnforcer {
    let plan = XdpPlan {
        interfaces: vec![IFACE.into()],
        mode,
        pin_dir: None,
        ..XdpPlan::default()
    };
    with_netns(&topo.victim, || XdpEnforcer::load(&plan)).expect("attach to the victim's veth")
}

fn jail(xdp: &mut XdpEnforcer, name: &str, ports: PortScope) {
    xdp.add_jail(&JailScope {
        name: name.into(),
        ports,
        shadow: false,
    })
    .unwrap();
}

#[test]
fn banned_sources_are_dropped_and_others_delivered() {
    if !privileged("banned_sources_are_dropped_and_others_delivered") {
        return;
    }
    let topo = Topology::new(
        &["198.51.100.66", "198.51.100.67"],
        &["2001:db8:1::66", "2001:db8:1::67"],
    );
    // Before any ban, everything arrives.
    assert_eq!(topo.udp_delivered("198.51.100.66", 5000, N), N);
    let mut xdp = attach(&topo, AttachMode::Auto);
    assert_eq!(
        xdp.attachments()[0].mode,
        AttachedMode::Native,
        "veth supports native XDP"
    );
    jail(&mut xdp, "sshd", PortScope::All);
    xdp.ban_many(&[
        ban_for("sshd", "198.51.100.66", 600),
        ban_for("sshd", "2001:db8:1::66", 600),
    ])
    .unwrap();
    let ifindex = xdp.attachments()[0].ifindex;
    let before = xdp.counters_of(ifindex).unwrap();

    assert_eq!(topo.udp_delivered("198.51.100.66", 5000, N), 0);
    assert_eq!(topo.udp_delivered("198.51.100.67", 5000, N), N);
    assert_eq!(topo.udp_delivered("2001:db8:1::66", 5000, N), 0);
    assert_eq!(topo.udp_delivered("2001:db8:1::67", 5000, N), N);

    // The counters equal what was sent: every banned datagram counted as a drop, once (waited
    // for, as a drop is counted in the victim's softirq).
    let mut after = before;
    eventually(|| {
        after = xdp.counters_of(ifindex).unwrap();
        after[counter::DROP_V4] - before[counter::DROP_V4] >= N as u64
            && after[counter::DROP_V6] - before[counter::DROP_V6] >= N as u64
    });
    let moved = |i: usize| after[i] - before[i];
    assert_eq!(moved(counter::DROP_V4), N as u64);
    assert_eq!(moved(counter::DROP_V6), N as u64);
    assert!(moved(counter::PASS_CLEAN) >= 2 * N as u64);
    // Within one snapshot (background traffic such as neighbour discovery keeps arriving),
    // every packet seen was passed or dropped for exactly one reason.
    let summary = &xdp.counters().unwrap()[0];
    let snapshot = summary.packets;
    assert_eq!(
        summary.dropped(),
        snapshot[counter::DROP_V4] + snapshot[counter::DROP_V6]
    );
    assert_eq!(
        summary.dropped() + summary.passed(),
        snapshot[counter::SEEN]
    );
    for ban in xdp.active().unwrap() {
        assert_eq!(ban.drops, Some(N as u64), "{}", ban.target);
    }

    // Unbanning restores delivery at once.
    xdp.unban("sshd", parse_target("198.51.100.66").unwrap())
        .unwrap();
    assert_eq!(topo.udp_delivered("198.51.100.66", 5000, N), N);
    // Dropping the enforcer (no pins) detaches the program.
    drop(xdp);
    assert_eq!(topo.udp_delivered("2001:db8:1::66", 5000, N), N);
}

#[test]
fn network_bans_drop_the_whole_range() {
    if !privileged("network_bans_drop_the_whole_range") {
        return;
    }
    let topo = Topology::new(
        &["203.0.113.5", "203.0.113.200", "198.51.100.67"],
        &["2001:db8:2::5", "2001:db8:2::ffff:1", "2001:db8:3::1"],
    );
    let mut xdp = attach(&topo, AttachMode::Auto);
    jail(&mut xdp, "recidive", PortScope::All);
    xdp.ban_many(&[
        ban_for("recidive", "203.0.113.0/24", 600),
        ban_for("recidive", "2001:db8:2::/64", 600),
    ])
    .unwrap();
    for banned in [
        "203.0.113.5",
        "203.0.113.200",
        "2001:db8:2::5",
        "2001:db8:2::ffff:1",
    ] {
        assert_eq!(topo.udp_delivered(banned, 5001, N), 0, "{banned}");
    }
    for free in ["198.51.100.67", "2001:db8:3::1"] {
        assert_eq!(topo.udp_delivered(free, 5001, N), N, "{free}");
    }
}

#[test]
fn the_allow_list_beats_a_ban() {
    if !privileged("the_allow_list_beats_a_ban") {
        return;
    }
    let topo = Topology::new(&["203.0.113.5", "203.0.113.6"], &[]);
    let mut xdp = attach(&topo, AttachMode::Auto);
    jail(&mut xdp, "recidive", PortScope::All);
    xdp.ban_many(&[
        ban_for("recidive", "203.0.113.0/24", 600),
        ban_for("recidive", "203.0.113.6", 600),
    ])
    .unwrap();
    xdp.set_allowed(&[parse_target("203.0.113.6").unwrap()])
        .unwrap();
    assert_eq!(topo.udp_delivered("203.0.113.5", 5002, N), 0);
    assert_eq!(topo.udp_delivered("203.0.113.6", 5002, N), N);
}

#[test]
fn a_two_second_ban_ends_in_the_kernel_without_user_space() {
    if !privileged("a_two_second_ban_ends_in_the_kernel_without_user_space") {
        return;
    }
    let topo = Topology::new(&["198.51.100.66"], &[]);
    let mut xdp = attach(&topo, AttachMode::Auto);
    jail(&mut xdp, "sshd", PortScope::All);
    xdp.ban(&ban_for("sshd", "198.51.100.66", 2)).unwrap();
    assert_eq!(topo.udp_delivered("198.51.100.66", 5003, N), 0);
    // No sweep, no unban: the program compares the expiry itself.
    assert!(
        eventually(|| topo.udp_delivered("198.51.100.66", 5003, N) == N),
        "the ban did not end"
    );
    assert_eq!(
        xdp.active().unwrap().len(),
        1,
        "the entry is still there, expired"
    );
}

#[test]
fn port_scoped_bans_block_only_their_ports() {
    if !privileged("port_scoped_bans_block_only_their_ports") {
        return;
    }
    let topo = Topology::new(&["198.51.100.66", "198.51.100.67"], &[]);
    let mut xdp = attach(&topo, AttachMode::Auto);
    jail(
        &mut xdp,
        "sshd",
        PortScope::Ports {
            protocols: vec![IPPROTO_TCP],
            ranges: vec![22..=22],
        },
    );
    jail(
        &mut xdp,
        "web",
        PortScope::Ports {
            protocols: vec![IPPROTO_TCP],
            ranges: vec![80..=80, 443..=443],
        },
    );
    xdp.ban(&ban_for("sshd", "198.51.100.66", 600)).unwrap();
    assert!(!topo.tcp_connects("198.51.100.66", 22));
    assert!(topo.tcp_connects("198.51.100.66", 80));
    assert!(topo.tcp_connects("198.51.100.67", 22));
    // UDP to port 22 is not the sshd jail's (tcp) port.
    assert_eq!(topo.udp_delivered("198.51.100.66", 22, N), N);
    // A second jail banning the same address adds its ports.
    xdp.ban(&ban_for("web", "198.51.100.66", 600)).unwrap();
    assert!(!topo.tcp_connects("198.51.100.66", 80));
    assert!(!topo.tcp_connects("198.51.100.66", 22));
    assert!(topo.tcp_connects("198.51.100.66", 8080));
}

#[test]
fn vlan_tagged_frames_are_judged_by_the_inner_address() {
    if !privileged("vlan_tagged_frames_are_judged_by_the_inner_address") {
        return;
    }
    // These kernels have no 802.1Q devices (CONFIG_VLAN_8021Q is off), so tagged frames are
    // written raw by the attacker and the program's verdict counters are what is checked.
    let topo = Topology::new(&[], &[]);
    let mut xdp = attach(&topo, AttachMode::Auto);
    jail(&mut xdp, "sshd", PortScope::All);
    xdp.ban(&ban_for("sshd", "192.0.2.66", 600)).unwrap();
    let frame = |tags: &[(u16, u16)], last: u8| {
        let packet = ipv4(
            Ipv4Addr::new(192, 0, 2, last),
            Ipv4Addr::new(192, 0, 2, 1),
            UDP,
            0,
            &udp(4000, 5004, b"vlan"),
        );
        ethernet(VICTIM_MAC, ATTACKER_MAC, tags, ETH_P_IP, &packet)
    };
    let single = [(ETH_P_8021Q, 100)];
    let double = [(ETH_P_8021AD, 10), (ETH_P_8021Q, 100)];
    let mut frames = Vec::new();
    for _ in 0..N {
        frames.extend([
            frame(&single, 66),
            frame(&double, 66),
            frame(&single, 67),
            frame(&double, 67),
        ]);
    }
    let ifindex = xdp.attachments()[0].ifindex;
    let before = xdp.counters_of(ifindex).unwrap();
    topo.send_frames(&frames);
    // Wait until every frame was judged (the passed ones are the last to arrive or not).
    let mut after = before;
    eventually(|| {
        after = xdp.counters_of(ifindex).unwrap();
        after[counter::DROP_V4] - before[counter::DROP_V4] >= 2 * N as u64
            && after[counter::PASS_CLEAN] - before[counter::PASS_CLEAN] >= 2 * N as u64
    });
    assert_eq!(
        after[counter::DROP_V4] - before[counter::DROP_V4],
        2 * N as u64
    );
    assert!(after[counter::PASS_CLEAN] - before[counter::PASS_CLEAN] >= 2 * N as u64);
    assert_eq!(xdp.active().unwrap()[0].drops, Some(2 * N as u64));
}

#[test]
fn generic_mode_serves_where_native_cannot() {
    if !privileged("generic_mode_serves_where_native_cannot") {
        return;
    }
    let topo = Topology::new(&[], &[]);
    topo.victim.ip(&["addr", "add", "127.0.0.5/8", "dev", "lo"]);
    // Loopback has no native XDP: `auto` falls back to generic mode and says why.
    let plan = XdpPlan {
        interfaces: vec!["lo".into()],
        pin_dir: None,
        ..XdpPlan::default()
    };
    let mut xdp = with_netns(&topo.victim, || XdpEnforcer::load(&plan)).unwrap();
    let attachment = &xdp.attachments()[0];
    assert_eq!(attachment.mode, AttachedMode::Generic);
    assert!(
        attachment
            .fallback
            .as_deref()
            .is_some_and(|r| r.contains("native")),
        "{attachment:?}"
    );
    jail(&mut xdp, "sshd", PortScope::All);
    xdp.ban(&ban_for("sshd", "127.0.0.5", 600)).unwrap();

    let send = |source: &str| {
        use std::net::UdpSocket;
        with_netns(&topo.victim, || {
            let receiver = retry_in_use(|| UdpSocket::bind(("127.0.0.1", 5005))).unwrap();
            receiver
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let sender = UdpSocket::bind((source, 0)).unwrap();
            for _ in 0..N {
                sender.send_to(b"lo", ("127.0.0.1", 5005)).unwrap();
            }
            let mut buf = [0; 8];
            let mut got = 0;
            while receiver.recv(&mut buf).is_ok() {
                got += 1;
            }
            got
        })
    };
    assert_eq!(send("127.0.0.5"), 0);
    assert_eq!(send("127.0.0.6"), N);

    // Native only: refused on loopback, with the interface named.
    let native = XdpPlan {
        mode: AttachMode::Native,
        ..plan
    };
    let error = with_netns(&topo.victim, || XdpEnforcer::load(&native))
        .err()
        .unwrap();
    assert!(error.to_string().contains("`lo`"), "{error}");
}
