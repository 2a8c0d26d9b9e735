//! The product's job on a real web server (needs root; CI installs nginx): Debian's
//! nginx runs in the victim's namespace with HTTP basic authentication and its error log in
//! a file; `banxdp run` follows that file with banxdp's shipped `nginx-http-auth` filter and
//! jail. A client sends wrong passwords from the attacker's namespace, each request carrying
//! one, as browsers and scripts do, until banxdp bans it: the next connection to port 80
//! times out, while another address still gets the page with the right password.

use std::{
    fs::File,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use banxdp_tests::{
    Netns, Topology,
    clients::{Guessing, Reached, base64, exchange},
    daemon::Setup,
    netns::VICTIM_V4,
    privileged,
    services::programs_present,
    with_netns,
};

const ATTACKER: &str = "198.51.100.66";
const OTHER: &str = "198.51.100.67";
const NGINX: &str = "/usr/sbin/nginx";
const PASSWORD: &str = "the-right-Passw0rd";

/// nginx in `ns` on port 80, its files under `dir`, one process (no master and workers, so
/// that killing it leaves nothing behind); killed on drop.
struct Nginx {
    child: Child,
    error_log: std::path::PathBuf,
}

impl Nginx {
    fn start(ns: &Netns, dir: &Path) -> Self {
        let root = dir.join("nginx");
        std::fs::create_dir_all(root.join("html")).unwrap();
        std::fs::write(root.join("html/index.html"), "the private page\n").unwrap();
        // nginx's own scheme for a password kept as it is.
        std::fs::write(root.join("users"), format!("alice:{{PLAIN}}{PASSWORD}\n")).unwrap();
        let error_log = root.join("error.log");
        let r = root.display();
        std::fs::write(
            root.join("nginx.conf"),
            format!(
                "daemon off;\nmaster_process off;\npid {r}/nginx.pid;\nerror_log {r}/error.log;\nevents {{}}\n\
                 http {{\n access_log {r}/access.log;\n client_body_temp_path {r}/body;\n\
                 proxy_temp_path {r}/proxy;\n fastcgi_temp_path {r}/fastcgi;\n\
                 uwsgi_temp_path {r}/uwsgi;\n scgi_temp_path {r}/scgi;\n\
                 server {{\n  listen {VICTIM_V4}:80;\n  root {r}/html;\n\
                 location / {{\n   auth_basic \"private\";\n   auth_basic_user_file {r}/users;\n\
                 }}\n }}\n}}\n"
            ),
        )
        .unwrap();
        let mut command = Command::new(NGINX);
        command
            .arg("-c")
            .arg(root.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(root.join("stderr.log")).unwrap());
        // A child starts in the network namespace of the thread that spawns it.
        let child = with_netns(ns, || command.spawn()).expect("start nginx");
        let nginx = Self { child, error_log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while with_netns(ns, || TcpStream::connect((VICTIM_V4, 80)).is_err()) {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                std::fs::read_to_string(root.join("stderr.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One GET of `/` from `source` as `user:password`: the status code.
fn get(topo: &Topology, source: &str, user: &str, password: &str) -> Reached<u16> {
    let server: SocketAddr = format!("{VICTIM_V4}:80").parse().expect("address");
    exchange(
        &topo.attacker,
        source,
        server,
        Duration::from_secs(2),
        |mut stream| {
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            let credentials = base64(format!("{user}:{password}").as_bytes());
            write!(
                stream,
                "GET / HTTP/1.1\r\nHost: www.example.test\r\nAuthorization: Basic {credentials}\r\n\
             Connection: close\r\n\r\n"
            )?;
            let mut reply = String::new();
            stream.read_to_string(&mut reply)?;
            reply
                .split(' ')
                .nth(1)
                .and_then(|code| code.parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("not an HTTP reply: {reply:?}")))
        },
    )
}

#[test]
fn nginx_basic_auth_guesser_is_banned() {
    const NAME: &str = "nginx_basic_auth_guesser_is_banned";
    if !privileged(NAME) || !programs_present(NAME, &[NGINX]) {
        return;
    }
    let topo = Topology::new(&[ATTACKER, OTHER], &[]);
    let setup = Setup::new("", "");
    let nginx = Nginx::start(&topo.victim, setup.dir.path());
    // banxdp's own filter and jail.conf, as shipped; the jail enabled on nginx's log.
    setup.shipped_jail("nginx-http-auth", &nginx.error_log, 3);
    let mut daemon = setup.start_daemon(&topo.victim);
    assert_eq!(get(&topo, OTHER, "alice", PASSWORD), Reached::Answer(200));

    // Wrong passwords, one request each, each counted once: the third bans.
    let guessing = Guessing {
        jail: "nginx-http-auth",
        maxretry: 3,
        attacker: ATTACKER,
        other: OTHER,
        right_password: PASSWORD,
        refused: 401,
        accepted: 200,
        log: &nginx.error_log,
    };
    guessing.is_banned(&setup, &mut daemon, |source, password| {
        get(&topo, source, "alice", password)
    });
}
