//! Real services for tests: Debian's OpenSSH server in a network namespace, logging through
//! a real rsyslogd to a file the test owns, a local user with a password, and the OpenSSH
//! client typing passwords from another namespace. Every piece undoes itself on drop.
//!
//! sshd logs through syslog(3), which always writes to `/dev/log`. So that several tests can
//! run at once and the machine's own logging (if any) is left alone, each [`Syslog`] runs
//! rsyslogd in a mount namespace of its own whose `/dev` is a private tmpfs (see
//! `tests/services/private-dev.sh`): the `/dev/log` that rsyslogd binds there exists only
//! for it and for the programs started in the same mount namespace ([`Syslog::spawn`]).
//!
//! This module depends on the system's `sshd`, `rsyslogd`, `ssh`, `unshare`, `nsenter`,
//! `useradd`/`userdel`/`chpasswd` and on root; [`programs_present`] tells whether a test can
//! run. It knows nothing of banxdp: tests read the produced log with banxdp's binary.
//!
//! ```no_run
//! use banxdp_tests::{Topology, services::{LocalUser, SshOptions, SshServer, ssh_password}};
//! let net = Topology::new(&["203.0.113.7"], &[]);
//! let server = SshServer::start(&net.victim, &SshOptions::default());
//! let user = LocalUser::create("right-password");
//! let attempt = ssh_password(&net.attacker, "203.0.113.7", server.address(), &user.name, "wrong", 1);
//! assert!(attempt.denied);
//! let log = server.wait_for_log("the attempt", |log| log.contains("Failed password"));
//! ```

use std::{
    ffi::OsStr,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{Netns, netns::VICTIM_V4, sh, unique};

/// The programs a live sshd test runs, by absolute path where daemons need one.
pub const SSH_PROGRAMS: &[&str] = &[
    "/usr/sbin/sshd",
    "/usr/sbin/rsyslogd",
    "/usr/bin/ssh",
    "/usr/bin/ssh-keygen",
    "/usr/bin/unshare",
    "/usr/bin/nsenter",
];

/// Whether every program in `programs` is installed. Without them a test skips with a
/// message, except where `BANXDP_REQUIRE_PRIVILEGED=1` (CI, whose `.ci/run` installs them):
/// there a missing program is a failure.
///
/// # Panics
/// When a program is missing and `BANXDP_REQUIRE_PRIVILEGED=1`.
#[must_use]
pub fn programs_present(test: &str, programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("BANXDP_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
        "{test}: needs {missing:?} (.ci/run lists the packages that provide them)"
    );
    eprintln!("skipped {test}: needs {missing:?} (.ci/run lists the packages that provide them)");
    false
}

/// Polls `ready` every 50 ms until it holds or `timeout` passes.
fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    ready()
}

