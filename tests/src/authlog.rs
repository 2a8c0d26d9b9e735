//! Synthetic but realistic logs for the filter benchmark and its equality test: an auth.log
//! of sshd connections (failed and successful, each a sequence of lines under one process
//! id, interleaved), cron, sudo, systemd and kernel firewall lines; and an Apache access log
//! with a share of bad robots. Deterministic: the same seed gives the same bytes.
//!
//! Addresses come from the benchmarking range `198.18.0.0/15` and from `2001:db8::/32`: text in
//! a log file, never a network target.

/// xorshift64*: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("fits")
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const USERS: &[&str] = &[
    "root", "admin", "test", "oracle", "ubuntu", "git", "postgres", "user", "pi", "guest",
];
const STAFF: &[&str] = &["alice", "bob", "carol", "deploy"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// One of `pool` attacker addresses: about one in five IPv6.
fn attacker(rng: &mut Rng, pool: usize) -> String {
    let n = rng.below(pool);
    if n % 5 == 4 {
        format!("2001:db8:{:x}:{:x}::{:x}", n / 251, n % 251, n % 7 + 1)
    } else {
        let host = u32::try_from(n).expect("small pool");
        format!(
            "198.{}.{}.{}",
            18 + (host >> 16 & 1),
            host >> 8 & 255,
            host & 255
        )
    }
}

/// A syslog time stamp: `Mmm dd hh:mm:ss`, `second` seconds after October 1st, 00:00.
fn stamp(second: usize) -> String {
    let day = second / 86_400;
    let (month, day) = if day < 31 {
        (9, day + 1)
    } else {
        (10, day - 30)
    };
    let rest = second % 86_400;
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[month],
        day,
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The lines of one sshd connection that fails (guessing passwords, or probing).
fn failed_connection(rng: &mut Rng, pid: usize, ip: &str, lines: &mut Vec<String>) {
    let port = 1024 + rng.below(60_000);
    let user = rng.pick(USERS);
    let invalid = rng.below(3) == 0;
    let who = if invalid {
        format!("invalid user {user}")
    } else {
        user.to_string()
    };
    let s = |text: String| format!("sshd[{pid}]: {text}");
    match rng.below(6) {
        0 => {
            if invalid {
                lines.push(s(format!("Invalid user {user} from {ip} port {port}")));
            }
            for _ in 0..=rng.below(3) {
                lines.push(s(format!(
                    "Failed password for {who} from {ip} port {port} ssh2"
                )));
            }
            lines.push(s(format!(
                "Connection closed by {} {ip} port {port} [preauth]",
                if invalid {
                    format!("invalid user {user}")
                } else {
                    format!("authenticating user {user}")
                }
            )));
        }
        1 => {
            lines.push(s(format!(
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}"
            )));
            lines.push(s(format!(
                "Failed password for {who} from {ip} port {port} ssh2"
            )));
            lines.push(s(format!(
                "Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"
            )));
        }
        2 => {
            lines.push(s(format!(
                "Disconnecting: Too many authentication failures for {user} from {ip} port {port} ssh2 [preauth]"
            )));
        }
        3 => {
            lines.push(s(format!(
                "Unable to negotiate with {ip} port {port}: no matching key exchange method found. Their offer: diffie-hellman-group1-sha1 [preauth]"
            )));
        }
        4 => {
            lines.push(s(format!(
                "maximum authentication attempts exceeded for {who} from {ip} port {port} ssh2 [preauth]"
            )));
        }
        _ => {
            lines.push(s(format!(
                "Failed publickey for {who} from {ip} port {port} ssh2: RSA SHA256:x{pid:x}"
            )));
            lines.push(s(format!(
                "Failed password for {who} from {ip} port {port} ssh2"
            )));
        }
    }
}

/// An ordinary line: a staff login and logout, cron, sudo, systemd, the kernel's firewall.
fn ordinary(rng: &mut Rng, pid: usize, lines: &mut Vec<String>) {
    let staff = rng.pick(STAFF);
    let port = 1024 + rng.below(60_000);
    let ip = format!("198.19.255.{}", 1 + rng.below(50));
    match rng.below(8) {
        0 => {
            lines.push(format!(
                "sshd[{pid}]: Accepted publickey for {staff} from {ip} port {port} ssh2: ED25519 SHA256:k{pid:x}"
            ));
            lines.push(format!(
                "sshd[{pid}]: pam_unix(sshd:session): session opened for user {staff}(uid=1000) by (uid=0)"
            ));
        }
        1 => lines.push(format!(
            "sshd[{pid}]: pam_unix(sshd:session): session closed for user {staff}"
        )),
        2 | 3 => lines.push(format!(
            "CRON[{pid}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)"
        )),
        4 => lines.push(format!(
            "sudo:    {staff} : TTY=pts/{} ; PWD=/home/{staff} ; USER=root ; COMMAND=/usr/bin/systemctl status nginx",
            rng.below(4)
        )),
        5 => lines.push(format!(
            "systemd[1]: Started session-{pid}.scope - Session {pid} of User {staff}."
        )),
        6 => lines.push(format!(
            "kernel: [{}.{:06}] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC=198.18.{}.{} DST=198.19.0.1 LEN=40 TOS=0x00 PREC=0x00 TTL=241 ID=54321 PROTO=TCP SPT={port} DPT=23 WINDOW=1024 RES=0x00 SYN URGP=0",
            pid, port, rng.below(256), rng.below(256)
        )),
        _ => lines.push(
            "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)".to_string(),
        ),
    }
}

/// An auth.log of `count` lines, from `pool` attacker addresses.
#[must_use]
pub fn auth_log(count: usize, pool: usize, seed: u64) -> String {
    let mut out = Vec::with_capacity(count * 110);
    write_auth_log(&mut out, count, pool, seed).expect("writing to memory");
    String::from_utf8(out).expect("ASCII")
}

/// [`auth_log`], written line by line to `out` (a log of any size in little memory).
pub fn write_auth_log(
    out: &mut dyn std::io::Write,
    count: usize,
    pool: usize,
    seed: u64,
) -> std::io::Result<()> {
    let mut rng = Rng(seed | 1);
    let mut pending: Vec<String> = Vec::new();
    let mut written = 0;
    let mut pid = 10_000;
    while written < count {
        if pending.is_empty() {
            pid += 1 + rng.below(7);
            // About a quarter of all lines are sshd failures: failed connections average
            // two lines, ordinary events about one.
            if rng.below(100) < 33 {
                let ip = attacker(&mut rng, pool);
                failed_connection(&mut rng, pid, &ip, &mut pending);
            } else {
                ordinary(&mut rng, pid, &mut pending);
            }
            pending.reverse();
        }
        let line = pending.pop().expect("refilled above");
        writeln!(out, "{} server {line}", stamp(written))?;
        written += 1;
    }
    Ok(())
}

const BOTS: &[&str] = &[
    "EmailCollector",
    "WebEMailExtrac",
    "TrackBack/1.02",
    "Zeus 82900 Webster Pro V2.9 Win32",
    "Mozilla/3.0 (compatible; Indy Library)",
    "EmailSiphon",
];
const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "curl/8.5.0",
];
const PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/blog/2026/11/",
    "/static/app.css",
    "/login",
];

