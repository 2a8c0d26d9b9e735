//! `banxdp trace`: one task that owns the XDP program's [`Tracer`], reads its verdict records
//! as the ring buffer fills, and streams each to every client whose filter matches.
//!
//! The kernel's filter is the union of the running traces' filters (the tracer counts them);
//! each client gets only the verdicts of its own filter. A client that hangs up is noticed
//! within [`PRUNE_EVERY`] (or at its next event) and its filter leaves the union; the last
//! one's departure turns the program's switch off. Nothing of a trace is kept: when the daemon
//! stops, the control server ends every stream and the new daemon's program starts with the
//! switch off.
//!
//! A slow client does not slow the daemon: events that do not fit its reply queue are dropped
//! and counted, and the next event that fits says how many were lost.

use std::{
    collections::HashMap,
    ffi::CStr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ipnet::IpNet;
use tokio::{
    io::unix::AsyncFd,
    sync::mpsc::{self, error::TrySendError},
};

use crate::{
    control::{
        proto::{Reply, TraceEvent},
        server::Responder,
    },
    enforce::xdp::trace::{Tracer, Verdict},
};

/// How often clients that hung up are looked for (and the ring buffer read, in case a wake-up
/// was missed).
const PRUNE_EVERY: Duration = Duration::from_millis(200);

/// The daemon's handle on tracing: where `trace` requests go.
pub struct Traces {
    requests: Result<mpsc::UnboundedSender<Subscriber>, String>,
}

/// One `trace` client.
struct Subscriber {
    filter: Option<IpNet>,
    stream: mpsc::Sender<Reply>,
    /// Events lost to a full queue since the last one delivered.
    lost: u64,
}

impl Traces {
    /// Starts the tracing task on `tracer`; without one, every `trace` request gets an error
    /// saying why: bans are not enforced by XDP (`why_not_xdp`), or the XDP object cannot
    /// trace.
    pub fn spawn(tracer: Option<Tracer>, why_not_xdp: Option<&str>) -> Self {
        let Some(tracer) = tracer else {
            let why = why_not_xdp.map_or_else(
                || "the XDP object cannot trace (see the daemon's log)".to_string(),
                |why| format!("bans are not enforced by XDP ({why})"),
            );
            return Self { requests: Err(why) };
        };
        // SAFETY: the tracer owns the ring buffer's descriptor and never replaces it; it
        // closes it only when dropped, which the `AsyncFd` does last.
        let registered =
            unsafe { AsyncFd::register_with_interest(tracer, tokio::io::Interest::READABLE) };
        let ring = match registered {
            Ok(ring) => ring,
            Err(e) => {
                return Self {
                    requests: Err(format!(
                        "cannot watch the XDP program's log ring buffer: {e}"
                    )),
                };
            }
        };
        let (requests, receiver) = mpsc::unbounded_channel();
        tokio::spawn(serve(ring, receiver));
        Self {
            requests: Ok(requests),
        }
    }

    /// Streams the verdicts for sources in `filter` (`None`: all) to `reply` until its client
    /// hangs up.
    pub fn start(&self, filter: Option<IpNet>, reply: Responder) {
        let requests = match &self.requests {
            Ok(requests) => requests,
            Err(why) => {
                return reply.answer(Reply::Error {
                    message: format!("trace is unavailable: {why}"),
                });
            }
        };
        let subscriber = Subscriber {
            filter,
            stream: reply.stream(),
            lost: 0,
        };
        if let Err(mpsc::error::SendError(subscriber)) = requests.send(subscriber) {
            let _ = subscriber.stream.try_send(Reply::Error {
                message: "trace is unavailable: its task has stopped (see the daemon's log)".into(),
            });
        }
    }
}

/// The tracing task: subscriptions, records and departures, until the daemon drops
/// [`Traces`].
async fn serve(mut ring: AsyncFd<Tracer>, mut requests: mpsc::UnboundedReceiver<Subscriber>) {
    let mut clients: Vec<Subscriber> = Vec::new();
    let mut names = Interfaces::default();
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some(subscriber) = request else { break };
                subscribe(ring.get_mut(), &mut clients, subscriber);
            }
            ready = ring.readable_mut() => {
                let Ok(mut guard) = ready else {
                    tracing::error!("trace: the XDP program's ring buffer failed; tracing stops");
                    break;
                };
                let verdicts = guard.get_inner_mut().drain();
                guard.clear_ready();
                dispatch(ring.get_ref(), &mut clients, &mut names, verdicts);
            }
            _ = prune.tick() => {
                let verdicts = ring.get_mut().drain();
                dispatch(ring.get_ref(), &mut clients, &mut names, verdicts);
                clients = leave(ring.get_mut(), clients, |c| c.stream.is_closed());
            }
        }
    }
    // The daemon is stopping: turn tracing off for the program that keeps running.
    let _ = leave(ring.get_mut(), clients, |_| true);
}

