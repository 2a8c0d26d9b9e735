//! This machine's names (`<fq-hostname>`, `<sh-hostname>`) and the resolver's name for an
//! address (`<ip-host>`), through the C library's resolver as Python's `socket` module does.
//! The only place in `action` that asks the resolver; nothing here is called per packet.

use std::{ffi::CStr, net::IpAddr};

use super::HostNames;

impl HostNames {
    /// This machine's names: the kernel's host name, and its canonical name as the resolver
    /// gives it (the host name when it gives none), as Python's `socket.getfqdn` would.
    #[must_use]
    pub fn system() -> Self {
        let short = host_name().unwrap_or_else(|| "localhost".into());
        let fq = canonical_name(&short).unwrap_or_else(|| short.clone());
        Self { fq, short }
    }
}

fn host_name() -> Option<String> {
    let mut buf = [0 as libc::c_char; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr(), buf.len() - 1) };
    if rc != 0 {
        return None;
    }
    // SAFETY: the last byte was never written and is 0, so the string is terminated.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// The name the resolver gives `addr` (its PTR record, or /etc/hosts), if any.
#[must_use]
pub fn reverse_name(addr: IpAddr) -> Option<String> {
    let sock = std::net::SocketAddr::new(addr, 0);
    let (storage, len) = socket_addr(&sock);
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: `storage` holds a valid socket address of `len` bytes; `host` is writable for
    // its length; no service name is asked for.
    let rc = unsafe {
        libc::getnameinfo(
            (&raw const storage).cast(),
            len,
            host.as_mut_ptr(),
            libc::socklen_t::try_from(host.len()).unwrap_or(0),
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: getnameinfo succeeded and wrote a terminated string into `host`.
    let name = unsafe { CStr::from_ptr(host.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// A `SocketAddr` as the C socket address getnameinfo reads.
fn socket_addr(addr: &std::net::SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        std::net::SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::sa_family_t::try_from(libc::AF_INET).unwrap_or_default(),
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large enough and aligned for any sockaddr.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        std::net::SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::sa_family_t::try_from(libc::AF_INET6).unwrap_or_default(),
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, libc::socklen_t::try_from(len).unwrap_or(0))
}

fn canonical_name(host: &str) -> Option<String> {
    let c_host = std::ffi::CString::new(host).ok()?;
    // SAFETY: zeroed addrinfo is a valid "no hints" value, then the flag is set.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_CANONNAME;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: valid C strings and pointers; the result is freed below.
    let rc = unsafe {
        libc::getaddrinfo(
            c_host.as_ptr(),
            std::ptr::null(),
            &raw const hints,
            &raw mut list,
        )
    };
    if rc != 0 || list.is_null() {
        return None;
    }
    // SAFETY: getaddrinfo succeeded, `list` points to at least one entry, whose canonical
    // name, when present, is a C string owned by the list.
    let name = unsafe {
        let canon = (*list).ai_canonname;
        let name = (!canon.is_null()).then(|| CStr::from_ptr(canon).to_string_lossy().into_owned());
        libc::freeaddrinfo(list);
        name
    };
    name.filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_a_name() {
        let v4 = reverse_name("127.0.0.1".parse().unwrap());
        assert!(v4.is_some_and(|n| !n.is_empty()));
        // A documentation address has no name (and no resolver answers for it here).
        let _ = reverse_name("192.0.2.1".parse().unwrap());
    }

    #[test]
    fn host_names_are_found() {
        let names = HostNames::system();
        assert!(!names.short.is_empty());
        assert!(
            names.fq.starts_with(names.short.split('.').next().unwrap()),
            "{names:?}"
        );
    }
}
