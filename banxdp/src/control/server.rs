//! The daemon's end of the control socket: binds it (replacing a socket left by a crash,
//! refusing to start beside a live daemon), checks each peer's credentials, reads JSON-line
//! requests and hands each to the daemon as a [`Call`], writing back whatever replies the
//! daemon sends.
//!
//! It knows nothing of jails or bans: the daemon owns that state and answers calls from one
//! task (the receiving end of the `mpsc` given to [`run`]). A malformed, oversized or
//! unauthorised request gets an error reply; the connection (for the first two) and the
//! server (for all three) carry on. In mini-redis's shape, [`run`] takes its listener and its
//! shutdown future, so that tests bind a temporary socket and stop it when they like.

use std::{
    future::Future,
    io,
    os::{
        fd::AsRawFd as _,
        unix::fs::{DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, PermissionsExt as _},
    },
    path::{Path, PathBuf},
    time::Duration,
};

use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, watch},
    task::JoinSet,
};

use super::proto::{self, MAX_REQUEST, Reply, Request};

/// How long a probe of an existing socket, or a refused peer, may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connections may take to finish their replies once the server stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Replies the daemon may queue for one connection (a trace stream) before it waits.
const REPLY_QUEUE: usize = 256;
/// Connections served at once; more wait in the socket's backlog.
const MAX_CONNECTIONS: usize = 128;

/// Who is at the other end of a connection (`SO_PEERCRED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub pid: Option<i32>,
    pub uid: u32,
    pub gid: u32,
}

/// One request for the daemon to answer, with the way back to its client. The connection
/// reads its next request only once `reply` is gone; a call dropped without a reply gets an
/// error reply.
#[derive(Debug)]
pub struct Call {
    pub request: Request,
    pub peer: Peer,
    pub reply: Responder,
}

/// Where a call's replies go.
#[derive(Debug)]
pub struct Responder(mpsc::Sender<Reply>);

impl Responder {
    /// Sends the one reply, without waiting: for the daemon's loop, which answers from its
    /// own state and must not block on a client. A client that has gone is no error.
    pub fn answer(self, reply: Reply) {
        // The queue is new and holds `REPLY_QUEUE` replies: the first always fits.
        let _ = self.0.try_send(reply);
    }

    /// The channel itself, for a stream of replies (`trace`): send [`Reply::Ok`], then the
    /// events; sending fails, and `closed()` completes, once the client has hung up. Drop it
    /// to end the stream.
    #[must_use]
    pub fn stream(self) -> mpsc::Sender<Reply> {
        self.0
    }
}

/// Who may use the socket: root, the daemon's own user, and the members of `group`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub own_uid: u32,
    pub group: Option<u32>,
}

impl Access {
    /// Whether `peer` (in the supplementary groups `groups` gives) may send requests; if not,
    /// the message for it.
    pub fn check(&self, peer: &Peer, groups: impl FnOnce() -> Vec<u32>) -> Result<(), String> {
        if peer.uid == 0 || peer.uid == self.own_uid {
            return Ok(());
        }
        if let Some(group) = self.group
            && (peer.gid == group || groups().contains(&group))
        {
            return Ok(());
        }
        let who = match self.group {
            Some(group) => format!("root or group {group}"),
            None => "root".to_string(),
        };
        Err(format!(
            "permission denied: uid {} may not use the control socket ({who} only; see `daemon.socket_group`)",
            peer.uid
        ))
    }
}

/// A bound control socket. Dropping it removes the socket file, if it is still this one.
#[derive(Debug)]
pub struct Listener {
    socket: UnixListener,
    path: PathBuf,
    identity: (u64, u64),
    access: Access,
}

impl Listener {
    /// The socket's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == self.identity);
        if ours && let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!(
                "cannot remove the control socket `{}`: {error}",
                self.path.display()
            );
        }
    }
}

