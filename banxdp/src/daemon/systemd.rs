//! systemd's readiness protocol (`sd_notify(3)`), spoken without libsystemd: one datagram
//! of `KEY=value` lines to the socket named by `NOTIFY_SOCKET` (a path, or `@name` in the
//! abstract namespace). With `Type=notify` in banxdp.service, `systemctl start banxdp`
//! returns once every ban is in the kernel and the daemon follows its logs and answers its
//! socket, so that units ordered after it start protected; a reload shows as `reloading`
//! until it is done, and a stop as `deactivating` from its first moment.
//!
//! Outside systemd (no `NOTIFY_SOCKET`) every call does nothing. A datagram that cannot be
//! sent is logged and the daemon runs on: readiness is systemd's concern, bans are ours.

use std::{
    ffi::OsStr,
    io,
    os::unix::net::{SocketAddr, UnixDatagram},
};

/// Sends `state` to `socket`, as `NOTIFY_SOCKET` names it.
///
/// # Errors
/// The socket cannot be reached.
pub fn send_to(socket: &OsStr, state: &str) -> io::Result<()> {
    let datagram = UnixDatagram::unbound()?;
    let bytes = socket.as_encoded_bytes();
    let address = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt as _;
            SocketAddr::from_abstract_name(name)?
        }
        None => SocketAddr::from_pathname(socket)?,
    };
    datagram.send_to_addr(state.as_bytes(), &address)?;
    Ok(())
}

/// Tells systemd `state`, if it asked to be told; a failure is logged.
fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(error) = send_to(&socket, state) {
        tracing::warn!(
            "cannot tell systemd `{}` at {}: {error}",
            state.replace('\n', " "),
            socket.display()
        );
    }
}

/// Every ban enforced, logs followed, the socket answered: `status` is the unit's status line.
pub fn ready(status: &str) {
    notify(&format!("READY=1\nSTATUS={status}"));
}

/// A reload begins (`READY=1` ends it).
pub fn reloading() {
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
}

/// The daemon is stopping.
pub fn stopping() {
    notify("STOPPING=1");
}

/// `CLOCK_MONOTONIC` in microseconds, as systemd reads a reload's start.
fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut now) };
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000
        + u64::try_from(now.tv_nsec).unwrap_or(0) / 1_000
}

#[cfg(test)]
mod tests {
    use std::os::linux::net::SocketAddrExt as _;

    use super::*;

    #[test]
    fn a_datagram_reaches_a_path_and_an_abstract_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send_to(path.as_os_str(), "READY=1\nSTATUS=enforcing 3 ban(s)").unwrap();
        let mut buf = [0u8; 128];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=enforcing 3 ban(s)");

        let name = format!("banxdp-test-{}", std::process::id());
        let abstract_listener =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        send_to(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let n = abstract_listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn a_socket_nobody_listens_on_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(send_to(dir.path().join("none").as_os_str(), "READY=1").is_err());
    }

    #[test]
    fn the_monotonic_clock_moves_on() {
        let before = monotonic_usec();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(monotonic_usec() >= before + 1_000);
    }
}
