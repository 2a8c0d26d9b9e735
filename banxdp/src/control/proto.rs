//! The control protocol: what a client asks ([`Request`]) and what the daemon answers
//! ([`Reply`]), one JSON object per line (serde), each way.
//!
//! Pure: bytes in, messages out, and back; no I/O, no clock. The server and the client do the
//! reading and writing. A request line is at most [`MAX_REQUEST`] bytes (the server refuses
//! longer ones with an error reply and carries on); replies may be long (`list` of a million
//! bans) and are bounded only by [`MAX_REPLY`].
//!
//! Requests are strict (an unknown command or field is an error, so that an option a daemon
//! does not know is never silently ignored); replies are lenient (a newer daemon may add
//! fields that an older client skips).

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The longest request line, newline excluded.
pub const MAX_REQUEST: usize = 64 * 1024;
/// The longest reply line a client reads, newline excluded.
pub const MAX_REPLY: usize = 1 << 30;

/// What a client asks the daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Is the daemon there? Answered with [`Reply::Pong`]. (An empty struct rather than a
    /// unit variant, so that unknown fields are refused here too.)
    Ping {},
    /// Every jail (`jail: None`) or one; answered with [`Reply::Status`].
    Status {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jail: Option<String>,
    },
    /// Ban `target` in `jail` (the daemon's choice when `None`) for `duration` seconds (the
    /// jail's bantime when `None`; negative: for ever, as fail2ban's `bantime = -1`).
    Ban {
        #[serde(with = "target")]
        target: IpNet,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jail: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration: Option<i64>,
    },
    /// Lift the ban of `target` in `jail` (every jail when `None`), or every ban (`all`).
    Unban {
        #[serde(default, with = "opt_target", skip_serializing_if = "Option::is_none")]
        target: Option<IpNet>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jail: Option<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        all: bool,
    },
    /// The active bans, of one jail or all; answered with [`Reply::Bans`].
    List {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jail: Option<String>,
    },
    /// Read the configuration again (every jail, or one), keeping the active bans.
    Reload {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jail: Option<String>,
    },
    /// Stop the daemon; `detach` also removes the XDP program and every pin.
    Stop {
        #[serde(default, skip_serializing_if = "is_false")]
        detach: bool,
    },
    /// The XDP program's counters; answered with [`Reply::Stats`].
    Stats {},
    /// Stream the XDP program's verdicts (for sources in `target`, or all) as
    /// [`Reply::Trace`] lines until the client hangs up.
    Trace {
        #[serde(default, with = "opt_target", skip_serializing_if = "Option::is_none")]
        target: Option<IpNet>,
    },
}

/// What the daemon answers. Every request gets one reply, except `trace`, which gets a
/// [`Reply::Ok`] and then [`Reply::Trace`] lines until the client hangs up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Done; `message` says what, for people (`banned 192.0.2.7 in sshd for 10m`).
    Ok {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// How many bans it placed (`ban`: 1, or 0 when the jail held the target already) or
        /// lifted (`unban`); absent for other requests.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
    },
    Pong,
    Status(StatusReply),
    Bans {
        bans: Vec<BanInfo>,
    },
    Stats {
        interfaces: Vec<InterfaceStats>,
    },
    Trace(TraceEvent),
    /// The request failed or was refused; the connection stays usable (except after a refusal
    /// of the peer itself).
    Error {
        message: String,
    },
}

/// The answer to `status`: every jail asked for, and how bans are enforced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusReply {
    /// The jails in the configuration's order: all of them, or the one asked for.
    pub jails: Vec<JailStatus>,
    /// The enforcing backend (`xdp`, `nftables`, ...).
    pub backend: String,
    /// Where and how it enforces, and why this backend (`native on eth0, generic on lo`).
    pub backend_detail: String,
}

/// One jail's counts, as fail2ban-client's `status JAIL` shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JailStatus {
    pub name: String,
    pub currently_failed: u64,
    pub total_failed: u64,
    /// The log files read (empty for a journal jail).
    pub files: Vec<String>,
    /// A journal jail's matches (`_SYSTEMD_UNIT=sshd.service + _COMM=sshd`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_matches: Option<String>,
    pub currently_banned: u64,
    pub total_banned: u64,
    /// The banned addresses and networks (`192.0.2.7`, `2001:db8::/64`).
    pub banned: Vec<String>,
}

/// One active ban, as `list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanInfo {
    #[serde(with = "target")]
    pub target: IpNet,
    pub jails: Vec<String>,
    /// When it ends, in seconds since the Unix epoch; `None`: never.
    #[serde(default)]
    pub expiry: Option<i64>,
    /// Packets dropped because of it, where the backend counts them.
    #[serde(default)]
    pub drops: Option<u64>,
    /// Packets it would have dropped for a jail in shadow mode (`shadow = true`), where the
    /// backend counts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<u64>,
}

/// One interface's XDP counters, by name (`seen`, `pass_clean`, `drop_v4`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InterfaceStats {
    pub interface: String,
    pub packets: BTreeMap<String, u64>,
}