/// Why the control socket cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create the control socket's directory `{}`", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot inspect `{}`", path.display())]
    Inspect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{}` exists and is not a socket; remove it or choose another `daemon.socket`", path.display())]
    NotASocket { path: PathBuf },
    #[error("another banxdp daemon{} is running on `{}`; stop it first (`banxdp stop`)", pid_text(*pid), path.display())]
    Running { path: PathBuf, pid: Option<i32> },
    #[error("a process{} listens on `{}` and does not answer `ping`; stop it or choose another `daemon.socket`", pid_text(*pid), path.display())]
    Occupied { path: PathBuf, pid: Option<i32> },
    #[error("cannot remove the stale control socket `{}`", path.display())]
    RemoveStale {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot bind the control socket `{}`", path.display())]
    Bind {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`daemon.socket_group`: no group `{name}`")]
    UnknownGroup { name: String },
    #[error("cannot set the owner or mode of the control socket `{}`", path.display())]
    Permissions {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn pid_text(pid: Option<i32>) -> String {
    pid.map_or_else(String::new, |pid| format!(" (pid {pid})"))
}

/// Binds the control socket at `path`: its directory is created (0755) if missing, a socket
/// left there by a crash is replaced, a live daemon there is an error naming its pid. The
/// socket is 0600 (root only), or 0660 and owned by `group` when one is given.
pub async fn bind(path: &Path, group: Option<u32>) -> Result<Listener, ServerError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|source| ServerError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => replace_stale(path).await?,
        Ok(_) => {
            return Err(ServerError::NotASocket {
                path: path.to_path_buf(),
            });
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ServerError::Inspect {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    let listener = UnixListener::bind(path).map_err(|source| ServerError::Bind {
        path: path.to_path_buf(),
        source,
    })?;
    let permissions = |source| ServerError::Permissions {
        path: path.to_path_buf(),
        source,
    };
    if group.is_some() {
        std::os::unix::fs::chown(path, None, group).map_err(permissions)?;
    }
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(permissions)?;
    let meta = std::fs::symlink_metadata(path).map_err(|source| ServerError::Inspect {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Listener {
        socket: listener,
        path: path.to_path_buf(),
        identity: (meta.dev(), meta.ino()),
        // SAFETY: geteuid has no preconditions and cannot fail.
        access: Access {
            own_uid: unsafe { libc::geteuid() },
            group,
        },
    })
}

/// The id of the group `name` (`daemon.socket_group`): a number, or a name from the group
/// database (/etc/group, or whatever NSS serves).
pub fn group_id(name: &str) -> Result<u32, ServerError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let unknown = || ServerError::UnknownGroup {
        name: name.to_string(),
    };
    let c_name = std::ffi::CString::new(name).map_err(|_| unknown())?;
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: `group` is plain data that getgrnam_r fills, its strings pointing into
        // `buf`, which outlives it; `found` is null or `&group` afterwards.
        let (status, gid) = unsafe {
            let mut group = std::mem::zeroed::<libc::group>();
            let mut found = std::ptr::null_mut();
            let status = libc::getgrnam_r(
                c_name.as_ptr(),
                &raw mut group,
                buf.as_mut_ptr(),
                buf.len(),
                &raw mut found,
            );
            (status, (!found.is_null()).then_some(group.gr_gid))
        };
        match (status, gid) {
            (libc::ERANGE, _) if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            (0, Some(gid)) => return Ok(gid),
            _ => return Err(unknown()),
        }
    }
}

/// Removes the socket at `path` if nothing listens on it; refuses if something does.
async fn replace_stale(path: &Path) -> Result<(), ServerError> {
    let connected = tokio::time::timeout(PROBE_TIMEOUT, UnixStream::connect(path)).await;
    match connected {
        Ok(Ok(stream)) => {
            let pid = stream.peer_cred().ok().and_then(|cred| cred.pid());
            let path = path.to_path_buf();
            return Err(if ping(stream).await {
                ServerError::Running { path, pid }
            } else {
                ServerError::Occupied { path, pid }
            });
        }
        Ok(Err(error)) if error.kind() == io::ErrorKind::ConnectionRefused => {}
        // Gone between the look and the connection: nothing to remove.
        Ok(Err(error)) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Ok(Err(source)) => {
            return Err(ServerError::Inspect {
                path: path.to_path_buf(),
                source,
            });
        }
        Err(_) => {
            return Err(ServerError::Occupied {
                path: path.to_path_buf(),
                pid: None,
            });
        }
    }
    tracing::info!(
        "replacing the stale control socket `{}` (no daemon answers on it)",
        path.display()
    );
    std::fs::remove_file(path).map_err(|source| ServerError::RemoveStale {
        path: path.to_path_buf(),
        source,
    })
}

/// Whether `stream` answers `ping` with `pong` in time.
async fn ping(stream: UnixStream) -> bool {
    let exchange = async {
        let mut stream = BufReader::new(stream);
        stream
            .get_mut()
            .write_all(&proto::encode(&Request::Ping {}))
            .await?;
        let mut line = Vec::new();
        stream.read_until(b'\n', &mut line).await?;
        io::Result::Ok(proto::decode_reply(&line) == Ok(Reply::Pong))
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, exchange).await,
        Ok(Ok(true))
    )
}

/// Serves `listener` until `shutdown` completes: each connection in its own task (at most
/// `MAX_CONNECTIONS` at once), each of its requests sent to `handler`. Then it stops accepting, ends trace streams, lets
/// pending replies go out (for a few seconds at most) and removes the socket file.
pub async fn run(
    listener: Listener,
    handler: mpsc::Sender<Call>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.socket.accept(), if connections.len() < MAX_CONNECTIONS => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream, listener.access, handler.clone(), stopped.clone()));
                }
                Err(error) => {
                    tracing::warn!("control socket: cannot accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    stop.send_replace(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("control socket: connections still open at stop were closed");
    }
    drop(listener);
}

/// Reads requests from one connection and writes their replies, until the peer hangs up,
/// the server stops, or the connection fails.
async fn serve(
    stream: UnixStream,
    access: Access,
    handler: mpsc::Sender<Call>,
    mut stopped: watch::Receiver<bool>,
) {
    let peer = match stream.peer_cred() {
        Ok(cred) => Peer {
            pid: cred.pid(),
            uid: cred.uid(),
            gid: cred.gid(),
        },
        Err(error) => {
            tracing::warn!("control socket: cannot read a peer's credentials: {error}");
            return;
        }
    };
    let fd = stream.as_raw_fd();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = Vec::new();
    if let Err(message) = access.check(&peer, || peer_groups(fd)) {
        tracing::warn!("control socket: refused pid {:?}: {message}", peer.pid);
        // Read the request first, so that the peer reads the refusal rather than a reset.
        let _ =
            tokio::time::timeout(PROBE_TIMEOUT, read_line(&mut read, &mut line, MAX_REQUEST)).await;
        let _ = write_reply(&mut write, &Reply::Error { message }).await;
        return;
    }
    loop {
        let next = tokio::select! {
            next = read_line(&mut read, &mut line, MAX_REQUEST) => next,
            () = stopping(&mut stopped) => return,
        };
        let request = match next {
            Ok(Line::Complete) => proto::decode_request(&line),
            Ok(Line::TooLong(len)) => Err(proto::ProtoError::TooLong {
                len,
                max: MAX_REQUEST,
            }),
            Ok(Line::End) | Err(_) => return,
        };
        let result = match request {
            Ok(request) => {
                answer(request, peer, &handler, &mut read, &mut write, &mut stopped).await
            }
            Err(error) => write_reply(
                &mut write,
                &Reply::Error {
                    message: error.to_string(),
                },
            )
            .await
            .map(|()| true),
        };
        if !matches!(result, Ok(true)) {
            return;
        }
    }
}

/// Hands one request to the daemon and writes its replies. `Ok(false)`: the connection is
/// over (the peer hung up, or the server stops).
async fn answer(
    request: Request,
    peer: Peer,
    handler: &mpsc::Sender<Call>,
    read: &mut (impl AsyncBufRead + Unpin),
    write: &mut (impl AsyncWrite + Unpin),
    stopped: &mut watch::Receiver<bool>,
) -> io::Result<bool> {
    let request_kind = if matches!(request, Request::Trace { .. }) {
        Kind::Stream
    } else {
        Kind::One
    };
    let (reply, mut replies) = mpsc::channel(REPLY_QUEUE);
    if handler
        .send(Call {
            request,
            peer,
            reply: Responder(reply),
        })
        .await
        .is_err()
    {
        let message = "the daemon is stopping".to_string();
        write_reply(write, &Reply::Error { message }).await?;
        return Ok(false);
    }
    let mut answered = false;
    // A trace client ends its stream by hanging up. Other clients may half-close once they
    // have asked (`nc -N`), and still read their reply.
    let mut watch_peer = matches!(request_kind, Kind::Stream);
    loop {
        tokio::select! {
            biased;
            next = replies.recv() => match next {
                Some(reply) => {
                    write_reply(write, &reply).await?;
                    answered = true;
                }
                None => break,
            },
            () = stopping(stopped) => return Ok(false),
            filled = read.fill_buf(), if watch_peer => match filled {
                Ok([]) | Err(_) => return Ok(false),
                Ok(_) => watch_peer = false,
            },
        }
    }
    if !answered {
        let message = "the daemon dropped the request without a reply".to_string();
        write_reply(write, &Reply::Error { message }).await?;
    }
    Ok(true)
}

/// Completes once the server stops.
async fn stopping(stopped: &mut watch::Receiver<bool>) {
    // An error means the server is gone: stopped as well.
    let _ = stopped.wait_for(|stop| *stop).await.map(|_| ());
}

enum Kind {
    One,
    Stream,
}

async fn write_reply(write: &mut (impl AsyncWrite + Unpin), reply: &Reply) -> io::Result<()> {
    write.write_all(&proto::encode(reply)).await?;
    write.flush().await
}

/// What [`read_line`] read.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line (newline excluded) in the buffer; the last one may lack its newline.
    Complete,
    /// A line of this many bytes, longer than allowed, consumed and dropped.
    TooLong(usize),
    /// The peer hung up.
    End,
}

/// Reads one line into `line` (cleared first), keeping at most `max` bytes of it: a longer
/// one is read to its end and dropped, so that the next line is read whole.
async fn read_line(
    read: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    line.clear();
    let mut len = 0usize;
    loop {
        let buf = read.fill_buf().await?;
        if buf.is_empty() {
            return Ok(match len {
                0 => Line::End,
                len if len > max => Line::TooLong(len),
                _ => Line::Complete,
            });
        }
        let (part, done) = match memchr::memchr(b'\n', buf) {
            Some(end) => (&buf[..end], true),
            None => (buf, false),
        };
        if len + part.len() <= max {
            line.extend_from_slice(part);
        } else {
            line.clear();
        }
        len += part.len();
        let used = part.len() + usize::from(done);
        read.consume(used);
        if done {
            return Ok(if len > max {
                Line::TooLong(len)
            } else {
                Line::Complete
            });
        }
    }
}

/// The supplementary groups of the peer on `fd` (`SO_PEERGROUPS`, Linux 4.13), or none.
fn peer_groups(fd: std::os::fd::RawFd) -> Vec<u32> {
    // The asm-generic value, also x86's and arm's; libc does not export it for every target.
    const SO_PEERGROUPS: libc::c_int = 59;
    let mut groups = vec![0 as libc::gid_t; 256];
    let mut len = libc::socklen_t::try_from(groups.len() * size_of::<libc::gid_t>())
        .expect("256 groups fit in a socklen_t");
    // SAFETY: `groups` is valid for `len` bytes, and `len` is a valid in-out length.
    let done = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_PEERGROUPS,
            groups.as_mut_ptr().cast(),
            &raw mut len,
        )
    };
    if done != 0 {
        return Vec::new();
    }
    groups.truncate(len as usize / size_of::<libc::gid_t>());
    groups
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
