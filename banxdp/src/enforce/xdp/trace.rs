//! `banxdp trace` on the kernel's side: the switch and filters the XDP program reads, and its
//! aya-log records read back as [`Verdict`]s.
//!
//! The program reads the one-entry `TRACE` array for every IP packet it judges. While it is
//! zero (no trace runs) that load and one branch are all tracing costs. While a trace runs
//! its bits say which families to look at, and a packet whose source lies in the `TRACE_V4` or
//! `TRACE_V6` trie gets one aya-log record (`verdict=1 reason=8 ifindex=3 jails=1
//! source=192.0.2.7`) in the `AYA_LOGS` ring buffer. The tries hold the *union* of the
//! filters of every running trace, each with a count of the traces that asked for it; the
//! caller sends each client only the verdicts its own filter matches.
//!
//! None of these maps is pinned: a new daemon's program starts with tracing off, so a trace
//! never outlives the daemon that serves it. Dropping the [`Tracer`] turns the switch off, so
//! the program a stopped daemon leaves enforcing (pinned) does not trace for nobody; after
//! `kill -9` it may, until the next start replaces it.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
    sync::{Arc, Mutex},
};

use aya::{
    Ebpf,
    maps::{Array, LpmTrie, Map, MapData, MapError, lpm_trie::Key},
};
use aya_log::EbpfLogger;
use banxdp_common::{
    JailSlot, MAP_JAILS, MAP_TRACE, MAP_TRACE_V4, MAP_TRACE_V6, TRACE_FILTERS, TRACE_KEYS,
    TRACE_ON_V4, TRACE_ON_V6, counter,
};
use ipnet::IpNet;

/// XDP's action numbers, as the record carries them.
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

/// Why tracing cannot start or change.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("the XDP object has no map `{0}` (built before `trace` existed?)")]
    MissingMap(&'static str),
    #[error("cannot read the XDP program's log ring buffer")]
    Logger(#[source] aya_log::Error),
    #[error("trace map `{map}`")]
    Map {
        map: &'static str,
        #[source]
        source: MapError,
    },
    #[error("{TRACE_FILTERS} different trace filters run already; `{0}` must wait for one to end")]
    Full(IpNet),
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> TraceError {
    move |source| TraceError::Map { map, source }
}

/// One verdict of the XDP program for a traced source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub source: IpAddr,
    pub ifindex: u32,
    pub dropped: bool,
    /// The counter the packet went to (`drop_v4`, `pass_allowed`, ...).
    pub reason: &'static str,
    /// Mask of the jails whose ban matched the source (0: none).
    pub jails: u64,
}

/// The `log::Log` the ring buffer's records go to: parsed and kept until [`Tracer::drain`].
#[derive(Default)]
struct Sink {
    verdicts: Mutex<Vec<Verdict>>,
}

impl log::Log for Sink {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let message = record.args().to_string();
        if let Some(verdict) = parse_record(&message) {
            self.verdicts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(verdict);
        } else {
            tracing::warn!("xdp trace: unreadable record `{message}`");
        }
    }

    fn flush(&self) {}
}

/// Reads one record's message (see [`TRACE_KEYS`]); `None` when a key is missing or a value
/// does not read.
#[must_use]
pub fn parse_record(message: &str) -> Option<Verdict> {
    let mut values = message
        .split_whitespace()
        .map(|field| field.split_once('='));
    let mut next = |key: &str| match values.next() {
        Some(Some((k, v))) if k == key => Some(v),
        _ => None,
    };
    let [verdict, reason, ifindex, jails, source] = TRACE_KEYS;
    let action: u32 = next(verdict)?.parse().ok()?;
    let reason: usize = next(reason)?.parse().ok()?;
    let ifindex = next(ifindex)?.parse().ok()?;
    let jails = next(jails)?.parse().ok()?;
    let source = next(source)?.parse().ok()?;
    let dropped = match action {
        XDP_DROP => true,
        XDP_PASS => false,
        _ => return None,
    };
    Some(Verdict {
        source,
        ifindex,
        dropped,
        reason: counter::NAMES.get(reason)?,
        jails,
    })
}

