//! Where `bpf()` does not exist (a kernel built without BPF), XDP cannot load and says why,
//! and the nftables fallback still bans. The kernel without BPF is made by a seccomp filter
//! that answers `ENOSYS` to `bpf()`, installed on one thread only (and inherited by what it
//! runs), so nothing else in the test process is affected.
//!
//! The daemon's choice of the fallback is built on exactly this: `XdpEnforcer::load` fails with
//! the reason, and the fallback backend works on the same machine.

use std::{error::Error as _, time::SystemTime};

use banxdp::enforce::{
    Enforcer as _,
    exec::Executor,
    nftables::{NftEnforcer, NftOptions},
    xdp::{XdpEnforcer, XdpPlan},
};
use banxdp_tests::{
    Topology, all_ports, ban_for, netns::IFACE, privileged, seccomp::deny_bpf_on_this_thread,
    with_netns,
};

#[test]
fn without_bpf_xdp_says_why_and_nftables_bans() {
    if !privileged("without_bpf_xdp_says_why_and_nftables_bans") {
        return;
    }
    let topo = Topology::new(&["203.0.113.7", "203.0.113.8"], &[]);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                deny_bpf_on_this_thread();
                // SAFETY: a direct probe of the filter: bpf() with no arguments.
                let ret = unsafe { libc::syscall(libc::SYS_bpf, 0, 0, 0) };
                assert_eq!(ret, -1);
                assert_eq!(
                    std::io::Error::last_os_error().raw_os_error(),
                    Some(libc::ENOSYS)
                );

                let plan = XdpPlan {
                    interfaces: vec![IFACE.into()],
                    pin_dir: None,
                    ..XdpPlan::default()
                };
                let error = with_netns(&topo.victim, || XdpEnforcer::load(&plan))
                    .err()
                    .expect("XDP cannot load without bpf()");
                let mut reason = error.to_string();
                let mut source = error.source();
                while let Some(cause) = source {
                    reason = format!("{reason}: {cause}");
                    source = cause.source();
                }
                assert!(
                    reason.contains("os error 38") || reason.contains("not implemented"),
                    "the reason names the missing bpf(): {reason}"
                );
                eprintln!("XDP refused, as expected: {reason}");

                let mut nft = NftEnforcer::new(NftOptions {
                    exec: Executor::in_netns(&topo.victim.name),
                    ..NftOptions::default()
                })
                .expect("nftables needs no bpf()");
                nft.add_jail(&all_ports("sshd")).unwrap();
                nft.ban(&ban_for("sshd", "203.0.113.7", 600)).unwrap();
                assert_eq!(topo.udp_delivered("203.0.113.7", 5006, 5), 0);
                assert_eq!(topo.udp_delivered("203.0.113.8", 5006, 5), 5);
                assert!(nft.describe().starts_with("nftables"));
                assert!(
                    nft.active().unwrap()[0].expiry
                        > banxdp::enforce::Expiry::At(SystemTime::now())
                );
                Box::new(nft).detach().unwrap();
            })
            .join()
            .expect("the thread without bpf()");
    });
}