/// Sends SIGTERM to `child`, waits up to five seconds, then kills it.
pub fn stop(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory preconditions; the pid is our child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let exited = wait_until(Duration::from_secs(5), || {
        child.try_wait().is_ok_and(|s| s.is_some())
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A real rsyslogd in a mount namespace of its own, writing the messages of `selector`
/// (rsyslog's `facility.priority` syntax, e.g. `auth,authpriv.*`) to a log file, in
/// rsyslog's default format, as Debian 12 writes `/var/log/auth.log`: RFC 3339 time stamps
/// with microseconds and offset, host name, `program[pid]:` and the message. Stopped on drop.
pub struct Syslog {
    child: Child,
    log: PathBuf,
}

impl Syslog {
    /// Starts rsyslogd with its configuration, spool and scratch directories under `dir`
    /// (which must outlive it), writing `selector` to `log`; returns once `/dev/log` exists
    /// in its namespace.
    ///
    /// # Panics
    /// When rsyslogd cannot start or does not bind `/dev/log` within ten seconds.
    #[must_use]
    pub fn start(dir: &Path, log: &Path, selector: &str) -> Self {
        let (spool, scratch) = (dir.join("rsyslog-spool"), dir.join("rsyslog-dev"));
        for d in [&spool, &scratch] {
            std::fs::create_dir_all(d).expect("rsyslog directories");
        }
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{}\")\n\
                 module(load=\"imuxsock\" SysSock.Name=\"/dev/log\" SysSock.RateLimit.Interval=\"0\")\n\
                 {selector} action(type=\"omfile\" file=\"{}\")\n",
                spool.display(),
                log.display()
            ),
        )
        .expect("write rsyslog.conf");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("services/private-dev.sh");
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh"])
            .arg(script)
            .arg(&scratch)
            .args(["/usr/sbin/rsyslogd", "-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start rsyslogd");
        let mut syslog = Self {
            child,
            log: log.to_path_buf(),
        };
        let socket = PathBuf::from(format!("/proc/{}/root/dev/log", syslog.child.id()));
        let bound = wait_until(Duration::from_secs(10), || {
            socket.exists() || syslog.child.try_wait().is_ok_and(|s| s.is_some())
        });
        assert!(
            bound && socket.exists(),
            "rsyslogd did not bind /dev/log in its namespace ({:?})",
            syslog.child.try_wait()
        );
        syslog
    }

    /// The file rsyslogd writes.
    #[must_use]
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Starts `argv` in rsyslogd's mount namespace (so that its syslog(3) reaches this
    /// rsyslogd) and, with `net`, in that network namespace.
    ///
    /// # Panics
    /// When the program cannot be started.
    #[must_use]
    pub fn spawn(&self, net: Option<&Netns>, argv: &[&str]) -> Child {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--mount=/proc/{}/ns/mnt", self.child.id()));
        if let Some(ns) = net {
            cmd.arg(format!("--net={}", ns.path().display()));
        }
        cmd.arg("--")
            .args(argv)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"))
    }
}

impl Drop for Syslog {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// How to run sshd: Debian's defaults except where a test needs otherwise.
#[derive(Clone, Debug)]
pub struct SshOptions {
    /// `UsePAM`: Debian's default is yes.
    pub use_pam: bool,
    /// The address sshd listens on, inside its namespace.
    pub listen: IpAddr,
    pub port: u16,
    /// `MaxAuthTries` (sshd's default: 6).
    pub max_auth_tries: u32,
}

impl Default for SshOptions {
    fn default() -> Self {
        Self {
            use_pam: true,
            listen: VICTIM_V4.parse().expect("an address"),
            port: 22,
            max_auth_tries: 6,
        }
    }
}

/// sshd's configuration for `opts`, with its files under `dir`. Password authentication
/// on, keyboard-interactive off (Debian's default), `LogLevel INFO` to the `AUTH` facility
/// (OpenSSH's defaults), and room for many connections at once.
fn sshd_config(opts: &SshOptions, dir: &Path) -> String {
    format!(
        "ListenAddress {}\n\
         HostKey {}\n\
         PidFile {}\n\
         UsePAM {}\n\
         PasswordAuthentication yes\n\
         KbdInteractiveAuthentication no\n\
         PubkeyAuthentication yes\n\
         MaxAuthTries {}\n\
         SyslogFacility AUTH\n\
         LogLevel INFO\n\
         UseDNS no\n\
         MaxStartups 100:30:200\n",
        SocketAddr::new(opts.listen, opts.port),
        dir.join("ssh_host_ed25519_key").display(),
        dir.join("sshd.pid").display(),
        if opts.use_pam { "yes" } else { "no" },
        opts.max_auth_tries,
    )
}

/// Debian's sshd (`/usr/sbin/sshd -D`) in a network namespace, on its own configuration,
/// host key and pid file in a temporary directory, logging through its own [`Syslog`] to
/// `auth.log` there (`auth,authpriv.*`, as Debian's `/var/log/auth.log`). Dropping it stops
/// sshd, then rsyslogd, then removes the directory.
pub struct SshServer {
    sshd: Child,
    address: SocketAddr,
    // Dropped after `sshd` is stopped (in `drop`), in this order.
    syslog: Syslog,
    _dir: tempfile::TempDir,
}

impl SshServer {
    /// Starts sshd in `ns` as `opts` says; returns once sshd has logged that it listens.
    ///
    /// # Panics
    /// When sshd or rsyslogd cannot start, or sshd is not listening within ten seconds.
    #[must_use]
    pub fn start(ns: &Netns, opts: &SshOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = dir.path().join("ssh_host_ed25519_key");
        sh(&[
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            key.to_str().expect("a UTF-8 path"),
        ]);
        let config = dir.path().join("sshd_config");
        std::fs::write(&config, sshd_config(opts, dir.path())).expect("write sshd_config");
        // sshd's privilege separation directory, as the package's service would create it.
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let syslog = Syslog::start(dir.path(), &dir.path().join("auth.log"), "auth,authpriv.*");
        let config = config.to_str().expect("a UTF-8 path");
        let sshd = syslog.spawn(Some(ns), &["/usr/sbin/sshd", "-D", "-f", config]);
        let mut server = Self {
            sshd,
            address: SocketAddr::new(opts.listen, opts.port),
            syslog,
            _dir: dir,
        };
        let listening = format!("Server listening on {} port {}", opts.listen, opts.port);
        let ok = wait_until(Duration::from_secs(10), || {
            server.log().contains(&listening) || server.sshd.try_wait().is_ok_and(|s| s.is_some())
        });
        assert!(
            ok && server.log().contains(&listening),
            "sshd did not start ({:?}); its log:\n{}",
            server.sshd.try_wait(),
            server.log()
        );
        server
    }

    /// The address and port sshd listens on, inside its namespace.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The log file sshd's messages reach (through rsyslogd).
    #[must_use]
    pub fn log_path(&self) -> &Path {
        self.syslog.log_path()
    }

    /// The log as it is now (empty before the first message).
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits up to ten seconds for the log to satisfy `done` (sshd logs a connection's last
    /// lines after the client has gone) and returns it.
    ///
    /// # Panics
    /// When it does not, naming `what` and showing the log.
    pub fn wait_for_log(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let ok = wait_until(Duration::from_secs(10), || done(&self.log()));
        let log = self.log();
        assert!(ok, "sshd's log lacks {what}:\n{log}");
        log
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        stop(&mut self.sshd);
    }
}

/// A local account (`useradd`, no home directory, shell `/bin/sh`) with a password, for
/// sshd to check passwords against; deleted on drop.
pub struct LocalUser {
    pub name: String,
}

impl LocalUser {
    /// Creates an account with a unique name and `password`.
    ///
    /// # Panics
    /// When `useradd` or `chpasswd` fails.
    #[must_use]
    pub fn create(password: &str) -> Self {
        use std::io::Write as _;
        let name = unique("bxu");
        sh(&["useradd", "--no-create-home", "--shell", "/bin/sh", &name]);
        let user = Self { name };
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("run chpasswd");
        writeln!(
            chpasswd.stdin.take().expect("piped"),
            "{}:{password}",
            user.name
        )
        .expect("feed chpasswd");
        assert!(
            chpasswd.wait().expect("chpasswd").success(),
            "chpasswd failed"
        );
        user
    }
}

impl Drop for LocalUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// What one client connection did.
#[derive(Debug)]
pub struct Attempt {
    /// Whether the server refused the login (`Permission denied`).
    pub denied: bool,
    /// The client's exit status and its output, for messages.
    pub output: String,
}

/// The OpenSSH client from `source` (an address of `client`, a network namespace) to
/// `server` as `user`, running `true`, with `options` and these: no configuration files,
/// no host key checks, errors only.
fn ssh_command(
    client: &Netns,
    source: &str,
    server: SocketAddr,
    user: &str,
    options: &[&OsStr],
) -> Command {
    let (port, host) = (server.port().to_string(), server.ip().to_string());
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &client.name])
        .args([
            "ssh",
            "-F",
            "/dev/null",
            "-b",
            source,
            "-p",
            &port,
            "-l",
            user,
        ])
        .args(["-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "GlobalKnownHostsFile=/dev/null"])
        .args(["-o", "ConnectTimeout=10"])
        .args(["-o", "LogLevel=ERROR"])
        .args(options)
        .args([&host, "true"])
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` (an OpenSSH client) and tells what it did.
fn attempt(mut cmd: Command) -> Attempt {
    let out = cmd.output().expect("run ssh");
    let output = format!(
        "{}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Attempt {
        denied: !out.status.success()
            && (output.contains("Permission denied")
                || output.contains("Too many authentication failures")),
        output,
    }
}

/// One connection of the OpenSSH client from `source` (an address of `client`, a network
/// namespace) to `server` as `user`, answering each of its `prompts` password prompts with
/// `password` (through `SSH_ASKPASS`, forced), offering no public key. sshd closes the
/// connection itself after `MaxAuthTries` failures.
///
/// # Panics
/// When the client cannot be run.
#[must_use]
pub fn ssh_password(
    client: &Netns,
    source: &str,
    server: SocketAddr,
    user: &str,
    password: &str,
    prompts: u32,
) -> Attempt {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let askpass = dir.path().join("askpass");
    let quoted = password.replace('\'', "'\\''");
    std::fs::write(&askpass, format!("#!/bin/sh\nprintf '%s\\n' '{quoted}'\n"))
        .expect("write askpass");
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700))
        .expect("chmod askpass");
    let prompts = format!("NumberOfPasswordPrompts={prompts}");
    let options = [
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        "PreferredAuthentications=password",
        "-o",
        &prompts,
    ]
    .map(OsStr::new);
    let mut cmd = ssh_command(client, source, server, user, &options);
    cmd.env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env_remove("DISPLAY");
    attempt(cmd)
}

/// One connection of the OpenSSH client from `source` (an address of `client`) to `server`
/// as `user`, offering only the private key in the file `key`, which sshd refuses unless
/// the user authorized it; no password.
///
/// # Panics
/// When the client cannot be run.
#[must_use]
pub fn ssh_key(
    client: &Netns,
    source: &str,
    server: SocketAddr,
    user: &str,
    key: &Path,
) -> Attempt {
    let options = [
        OsStr::new("-i"),
        key.as_os_str(),
        OsStr::new("-o"),
        OsStr::new("IdentitiesOnly=yes"),
        OsStr::new("-o"),
        OsStr::new("PreferredAuthentications=publickey"),
        OsStr::new("-o"),
        OsStr::new("BatchMode=yes"),
    ];
    attempt(ssh_command(client, source, server, user, &options))
}