/// The trace side of a loaded program: its switch, filters, log reader and jail names.
/// Keep it for as long as the program runs (the ring buffer's reader lives in it).
pub struct Tracer {
    logger: EbpfLogger<Arc<Sink>>,
    sink: Arc<Sink>,
    switch: Array<MapData, u32>,
    v4: LpmTrie<MapData, [u8; 4], u32>,
    v6: LpmTrie<MapData, [u8; 16], u32>,
    jails: Array<MapData, JailSlot>,
    /// The filters in the tries, each with the number of traces that asked for it.
    filters: BTreeMap<IpNet, usize>,
}

impl Tracer {
    /// Takes the trace maps and the log ring buffer out of `ebpf`; `jails` is the program's
    /// jail-name map (opened again here, by id, to name the jails of a verdict).
    pub(super) fn take(ebpf: &mut Ebpf, jails: &MapData) -> Result<Self, TraceError> {
        fn take<T: TryFrom<Map, Error = MapError>>(
            ebpf: &mut Ebpf,
            name: &'static str,
        ) -> Result<T, TraceError> {
            let map = ebpf.take_map(name).ok_or(TraceError::MissingMap(name))?;
            T::try_from(map).map_err(map_err(name))
        }
        let switch = take(ebpf, MAP_TRACE)?;
        let v4 = take(ebpf, MAP_TRACE_V4)?;
        let v6 = take(ebpf, MAP_TRACE_V6)?;
        let id = jails.info().map_err(map_err(MAP_JAILS))?.id();
        let jails = MapData::from_id(id).map_err(map_err(MAP_JAILS))?;
        let jails = Array::try_from(Map::Array(jails)).map_err(map_err(MAP_JAILS))?;
        let sink = Arc::new(Sink::default());
        let logger =
            EbpfLogger::init_with_logger(ebpf, sink.clone()).map_err(TraceError::Logger)?;
        Ok(Self {
            logger,
            sink,
            switch,
            v4,
            v6,
            jails,
            filters: BTreeMap::new(),
        })
    }

    /// Starts tracing the sources in `filter` (`None`: every source), on top of the traces
    /// that run.
    pub fn add(&mut self, filter: Option<IpNet>) -> Result<(), TraceError> {
        let nets = nets(filter);
        // Room first, for every network of the filter: a trace starts whole or not at all.
        for net in &nets {
            let same_family = self
                .filters
                .keys()
                .filter(|n| n.addr().is_ipv4() == net.addr().is_ipv4())
                .count();
            if !self.filters.contains_key(net) && same_family >= TRACE_FILTERS as usize {
                return Err(TraceError::Full(*net));
            }
        }
        for net in nets {
            if let Some(count) = self.filters.get_mut(&net) {
                *count += 1;
            } else {
                self.put(net)?;
                self.filters.insert(net, 1);
            }
        }
        self.write_switch()
    }

    /// Ends one trace of `filter`; the switch goes off with the last trace.
    pub fn remove(&mut self, filter: Option<IpNet>) -> Result<(), TraceError> {
        let mut gone = Vec::new();
        for net in nets(filter) {
            if let Some(count) = self.filters.get_mut(&net) {
                *count -= 1;
                if *count == 0 {
                    self.filters.remove(&net);
                    gone.push(net);
                }
            }
        }
        // Off first, then the filters: the program never reads a half-emptied trie as on.
        self.write_switch()?;
        for net in gone {
            self.delete(net)?;
        }
        Ok(())
    }

    /// The switch as the program reads it (`TRACE_ON_*` bits; 0: no trace runs).
    pub fn switch(&self) -> Result<u32, TraceError> {
        self.switch.get(&0, 0).map_err(map_err(MAP_TRACE))
    }