/// An Apache access log (combined format) of `count` lines; one in ten from a bad robot.
#[must_use]
pub fn access_log(count: usize, pool: usize, seed: u64) -> String {
    let mut out = Vec::with_capacity(count * 200);
    write_access_log(&mut out, count, pool, seed).expect("writing to memory");
    String::from_utf8(out).expect("ASCII")
}

/// [`access_log`], written line by line to `out`.
pub fn write_access_log(
    out: &mut dyn std::io::Write,
    count: usize,
    pool: usize,
    seed: u64,
) -> std::io::Result<()> {
    let mut rng = Rng(seed | 1);
    for i in 0..count {
        let bot = rng.below(10) == 0;
        let ip = attacker(&mut rng, pool);
        let agent = if bot {
            rng.pick(BOTS)
        } else {
            rng.pick(BROWSERS)
        };
        let day = 1 + i / 86_400 % 28;
        let rest = i % 86_400;
        writeln!(
            out,
            "{ip} - - [{day:02}/Oct/2026:{:02}:{:02}:{:02} +0000] \"GET {} HTTP/1.1\" 200 {} \"-\" \"{agent}\"",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60,
            rng.pick(PATHS),
            200 + rng.below(5000)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_have_the_asked_length_and_are_deterministic() {
        let log = auth_log(1000, 100, 7);
        assert_eq!(log.lines().count(), 1000);
        assert_eq!(log, auth_log(1000, 100, 7));
        assert_ne!(log, auth_log(1000, 100, 8));
        assert!(log.starts_with("Oct  1 00:00:00 server "));
        assert_eq!(access_log(50, 10, 1).lines().count(), 50);
    }
}