/// One verdict of the XDP program, as `trace` streams it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TraceEvent {
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub interface: String,
    pub source: String,
    /// `pass` or `drop`.
    pub verdict: String,
    /// The counter it went to (`drop_v4`, `pass_allowed`, ...).
    pub reason: String,
    /// The jails that ban the source, if any.
    pub jails: Vec<String>,
}

impl From<&crate::enforce::xdp::InterfaceCounters> for InterfaceStats {
    fn from(counters: &crate::enforce::xdp::InterfaceCounters) -> Self {
        Self {
            interface: counters.interface.clone(),
            packets: banxdp_common::counter::NAMES
                .iter()
                .zip(counters.packets)
                .map(|(name, count)| ((*name).to_string(), count))
                .collect(),
        }
    }
}

/// A line that is not a message.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("request of {len} bytes is longer than the {max} allowed")]
    TooLong { len: usize, max: usize },
    #[error("empty request")]
    Empty,
    #[error("malformed {what}: {message}")]
    Malformed { what: &'static str, message: String },
}

/// One message as a line: JSON and a newline.
#[must_use]
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut line = serde_json::to_vec(message).expect("control messages always serialize");
    line.push(b'\n');
    line
}

/// Reads one request line (with or without its newline).
pub fn decode_request(line: &[u8]) -> Result<Request, ProtoError> {
    let line = trim_newline(line);
    if line.len() > MAX_REQUEST {
        return Err(ProtoError::TooLong {
            len: line.len(),
            max: MAX_REQUEST,
        });
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(ProtoError::Empty);
    }
    serde_json::from_slice(line).map_err(|error| ProtoError::Malformed {
        what: "request",
        message: error.to_string(),
    })
}