    /// Reads every record the program wrote since the last call.
    pub fn drain(&mut self) -> Vec<Verdict> {
        self.logger.flush();
        std::mem::take(
            &mut *self
                .sink
                .verdicts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The names of the jails of `mask`, as the program's jail map holds them now.
    #[must_use]
    pub fn jail_names(&self, mask: u64) -> Vec<String> {
        (0..64u32)
            .filter(|bit| mask & (1 << bit) != 0)
            .map(|bit| match self.jails.get(&bit, 0) {
                Ok(slot) if slot.used != 0 => {
                    let len = (slot.name_len as usize).min(slot.name.len());
                    String::from_utf8_lossy(&slot.name[..len]).into_owned()
                }
                _ => format!("slot {bit}"),
            })
            .collect()
    }

    fn write_switch(&mut self) -> Result<(), TraceError> {
        let mut on = 0;
        for net in self.filters.keys() {
            on |= match net {
                IpNet::V4(_) => TRACE_ON_V4,
                IpNet::V6(_) => TRACE_ON_V6,
            };
        }
        self.switch.set(0, on, 0).map_err(map_err(MAP_TRACE))
    }

    fn put(&mut self, net: IpNet) -> Result<(), TraceError> {
        let len = u32::from(net.prefix_len());
        match net {
            IpNet::V4(n) => self
                .v4
                .insert(&Key::new(len, n.addr().octets()), 1, 0)
                .map_err(map_err(MAP_TRACE_V4)),
            IpNet::V6(n) => self
                .v6
                .insert(&Key::new(len, n.addr().octets()), 1, 0)
                .map_err(map_err(MAP_TRACE_V6)),
        }
    }

    fn delete(&mut self, net: IpNet) -> Result<(), TraceError> {
        let len = u32::from(net.prefix_len());
        let result = match net {
            IpNet::V4(n) => self.v4.remove(&Key::new(len, n.addr().octets())),
            IpNet::V6(n) => self.v6.remove(&Key::new(len, n.addr().octets())),
        };
        match result {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(TraceError::Map {
                map: if net.addr().is_ipv4() {
                    MAP_TRACE_V4
                } else {
                    MAP_TRACE_V6
                },
                source,
            }),
        }
    }
}

/// The program outlives its daemon when its link is pinned: it must not go on tracing for
/// no reader.
impl Drop for Tracer {
    fn drop(&mut self) {
        if let Err(e) = self.switch.set(0, 0, 0) {
            tracing::warn!("xdp: cannot turn tracing off: {e}");
        }
    }
}

/// The ring buffer's descriptor: readable when records wait (for `tokio::io::unix::AsyncFd`).
impl AsFd for Tracer {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.logger.as_fd()
    }
}

impl AsRawFd for Tracer {
    fn as_raw_fd(&self) -> RawFd {
        self.logger.as_raw_fd()
    }
}

/// The networks a filter puts in the tries: itself (its host bits cleared), or both
/// families' whole space for `None`.
fn nets(filter: Option<IpNet>) -> Vec<IpNet> {
    match filter {
        Some(net) => vec![net.trunc()],
        None => vec![
            "0.0.0.0/0".parse().expect("valid"),
            "::/0".parse().expect("valid"),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_as_verdicts() {
        let verdict =
            parse_record("verdict=1 reason=8 ifindex=3 jails=5 source=192.0.2.7").unwrap();
        assert_eq!(
            verdict,
            Verdict {
                source: "192.0.2.7".parse().unwrap(),
                ifindex: 3,
                dropped: true,
                reason: "drop_v4",
                jails: 5,
            }
        );
        let verdict =
            parse_record("verdict=2 reason=4 ifindex=7 jails=0 source=2001:db8::1").unwrap();
        assert!(!verdict.dropped);
        assert_eq!(verdict.reason, "pass_allowed");
        assert_eq!(verdict.source, "2001:db8::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn malformed_records_are_refused() {
        for message in [
            "",
            "verdict=1 reason=8 ifindex=3 jails=5",
            "verdict=3 reason=8 ifindex=3 jails=5 source=192.0.2.7",
            "verdict=1 reason=99 ifindex=3 jails=5 source=192.0.2.7",
            "reason=8 verdict=1 ifindex=3 jails=5 source=192.0.2.7",
            "verdict=1 reason=8 ifindex=3 jails=5 source=nowhere",
        ] {
            assert_eq!(parse_record(message), None, "{message}");
        }
    }

    #[test]
    fn no_filter_traces_both_families() {
        assert_eq!(nets(None).len(), 2);
        assert_eq!(
            nets(Some("192.0.2.77/24".parse().unwrap())),
            ["192.0.2.0/24".parse::<IpNet>().unwrap()]
        );
    }
}
