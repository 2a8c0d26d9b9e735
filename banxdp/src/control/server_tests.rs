//! The server on temporary sockets, with a stand-in daemon that answers from a list of bans.

use std::{
    io::{BufRead as _, Write as _},
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _},
    sync::oneshot,
    task::JoinHandle,
};

use super::*;
use crate::control::{
    client,
    proto::{BanInfo, TraceEvent},
};

/// The stand-in daemon: one task owning the state, as the real one does.
async fn daemon(
    mut calls: mpsc::Receiver<Call>,
    stop: oneshot::Sender<()>,
    traces: Arc<Mutex<Vec<&'static str>>>,
) {
    let mut bans: Vec<BanInfo> = Vec::new();
    let mut stop = Some(stop);
    while let Some(Call { request, reply, .. }) = calls.recv().await {
        let answer = match request {
            Request::Ping {} => Reply::Pong,
            Request::Ban { target, jail, .. } => {
                bans.push(BanInfo {
                    target,
                    jails: vec![jail.unwrap_or_else(|| "manual".into())],
                    expiry: None,
                    drops: Some(0),
                    shadow: None,
                });
                Reply::Ok {
                    message: Some(format!("banned {}", proto::target_text(&target))),
                    count: None,
                }
            }
            Request::List { .. } => Reply::Bans { bans: bans.clone() },
            Request::Status { jail: Some(jail) } => Reply::Error {
                message: format!("no jail `{jail}`"),
            },
            Request::Reload { .. } => continue, // dropped without a reply
            Request::Stop { .. } => {
                reply.answer(Reply::Ok {
                    message: None,
                    count: None,
                });
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                continue;
            }
            Request::Trace { .. } => {
                let traces = traces.clone();
                let reply = reply.stream();
                tokio::spawn(async move {
                    let _ = reply
                        .send(Reply::Ok {
                            message: None,
                            count: None,
                        })
                        .await;
                    let event = TraceEvent {
                        verdict: "drop".into(),
                        ..TraceEvent::default()
                    };
                    while reply.send(Reply::Trace(event.clone())).await.is_ok() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    traces.lock().unwrap().push("client gone");
                });
                continue;
            }
            _ => Reply::Error {
                message: "not in this test".into(),
            },
        };
        reply.answer(answer);
    }
}

struct Running {
    dir: tempfile::TempDir,
    path: PathBuf,
    server: JoinHandle<()>,
    stop: Option<oneshot::Sender<()>>,
    traces: Arc<Mutex<Vec<&'static str>>>,
}

impl Running {
    /// Stops the server (as a signal would) and waits for it.
    async fn stop(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("the server stops")
            .unwrap();
        self.dir
    }
}

async fn start_in(dir: tempfile::TempDir, group: Option<u32>) -> Running {
    let path = dir.path().join("run/banxdp.sock");
    let listener = bind(&path, group).await.expect("bind");
    let (calls, received) = mpsc::channel(16);
    let (daemon_stop, daemon_stopped) = oneshot::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let traces = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(daemon(received, daemon_stop, traces.clone()));
    let server = tokio::spawn(run(listener, calls, async move {
        tokio::select! {
            _ = stopped => {}
            _ = daemon_stopped => {}
        }
    }));
    Running {
        dir,
        path,
        server,
        stop: Some(stop),
        traces,
    }
}

async fn start() -> Running {
    start_in(tempfile::tempdir().unwrap(), None).await
}

/// A raw connection: lines in, replies out.
struct Raw(BufReader<UnixStream>);

impl Raw {
    async fn open(path: &Path) -> Self {
        Self(BufReader::new(UnixStream::connect(path).await.unwrap()))
    }

    async fn ask(&mut self, line: &[u8]) -> Reply {
        self.0.get_mut().write_all(line).await.unwrap();
        self.next().await.expect("a reply")
    }

    async fn next(&mut self) -> Option<Reply> {
        let mut reply = Vec::new();
        let read = tokio::time::timeout(
            Duration::from_secs(10),
            self.0.read_until(b'\n', &mut reply),
        )
        .await
        .expect("a reply in time")
        .unwrap();
        (read > 0).then(|| proto::decode_reply(&reply).unwrap())
    }
}

