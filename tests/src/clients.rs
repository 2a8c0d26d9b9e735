//! The client's side of a live-service test: a TCP exchange from a chosen source address
//! in a test's namespace ([`exchange`], whose [`Reached`] tells a timed-out connection from
//! any other failure), the whole password-guessing scenario a jail must end
//! ([`Guessing::is_banned`]), and base64 for the credentials clients send.

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    time::Duration,
};

use crate::{Netns, with_netns};

/// What a client's attempt on a service came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Reached<T> {
    /// The server answered this.
    Answer(T),
    /// No connection within the time given: what a banned source sees.
    TimedOut,
    /// Anything else: refused, reset, cut short.
    Failed(String),
}

/// A TCP connection from `source` (an address of `ns`) to `server`, made within `timeout`,
/// then `exchange` on it: [`Reached::TimedOut`] only when the connection itself timed out.
pub fn exchange<T>(
    ns: &Netns,
    source: &str,
    server: SocketAddr,
    timeout: Duration,
    exchange: impl FnOnce(std::net::TcpStream) -> std::io::Result<T>,
) -> Reached<T> {
    let connected = with_netns(ns, || {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(server),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        let from: IpAddr = source.parse().expect("a source address");
        socket.bind(&SocketAddr::new(from, 0).into())?;
        socket.connect_timeout(&server.into(), timeout)?;
        Ok::<_, std::io::Error>(std::net::TcpStream::from(socket))
    });
    match connected {
        Ok(stream) => {
            exchange(stream).map_or_else(|e| Reached::Failed(e.to_string()), Reached::Answer)
        }
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Reached::TimedOut,
        Err(e) => Reached::Failed(e.to_string()),
    }
}

/// A password guesser against a live service, and what the service answers.
pub struct Guessing<'a, T> {
    /// The jail that must ban it, and after how many wrong passwords.
    pub jail: &'a str,
    pub maxretry: usize,
    pub attacker: &'a str,
    /// Another source, which must still get in.
    pub other: &'a str,
    pub right_password: &'a str,
    /// The service's answer to a wrong password, and to the right one.
    pub refused: T,
    pub accepted: T,
    /// The service's log, shown when something is wrong.
    pub log: &'a Path,
}

impl<T: std::fmt::Debug + PartialEq> Guessing<'_, T> {
    /// The product's job, end to end: `maxretry` wrong passwords from the attacker
    /// (`attempt(source, password)`), each refused and counted once by the jail (its `status`
    /// shows 1, 2, ... and no ban before the last), the last one banning; then the attacker's
    /// next connection times out while the other source gets in; then the daemon stops.
    ///
    /// # Panics
    /// When any of that does not happen.
    pub fn is_banned(
        &self,
        setup: &crate::daemon::Setup,
        daemon: &mut crate::daemon::Daemon,
        attempt: impl Fn(&str, &str) -> Reached<T>,
    ) {
        let log = || std::fs::read_to_string(self.log).unwrap_or_default();
        for n in 1..=self.maxretry {
            let answer = attempt(self.attacker, &format!("wrong-{n}"));
            assert!(
                matches!(&answer, Reached::Answer(a) if *a == self.refused),
                "attempt {n}: {answer:?}\n{}",
                log()
            );
            if n < self.maxretry {
                setup.wait_counted(self.jail, n);
                assert!(
                    !daemon.log().contains(&format!("Ban {}", self.attacker)),
                    "banned after {n} attempt(s): one wrong password must count once\n{}\n{}",
                    daemon.log(),
                    log()
                );
            }
        }
        daemon.wait_for_log(&format!("[{}] Ban {}", self.jail, self.attacker));
        assert_eq!(
            attempt(self.attacker, self.right_password),
            Reached::TimedOut,
            "the banned client's next connection must time out"
        );
        let other = attempt(self.other, self.right_password);
        assert!(
            matches!(&other, Reached::Answer(a) if *a == self.accepted),
            "{other:?}\n{}",
            log()
        );
        assert!(daemon.stop(), "{}", daemon.log());
    }
}

/// Standard base64, with padding (HTTP basic and SMTP `AUTH PLAIN` credentials).
#[must_use]
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_is_the_standard_one() {
        assert_eq!(super::base64(b"alice:wrong"), "YWxpY2U6d3Jvbmc=");
        assert_eq!(super::base64(b"\0u\0p"), "AHUAcA==");
        assert_eq!(super::base64(b"abc"), "YWJj");
    }
}
