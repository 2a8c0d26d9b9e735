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
use banxdp_tests::{Topology, all_ports, ban_for, netns::IFACE, privileged, with_netns};

/// The audit architecture of the target, as seccomp reports it.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// Makes `bpf()` fail with `ENOSYS` on the calling thread and what it starts from now on.
fn deny_bpf_on_this_thread() {
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let nr = u32::try_from(libc::SYS_bpf).expect("syscall number");
    let enosys = u32::try_from(libc::ENOSYS).expect("errno");
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let filter = [
        op(LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        op(JEQ_K, 0, 3, AUDIT_ARCH),
        op(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        op(JEQ_K, 0, 1, nr),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | enosys),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let program = libc::sock_fprog {
        len: u16::try_from(filter.len()).expect("short filter"),
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: prctl and seccomp with valid arguments; the filter outlives the call (the
    // kernel copies it). Without SECCOMP_FILTER_FLAG_TSYNC it applies to this thread only.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        let ret = libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &raw const program,
        );
        assert_eq!(ret, 0, "seccomp: {}", std::io::Error::last_os_error());
    }
}

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