fn error_of(reply: Reply) -> String {
    match reply {
        Reply::Error { message } => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn answers_requests_one_after_another_on_a_connection() {
    let running = start().await;
    let mut raw = Raw::open(&running.path).await;
    assert_eq!(raw.ask(b"{\"command\":\"ping\"}\n").await, Reply::Pong);
    assert_eq!(
        raw.ask(b"{\"command\":\"ban\",\"target\":\"192.0.2.7\",\"jail\":\"sshd\"}\n")
            .await,
        Reply::Ok {
            message: Some("banned 192.0.2.7".into()),
            count: None,
        }
    );
    let Reply::Bans { bans } = raw.ask(b"{\"command\":\"list\"}\n").await else {
        panic!("bans expected");
    };
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].jails, ["sshd"]);
    let message = error_of(raw.ask(b"{\"command\":\"status\",\"jail\":\"x\"}\n").await);
    assert_eq!(message, "no jail `x`");
    // The client's own code, from a blocking thread.
    let path = running.path.clone();
    let reply = tokio::task::spawn_blocking(move || client::call(&path, &Request::Ping {}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply, Reply::Pong);
    running.stop().await;
}

#[tokio::test]
async fn a_malformed_request_gets_an_error_and_the_connection_carries_on() {
    let running = start().await;
    let mut raw = Raw::open(&running.path).await;
    for (line, expected) in [
        (
            &b"{not json\n"[..],
            "malformed request: key must be a string",
        ),
        (b"{\"command\":\"explode\"}\n", "unknown variant `explode`"),
        (
            b"{\"command\":\"ban\",\"target\":\"10.0.0.300\"}\n",
            "`10.0.0.300` is not an address",
        ),
        (b"\n", "empty request"),
    ] {
        let message = error_of(raw.ask(line).await);
        assert!(message.contains(expected), "{message}");
    }
    assert_eq!(raw.ask(b"{\"command\":\"ping\"}\n").await, Reply::Pong);
    running.stop().await;
}

#[tokio::test]
async fn an_oversized_request_gets_an_error_and_the_connection_carries_on() {
    let running = start().await;
    let mut raw = Raw::open(&running.path).await;
    let mut line = vec![b'x'; 10 * MAX_REQUEST];
    line.push(b'\n');
    let message = error_of(raw.ask(&line).await);
    assert_eq!(
        message,
        format!(
            "request of {} bytes is longer than the {MAX_REQUEST} allowed",
            10 * MAX_REQUEST
        )
    );
    assert_eq!(raw.ask(b"{\"command\":\"ping\"}\n").await, Reply::Pong);
    running.stop().await;
}

#[tokio::test]
async fn a_call_dropped_without_a_reply_gets_an_error() {
    let running = start().await;
    let mut raw = Raw::open(&running.path).await;
    let message = error_of(raw.ask(b"{\"command\":\"reload\"}\n").await);
    assert_eq!(message, "the daemon dropped the request without a reply");
    assert_eq!(raw.ask(b"{\"command\":\"ping\"}\n").await, Reply::Pong);
    running.stop().await;
}

#[tokio::test]
async fn a_client_that_half_closes_still_gets_its_reply() {
    let running = start().await;
    let mut stream = UnixStream::connect(&running.path).await.unwrap();
    stream.write_all(b"{\"command\":\"ping\"}").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut reply = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut reply)
        .await
        .unwrap();
    assert_eq!(reply, "{\"reply\":\"pong\"}\n");
    running.stop().await;
}

#[tokio::test]
async fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/banxdp.sock");
    std::fs::create_dir(path.parent().unwrap()).unwrap();
    // A listener that is gone leaves its file behind, as a crashed daemon's does.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let running = start_in(dir, None).await;
    assert_eq!(
        Raw::open(&running.path)
            .await
            .ask(b"{\"command\":\"ping\"}\n")
            .await,
        Reply::Pong
    );
    running.stop().await;
}

#[tokio::test]
async fn a_second_daemon_is_refused_and_told_the_first_ones_pid() {
    let running = start().await;
    let error = bind(&running.path, None).await.unwrap_err();
    let pid = i32::try_from(std::process::id()).unwrap();
    assert!(
        matches!(&error, ServerError::Running { pid: Some(p), .. } if *p == pid),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "another banxdp daemon (pid {pid}) is running on `{}`; stop it first (`banxdp stop`)",
            running.path.display()
        )
    );
    // The first one is untouched.
    assert_eq!(
        Raw::open(&running.path)
            .await
            .ask(b"{\"command\":\"ping\"}\n")
            .await,
        Reply::Pong
    );
    running.stop().await;
}