/// Reads one reply line (with or without its newline).
pub fn decode_reply(line: &[u8]) -> Result<Reply, ProtoError> {
    serde_json::from_slice(trim_newline(line)).map_err(|error| ProtoError::Malformed {
        what: "reply",
        message: error.to_string(),
    })
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's signature")]
fn is_false(value: &bool) -> bool {
    !value
}

/// A target as text: an address alone (`192.0.2.7`) when it is one host, else CIDR.
#[must_use]
pub fn target_text(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

mod target {
    //! An [`IpNet`] as the text `enforce::parse_target` reads.
    use ipnet::IpNet;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(net: &IpNet, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::target_text(net))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        crate::enforce::parse_target(&text).map_err(|_| {
            D::Error::custom(format!(
                "`{text}` is not an address or a network (192.0.2.7, 2001:db8::/64)"
            ))
        })
    }
}

mod opt_target {
    //! An optional [`IpNet`], as [`super::target`].
    use ipnet::IpNet;
    use serde::{Deserialize, Deserializer, Serializer};

    #[expect(clippy::ref_option, reason = "serde's signature")]
    pub fn serialize<S: Serializer>(net: &Option<IpNet>, s: S) -> Result<S::Ok, S::Error> {
        match net {
            Some(net) => super::target::serialize(net, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpNet>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super::target")] IpNet);
        Ok(Option::<Wrap>::deserialize(d)?.map(|Wrap(net)| net))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::parse_target;

    fn net(text: &str) -> IpNet {
        parse_target(text).unwrap()
    }

    fn requests() -> Vec<Request> {
        vec![
            Request::Ping {},
            Request::Status { jail: None },
            Request::Status {
                jail: Some("sshd".into()),
            },
            Request::Ban {
                target: net("192.0.2.7"),
                jail: Some("sshd".into()),
                duration: Some(600),
            },
            Request::Ban {
                target: net("2001:db8::/64"),
                jail: None,
                duration: Some(-1),
            },
            Request::Unban {
                target: Some(net("192.0.2.0/24")),
                jail: None,
                all: false,
            },
            Request::Unban {
                target: None,
                jail: None,
                all: true,
            },
            Request::List {
                jail: Some("nginx-http-auth".into()),
            },
            Request::Reload { jail: None },
            Request::Stop { detach: true },
            Request::Stats {},
            Request::Trace {
                target: Some(net("198.51.100.1")),
            },
        ]
    }

    #[test]
    fn requests_round_trip_as_one_line() {
        for request in requests() {
            let line = encode(&request);
            assert_eq!(memchr::memchr_iter(b'\n', &line).count(), 1);
            assert!(line.ends_with(b"\n"));
            assert_eq!(decode_request(&line), Ok(request.clone()), "{request:?}");
        }
    }

    #[test]
    fn requests_are_plain_json_that_people_can_type() {
        let line = encode(&Request::Ban {
            target: net("192.0.2.7"),
            jail: Some("sshd".into()),
            duration: None,
        });
        assert_eq!(
            line,
            b"{\"command\":\"ban\",\"target\":\"192.0.2.7\",\"jail\":\"sshd\"}\n"
        );
        assert_eq!(encode(&Request::Ping {}), b"{\"command\":\"ping\"}\n");
        assert_eq!(
            decode_request(b"{\"command\":\"unban\",\"all\":true}\r\n"),
            Ok(Request::Unban {
                target: None,
                jail: None,
                all: true
            })
        );
    }

    #[test]
    fn replies_round_trip() {
        let replies = [
            Reply::Ok {
                message: None,
                count: None,
            },
            Reply::Ok {
                message: Some("banned 192.0.2.7".into()),
                count: None,
            },
            Reply::Pong,
            Reply::Status(StatusReply {
                jails: vec![JailStatus {
                    name: "sshd".into(),
                    currently_failed: 2,
                    total_failed: 9,
                    files: vec!["/var/log/auth.log".into()],
                    journal_matches: None,
                    currently_banned: 1,
                    total_banned: 3,
                    banned: vec!["192.0.2.7".into()],
                }],
                backend: "xdp".into(),
                backend_detail: "native on eth0".into(),
            }),
            Reply::Bans {
                bans: vec![BanInfo {
                    target: net("2001:db8::/48"),
                    jails: vec!["sshd".into(), "recidive".into()],
                    expiry: None,
                    drops: Some(12),
                    shadow: Some(0),
                }],
            },
            Reply::Stats {
                interfaces: vec![InterfaceStats {
                    interface: "eth0".into(),
                    packets: [("seen".to_string(), 5)].into(),
                }],
            },
            Reply::Trace(TraceEvent {
                time_ms: 1_796_472_000_250,
                interface: "eth0".into(),
                source: "192.0.2.7".into(),
                verdict: "drop".into(),
                reason: "drop_v4".into(),
                jails: vec!["sshd".into()],
            }),
            Reply::Error {
                message: "no jail `x`".into(),
            },
        ];
        for reply in replies {
            assert_eq!(decode_reply(&encode(&reply)), Ok(reply.clone()));
        }
    }

    #[test]
    fn malformed_requests_say_what_is_wrong() {
        for (line, expected) in [
            (&b"{\"command\":\"ping\""[..], "EOF while parsing"),
            (b"ping", "expected value"),
            (b"{\"command\":\"explode\"}", "unknown variant `explode`"),
            (b"{\"jail\":\"sshd\"}", "missing field `command`"),
            (b"{\"command\":\"ban\"}", "missing field `target`"),
            (
                b"{\"command\":\"ban\",\"target\":\"example.org\"}",
                "`example.org` is not an address or a network",
            ),
            (
                b"{\"command\":\"ban\",\"target\":\"192.0.2.7\",\"duration\":\"1h\"}",
                "invalid type: string \"1h\", expected i64",
            ),
            (b"\xff\xfe", "expected value"),
        ] {
            let error = decode_request(line).unwrap_err();
            assert!(
                matches!(
                    error,
                    ProtoError::Malformed {
                        what: "request",
                        ..
                    }
                ),
                "{error:?}"
            );
            assert!(error.to_string().contains(expected), "{error}");
        }
        assert_eq!(decode_request(b"\n"), Err(ProtoError::Empty));
        assert_eq!(decode_request(b"  \t\n"), Err(ProtoError::Empty));
    }

    #[test]
    fn oversized_requests_are_refused_before_parsing() {
        let mut line = b"{\"command\":\"status\",\"jail\":\"".to_vec();
        line.resize(MAX_REQUEST - 2, b'a');
        line.extend_from_slice(b"\"}");
        assert_eq!(line.len(), MAX_REQUEST);
        assert!(decode_request(&line).is_ok());
        line.insert(30, b'a');
        assert_eq!(
            decode_request(&line),
            Err(ProtoError::TooLong {
                len: MAX_REQUEST + 1,
                max: MAX_REQUEST
            })
        );
    }

    #[test]
    fn unknown_fields_are_refused_in_requests_and_skipped_in_replies() {
        let error = decode_request(b"{\"command\":\"stop\",\"detatch\":true}").unwrap_err();
        assert!(
            error.to_string().contains("unknown field `detatch`"),
            "{error}"
        );
        let error = decode_request(b"{\"command\":\"ping\",\"x\":1}").unwrap_err();
        assert!(error.to_string().contains("unknown field `x`"), "{error}");
        assert_eq!(
            decode_reply(b"{\"reply\":\"ok\",\"message\":\"done\",\"took_ms\":3}"),
            Ok(Reply::Ok {
                message: Some("done".into()),
                count: None,
            })
        );
        assert_eq!(
            decode_reply(b"{\"reply\":\"bans\",\"bans\":[{\"target\":\"192.0.2.7\",\"jails\":[],\"expiry\":null,\"drops\":null,\"shadow\":0}]}"),
            Ok(Reply::Bans {
                bans: vec![BanInfo {
                    target: net("192.0.2.7"),
                    jails: vec![],
                    expiry: None,
                    drops: None,
                    shadow: Some(0)
                }]
            })
        );
    }

    #[test]
    fn targets_print_hosts_without_their_prefix() {
        assert_eq!(target_text(&net("192.0.2.7")), "192.0.2.7");
        assert_eq!(target_text(&net("192.0.2.7/32")), "192.0.2.7");
        assert_eq!(target_text(&net("2001:db8::1")), "2001:db8::1");
        assert_eq!(target_text(&net("192.0.2.0/24")), "192.0.2.0/24");
    }
}
