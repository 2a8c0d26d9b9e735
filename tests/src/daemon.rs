//! The real `banxdp run`, started by tests inside a namespace they created: a temporary
//! configuration (banxdp.toml, jails, the log the jails read, the control socket and the
//! ban database all under one temp dir, the pins under a unique bpffs directory), the
//! daemon's own log captured in a file, and a guard that kills the process and removes its
//! pins whatever the test's outcome.

use std::{
    fs::File,
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use crate::{Netns, netns::IFACE, unique, with_netns};

/// The binary under test: `banxdp-bin`, which cargo builds beside the test executables'
/// `deps/` directory for every integration test (`CARGO_BIN_EXE_*` exists only in the tests'
/// own crates, not in this library).
#[must_use]
pub fn bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe.parent().expect("deps/");
    let dir = if dir.ends_with("deps") {
        dir.parent().expect("the profile directory")
    } else {
        dir
    };
    dir.join("banxdp-bin")
}

/// Removes a pin directory whatever happens to the test.
pub struct Pins(pub PathBuf);

impl Pins {
    /// A fresh, unique directory under /sys/fs/bpf (not created).
    #[must_use]
    pub fn unique() -> Self {
        Self(PathBuf::from(format!(
            "/sys/fs/bpf/{}",
            unique("banxdp-test-")
        )))
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A daemon's configuration in a temp dir: `banxdp.toml`, `jail.local` and whatever filters
/// the test writes, with the socket and database beside them.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub pins: Pins,
}

impl Setup {
    /// `jails` is the text of `jail.local`; `extra_toml` is appended to banxdp.toml.
    #[must_use]
    pub fn new(jails: &str, extra_toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let pins = Pins::unique();
        let root = dir.path();
        std::fs::create_dir_all(root.join("filter.d")).unwrap();
        std::fs::create_dir_all(root.join("action.d")).unwrap();
        std::fs::write(root.join("jail.local"), jails).unwrap();
        std::fs::write(
            root.join("banxdp.toml"),
            format!(
                "[daemon]\nconfig_dir = \"{root}\"\nsocket = \"{root}/banxdp.sock\"\n\
                 database = \"{root}/banxdp.sqlite3\"\n\
                 [xdp]\ninterfaces = [\"{IFACE}\"]\npin_dir = \"{pins}\"\n{extra_toml}",
                root = root.display(),
                pins = pins.0.display(),
            ),
        )
        .unwrap();
        Self { dir, pins }
    }

    #[must_use]
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// banxdp's shipped `jail.conf` and filters, with `jail` enabled in `jail.local` on
    /// `logpath`, `maxretry` failures within 10 minutes banning for 10 (and the shipped sshd
    /// jail off, unless it is the one), as an operator enables a jail.
    ///
    /// # Panics
    /// When the shipped files cannot be read.
    pub fn shipped_jail(&self, jail: &str, logpath: &Path, maxretry: u32) {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        std::fs::copy(config.join("jail.conf"), self.path("jail.conf")).unwrap();
        for filter in std::fs::read_dir(config.join("filter.d")).unwrap() {
            let filter = filter.unwrap().path();
            let name = filter.file_name().unwrap().to_string_lossy().into_owned();
            std::fs::copy(&filter, self.path(&format!("filter.d/{name}"))).unwrap();
        }
        let sshd_off = if jail == "sshd" {
            ""
        } else {
            "[sshd]\nenabled = false\n"
        };
        std::fs::write(
            self.path("jail.local"),
            format!(
                "{sshd_off}[{jail}]\nenabled = true\nlogpath = {}\nmaxretry = {maxretry}\n\
                 findtime = 600\nbantime = 600\n",
                logpath.display()
            ),
        )
        .unwrap();
    }

    /// Waits (up to 10 s) until `jail` has counted `n` failures in all (`status JAIL`).
    pub fn wait_counted(&self, jail: &str, n: usize) {
        crate::eventually(&format!("{n} failure(s) counted in {jail}"), || {
            let out = self.client(&["status", jail]);
            String::from_utf8_lossy(&out.stdout).contains(&format!("Total failed:\t{n}\n"))
        });
    }

    /// `banxdp run` on this setup inside `ns`, once it enforces (with no ban yet).
    #[must_use]
    pub fn start_daemon(&self, ns: &Netns) -> Daemon {
        let mut daemon = Daemon::start(ns, &self.path("banxdp.toml"), self.path("daemon.log"));
        daemon.wait_for_log("enforcing 0 ban(s)");
        daemon
    }

    /// Writes `filter.d/NAME.conf`.
    pub fn filter(&self, name: &str, text: &str) {
        std::fs::write(self.path(&format!("filter.d/{name}.conf")), text).unwrap();
    }

    /// Appends lines to a log file under the temp dir (created when missing), in one write.
    pub fn append(&self, log: &str, lines: &[String]) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(log))
            .unwrap();
        let mut text = String::new();
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        file.write_all(text.as_bytes()).unwrap();
    }

    /// `banxdp --socket SOCKET ARGS...` (a client command), run in the test's namespace.
    #[must_use]
    pub fn client(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("--socket")
            .arg(self.path("banxdp.sock"))
            .args(args)
            .output()
            .expect("run the banxdp client")
    }
}

/// `banxdp run` inside `ns`, logging to a file; killed on drop.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `banxdp run --config CONFIG` with its standard error in `log`.
    #[must_use]
    pub fn start(ns: &Netns, config: &Path, log: PathBuf) -> Self {
        Self::start_with(ns, &["run", "--config", &config.display().to_string()], log)
    }

    /// Starts the binary with `args` inside `ns`.
    #[must_use]
    pub fn start_with(ns: &Netns, args: &[&str], log: PathBuf) -> Self {
        Self::start_program(&bin(), ns, args, log)
    }

    /// Starts `program` (a banxdp binary, or another daemon a benchmark compares) with
    /// `args` inside `ns`, its standard error in `log`.
    #[must_use]
    pub fn start_program(program: &Path, ns: &Netns, args: &[&str], log: PathBuf) -> Self {
        Self::start_program_env(program, ns, args, log, &[])
    }

    /// [`Daemon::start_program`] with `env` added to its environment.
    #[must_use]
    pub fn start_program_env(
        program: &Path,
        ns: &Netns,
        args: &[&str],
        log: PathBuf,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Self {
        let mut cmd = Command::new(program);
        cmd.envs(env.iter().copied())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        // A child starts in the network namespace of the thread that spawns it.
        let child = with_netns(ns, || cmd.spawn()).expect("start banxdp run");
        Self { child, log }
    }

    /// The daemon's own log so far.
    #[must_use]
    pub fn log(&self) -> String {
        let mut text = String::new();
        File::open(&self.log)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    /// Waits (up to 20 s) for `needle` in the daemon's log; panics with the log if it exits
    /// first or never writes it.
    pub fn wait_for_log(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "banxdp run exited ({status}) before `{needle}`:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no `{needle}` in the log of banxdp run:\n{}", self.log());
    }

    /// SIGTERM, then waits for the exit; returns whether it exited with status 0.
    pub fn stop(&mut self) -> bool {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(i32::try_from(self.child.id()).unwrap(), libc::SIGTERM) };
        self.child.wait().unwrap().success()
    }

    /// SIGKILL, then waits.
    pub fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