#[tokio::test]
async fn a_socket_that_does_not_answer_ping_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.sock");
    let _other = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let error = bind(&path, None).await.unwrap_err();
    assert!(matches!(error, ServerError::Occupied { .. }), "{error:?}");
    assert!(
        error.to_string().contains("does not answer `ping`"),
        "{error}"
    );
    assert!(path.exists());
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("banxdp.sock");
    std::fs::write(&path, "precious").unwrap();
    let error = bind(&path, None).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "`{}` exists and is not a socket; remove it or choose another `daemon.socket`",
            path.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[tokio::test]
async fn the_socket_is_private_and_its_directory_public() {
    let running = start().await;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&running.path), 0o600);
    assert_eq!(mode(running.path.parent().unwrap()), 0o755);
    running.stop().await;

    let running = start_in(tempfile::tempdir().unwrap(), Some(65_534)).await;
    assert_eq!(mode(&running.path), 0o660);
    assert_eq!(std::fs::metadata(&running.path).unwrap().gid(), 65_534);
    running.stop().await;
}

#[tokio::test]
async fn stop_is_answered_then_the_server_stops_and_removes_its_socket() {
    let running = start().await;
    let mut raw = Raw::open(&running.path).await;
    assert_eq!(
        raw.ask(b"{\"command\":\"stop\"}\n").await,
        Reply::Ok {
            message: None,
            count: None
        }
    );
    assert_eq!(
        raw.next().await,
        None,
        "the connection ends with the server"
    );
    tokio::time::timeout(Duration::from_secs(10), running.server)
        .await
        .expect("the server stops")
        .unwrap();
    assert!(!running.path.exists());
    let path = running.path.clone();
    let error = tokio::task::spawn_blocking(move || client::call(&path, &Request::Ping {}))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "no daemon at {} (not found): is `banxdp run` running?",
            running.path.display()
        )
    );
}

#[tokio::test]
async fn a_trace_streams_until_the_client_hangs_up() {
    let running = start().await;
    let mut raw = Raw::open(&running.path).await;
    assert_eq!(
        raw.ask(b"{\"command\":\"trace\"}\n").await,
        Reply::Ok {
            message: None,
            count: None
        }
    );
    for _ in 0..3 {
        assert!(matches!(raw.next().await, Some(Reply::Trace(_))));
    }
    drop(raw);
    for _ in 0..200 {
        if !running.traces.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*running.traces.lock().unwrap(), ["client gone"]);
    running.stop().await;
}

#[tokio::test]
async fn shutdown_ends_streams_and_removes_the_socket() {
    let running = start().await;
    let mut raw = Raw::open(&running.path).await;
    assert_eq!(
        raw.ask(b"{\"command\":\"trace\"}\n").await,
        Reply::Ok {
            message: None,
            count: None
        }
    );
    assert!(matches!(raw.next().await, Some(Reply::Trace(_))));
    let path = running.path.clone();
    let _dir = running.stop().await;
    while let Some(reply) = raw.next().await {
        assert!(matches!(reply, Reply::Trace(_)), "{reply:?}");
    }
    assert!(!path.exists());
    // A stale file from another run is not removed by a listener that is not its own.
    let dir = tempfile::tempdir().unwrap();
    let listener = bind(&dir.path().join("a.sock"), None).await.unwrap();
    std::fs::remove_file(listener.path()).unwrap();
    std::fs::write(listener.path(), "someone else's").unwrap();
    let path = listener.path().to_path_buf();
    drop(listener);
    assert!(path.exists());
}

#[test]
fn access_is_root_the_daemons_user_or_the_group() {
    let peer = |uid, gid| Peer {
        pid: Some(42),
        uid,
        gid,
    };
    let root_only = Access {
        own_uid: 0,
        group: None,
    };
    assert_eq!(root_only.check(&peer(0, 0), Vec::new), Ok(()));
    assert_eq!(
        root_only.check(&peer(1000, 1000), || vec![100]),
        Err("permission denied: uid 1000 may not use the control socket (root only; see `daemon.socket_group`)".into())
    );
    let group = Access {
        own_uid: 0,
        group: Some(100),
    };
    assert_eq!(group.check(&peer(1000, 100), || unreachable!()), Ok(()));
    assert_eq!(group.check(&peer(1000, 1000), || vec![27, 100]), Ok(()));
    let error = group.check(&peer(1000, 1000), || vec![27]).unwrap_err();
    assert!(error.contains("(root or group 100 only;"), "{error}");
    let own = Access {
        own_uid: 1000,
        group: None,
    };
    assert_eq!(own.check(&peer(1000, 1000), Vec::new), Ok(()));
}

