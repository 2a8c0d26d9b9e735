//! A kernel without BPF, for one thread and what it starts: a seccomp filter that answers
//! `ENOSYS` to `bpf()`. Tests of the fallback backends run XDP (or the daemon) under it.

/// The audit architecture of the target, as seccomp reports it.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// Makes `bpf()` fail with `ENOSYS` on the calling thread and what it starts from now on.
///
/// # Panics
/// When the kernel refuses the filter.
pub fn deny_bpf_on_this_thread() {
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