fn subscribe(tracer: &mut Tracer, clients: &mut Vec<Subscriber>, subscriber: Subscriber) {
    let what = subscriber.filter.map_or_else(
        || "every source".to_string(),
        |n| crate::control::proto::target_text(&n),
    );
    if let Err(e) = tracer.add(subscriber.filter) {
        let _ = subscriber.stream.try_send(Reply::Error {
            message: format!("cannot trace {what}: {e}"),
        });
        return;
    }
    tracing::info!("trace: {what} ({} running)", clients.len() + 1);
    let _ = subscriber.stream.try_send(Reply::Ok {
        message: Some(format!(
            "tracing {what}: one line a packet (time, interface, source, verdict, reason, jails); \
             interrupt to stop"
        )),
        count: None,
    });
    clients.push(subscriber);
}

/// Removes the clients `gone` picks, taking their filters out of the kernel's union.
fn leave(
    tracer: &mut Tracer,
    clients: Vec<Subscriber>,
    gone: impl Fn(&Subscriber) -> bool,
) -> Vec<Subscriber> {
    let (left, stay): (Vec<_>, Vec<_>) = clients.into_iter().partition(|c| gone(c));
    for client in &left {
        if let Err(e) = tracer.remove(client.filter) {
            tracing::error!("trace: cannot end a trace in the XDP program: {e}");
        }
    }
    if !left.is_empty() {
        tracing::info!("trace: {} ended ({} running)", left.len(), stay.len());
    }
    stay
}

/// Sends each verdict to the clients whose filter holds its source.
fn dispatch(
    tracer: &Tracer,
    clients: &mut [Subscriber],
    names: &mut Interfaces,
    verdicts: Vec<Verdict>,
) {
    for verdict in verdicts {
        let mut event = None;
        for client in clients
            .iter_mut()
            .filter(|c| c.filter.is_none_or(|n| n.contains(&verdict.source)))
        {
            let event = event.get_or_insert_with(|| to_event(tracer, names, &verdict));
            send(client, event);
        }
    }
}

fn send(client: &mut Subscriber, event: &TraceEvent) {
    if client.lost > 0 {
        let note = Reply::Ok {
            message: Some(format!(
                "{} verdict(s) lost: the client reads slower than packets come",
                client.lost
            )),
            count: None,
        };
        if client.stream.try_send(note).is_err() {
            client.lost += 1;
            return;
        }
        client.lost = 0;
    }
    match client.stream.try_send(Reply::Trace(event.clone())) {
        Ok(()) | Err(TrySendError::Closed(_)) => {}
        Err(TrySendError::Full(_)) => client.lost += 1,
    }
}

fn to_event(tracer: &Tracer, names: &mut Interfaces, verdict: &Verdict) -> TraceEvent {
    TraceEvent {
        time_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        interface: names.name(verdict.ifindex),
        source: verdict.source.to_string(),
        verdict: if verdict.dropped { "drop" } else { "pass" }.to_string(),
        reason: verdict.reason.to_string(),
        jails: tracer.jail_names(verdict.jails),
    }
}

/// Interface names by index, looked up once each.
#[derive(Default)]
struct Interfaces(HashMap<u32, String>);

impl Interfaces {
    fn name(&mut self, ifindex: u32) -> String {
        self.0
            .entry(ifindex)
            .or_insert_with(|| interface_name(ifindex))
            .clone()
    }
}

/// The name of interface `ifindex` in the daemon's namespace, or `if<N>` when it has none.
fn interface_name(ifindex: u32) -> String {
    let mut buffer = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buffer` holds IF_NAMESIZE bytes, as if_indextoname requires.
    let found = unsafe { libc::if_indextoname(ifindex, buffer.as_mut_ptr()) };
    if found.is_null() {
        return format!("if{ifindex}");
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    unsafe { CStr::from_ptr(buffer.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_a_name_and_unknown_indices_a_number() {
        assert_eq!(interface_name(1), "lo");
        assert_eq!(interface_name(u32::MAX), format!("if{}", u32::MAX));
    }
}