#[test]
fn groups_are_numbers_or_names() {
    assert_eq!(group_id("0").unwrap(), 0);
    assert_eq!(group_id("root").unwrap(), 0);
    assert_eq!(group_id("4242").unwrap(), 4242);
    let error = group_id("no-such-group-here").unwrap_err();
    assert_eq!(
        error.to_string(),
        "`daemon.socket_group`: no group `no-such-group-here`"
    );
    assert!(group_id("bad\0name").is_err());
}

#[tokio::test]
async fn lines_are_read_whole_or_dropped_whole() {
    let input: &[u8] = b"short\nmuch too long\nok\nlast";
    let mut read = BufReader::with_capacity(4, input);
    let mut line = Vec::new();
    let mut seen = Vec::new();
    loop {
        let next = read_line(&mut read, &mut line, 6).await.unwrap();
        if next == Line::End {
            break;
        }
        seen.push((
            format!("{next:?}"),
            String::from_utf8(line.clone()).unwrap(),
        ));
    }
    assert_eq!(
        seen,
        [
            ("Complete".to_string(), "short".to_string()),
            ("TooLong(13)".to_string(), String::new()),
            ("Complete".to_string(), "ok".to_string()),
            ("Complete".to_string(), "last".to_string()),
        ]
    );
}

/// The environment variable that turns [`as_another_user`] into a client.
const CLIENT_SOCKET: &str = "BANXDP_TEST_CONTROL_CLIENT";

/// Not a test of its own: the child that [`peers_other_than_root_are_refused_unless_in_the_group`]
/// runs as another user. It pings the socket named in the environment and prints the reply.
#[test]
fn as_another_user() {
    let Some(path) = std::env::var_os(CLIENT_SOCKET) else {
        return;
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).expect("connect");
    stream.write_all(&proto::encode(&Request::Ping {})).unwrap();
    let mut reply = String::new();
    std::io::BufReader::new(stream)
        .read_line(&mut reply)
        .unwrap();
    println!("REPLY {reply}");
}

/// Runs [`as_another_user`] under `setpriv` with these arguments; its reply.
fn ping_as(path: &Path, setpriv: &[&str]) -> Reply {
    let output = std::process::Command::new("setpriv")
        .args(setpriv)
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "control::server::tests::as_another_user",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CLIENT_SOCKET, path)
        .output()
        .expect("setpriv runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("REPLY ").map(|(_, reply)| reply))
        .unwrap_or_else(|| {
            panic!(
                "no reply: {stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    proto::decode_reply(line.as_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_other_than_root_are_refused_unless_in_the_group() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root, to connect as another user");
        return;
    }
    let open = |dir: &tempfile::TempDir| {
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    let dir = tempfile::tempdir().unwrap();
    open(&dir);
    let running = start_in(dir, None).await;
    // Past the file's mode, so that the credentials are what refuses.
    std::fs::set_permissions(&running.path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let path = running.path.clone();
    let reply = tokio::task::spawn_blocking(move || ping_as(&path, &nobody))
        .await
        .unwrap();
    assert_eq!(
        error_of(reply),
        "permission denied: uid 65534 may not use the control socket (root only; see `daemon.socket_group`)"
    );
    // The server carries on.
    assert_eq!(
        Raw::open(&running.path)
            .await
            .ask(b"{\"command\":\"ping\"}\n")
            .await,
        Reply::Pong
    );
    running.stop().await;

    let dir = tempfile::tempdir().unwrap();
    open(&dir);
    let running = start_in(dir, Some(65_534)).await;
    let path = running.path.clone();
    let primary = tokio::task::spawn_blocking(move || ping_as(&path, &nobody))
        .await
        .unwrap();
    assert_eq!(primary, Reply::Pong, "the group as the primary group");
    let path = running.path.clone();
    let supplementary = ["--reuid=65534", "--regid=1", "--groups=65534"];
    let reply = tokio::task::spawn_blocking(move || ping_as(&path, &supplementary))
        .await
        .unwrap();
    assert_eq!(reply, Reply::Pong, "the group as a supplementary group");
    running.stop().await;
}
