//! Failures across the lines of one connection, as fail2ban tracks them with `<F-MLFID>`:
//! lines sharing a failure id (say, sshd's `host sshd[pid]: `) merge their fields, so the
//! address seen on one line is the address of a failure found on a later one;
//! `<F-NOFAIL>` lines are remembered without counting; `<F-MLFGAINED>` (an accepted login)
//! cancels what is pending; `<F-MLFFORGET>` (a disconnect) ends the connection. The number of
//! lines that made up a failure is its `attempts`.
//!
//! This is fail2ban's `Filter._mergeFailure` and the failure-id part of `findFailure`, for
//! single-line buffers. Pure: the state is this value; lines go in, failures come out.

use std::collections::{BTreeSet, HashMap};

use indexmap::IndexMap;

use super::{Filter, Host, matcher::host_of};

/// What is known of one connection (or of one failure, without an id).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct State {
    groups: IndexMap<String, String>,
    users: Option<BTreeSet<String>>,
    matches: Vec<String>,
    nofail_matches: Vec<String>,
    pending: bool,
}

impl State {
    fn truthy(&self, key: &str) -> bool {
        self.groups.get(key).is_some_and(|v| !v.is_empty())
    }

    /// Removes `key`, saying whether its value was non-empty.
    fn pop_truthy(&mut self, key: &str) -> bool {
        self.groups.shift_remove(key).is_some_and(|v| !v.is_empty())
    }

    /// Adds the user to the connection's set; the set, when the pattern has a user.
    fn update_users(&mut self, user: Option<&String>) -> usize {
        if let Some(user) = user.filter(|u| !u.is_empty()) {
            self.users
                .get_or_insert_with(BTreeSet::new)
                .insert(user.clone());
        }
        self.users.as_ref().map_or(0, BTreeSet::len)
    }
}

/// What a line gave: its failures, and whether an ignoreregex cancelled a match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    pub failures: Vec<Tracked>,
    pub ignored: bool,
}

/// A failure after merging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    pub regex: usize,
    /// `None` while the connection has no address yet (pending): not a failure.
    pub host: Option<Host>,
    pub raw: Option<String>,
    pub fields: Vec<(String, String)>,
    /// Lines that made up the failure.
    pub attempts: usize,
    /// Every user the connection tried, sorted.
    pub users: Vec<String>,
    /// Known but not a failure (`<F-NOFAIL>`, or cancelled by `<F-MLFGAINED>`).
    pub nofail: bool,
}

const NOFAIL: u8 = 1;
const FORGET: u8 = 2;
const CACHED_NOFAIL: u8 = 4;
const GAINED: u8 = 8;

/// Connections by failure id.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    connections: HashMap<String, State>,
}

impl Tracker {
    /// Merges one match into its connection (fail2ban's `_mergeFailure`); returns the state
    /// the failure is judged on. `cached` says whether it stays in the cache, to be updated.
    fn merge(&mut self, mlfid: &str, mut fail: State, line: &str) -> (State, bool) {
        let mut flags = 0;
        if fail.truthy("mlfgained") {
            flags |= GAINED | NOFAIL;
            if !fail.truthy("nofail") {
                let gained = fail.groups["mlfgained"].clone();
                fail.groups.insert("nofail".into(), gained);
            }
        } else if fail.truthy("nofail") {
            flags |= NOFAIL;
        }
        if fail.pop_truthy("mlfforget") {
            flags |= FORGET;
        }
        let user = fail.groups.get("user").cloned();
        let (mut state, stays, users) = if let Some(mut cached) = self.connections.remove(mlfid) {
            let users = cached.update_users(user.as_ref());
            if cached.pop_truthy("nofail") {
                flags |= CACHED_NOFAIL;
            }
            if cached.pop_truthy("mlfgained") {
                flags |= CACHED_NOFAIL;
            }
            if flags & GAINED != 0 {
                cached.pending = false;
            }
            if flags & CACHED_NOFAIL == 0 && !cached.pending {
                cached.matches.clear();
            }
            for (k, v) in fail.groups {
                cached.groups.insert(k, v);
            }
            (cached, flags & FORGET == 0, users)
        } else if flags & FORGET == 0 {
            let users = fail.update_users(user.as_ref());
            (fail, true, users)
        } else {
            (fail, false, 0)
        };
        // Pending failures, or a second user on the connection, make it a failure after all.
        if std::mem::take(&mut state.pending) || users > 1 {
            state.groups.shift_remove("nofail");
            state.groups.shift_remove("mlfgained");
            flags &= !(GAINED | NOFAIL);
        }
        if flags & NOFAIL == 0 {
            let mut all = std::mem::take(&mut state.nofail_matches);
            all.append(&mut state.matches);
            if flags & GAINED == 0 {
                all.push(line.to_string());
            }
            state.matches = all;
        } else if flags & (NOFAIL | FORGET) == NOFAIL {
            state.nofail_matches.push(line.to_string());
        }
        (state, stays)
    }

    /// The failures of one line. With `check_all` every matching failregex counts (as
    /// fail2ban's tests run filters); otherwise the first decides, and a pending or no-fail
    /// line ends the search, as in the daemon.
    pub fn check(&mut self, filter: &Filter, line: &str, check_all: bool) -> Checked {
        let Some(all) = filter.all_matches(line, !check_all) else {
            return Checked::default();
        };
        let mut out = Vec::new();
        for (regex, fields) in all.found {
            let groups: IndexMap<String, String> = fields.into_iter().collect();
            let mlfid = groups.get("mlfid").cloned();
            let fail = State {
                groups,
                ..State::default()
            };
            let mut state = if let Some(id) = &mlfid {
                let (state, stays) = self.merge(id, fail, line);
                if stays {
                    self.connections.insert(id.clone(), state.clone());
                }
                state
            } else {
                let mut state = fail;
                state.matches.push(line.to_string());
                state
            };
            let nofail = state.truthy("nofail");
            let host = host_of(|k| state.groups.get(k).map(String::as_str));
            if host.is_none() {
                // No address yet: the connection's failure is pending until one appears.
                state.pending = true;
                if let Some(id) = &mlfid {
                    if let Some(cached) = self.connections.get_mut(id) {
                        cached.pending = true;
                    }
                }
                if !check_all {
                    break;
                }
            }
            out.push(Tracked {
                regex,
                raw: host.as_ref().map(|(_, raw)| raw.clone()),
                host: host.map(|(h, _)| h),
                fields: state.groups.into_iter().collect(),
                attempts: state.matches.len(),
                users: state.users.iter().flatten().cloned().collect(),
                nofail,
            });
            if !check_all && (nofail || out.last().is_some_and(|t| t.host.is_some())) {
                break;
            }
        }
        Checked {
            failures: out,
            ignored: all.ignored > 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::FilterSpec;

    fn sshd_like() -> Filter {
        Filter::new(&FilterSpec {
            prefregex: Some(r"^<F-MLFID>\S+ sshd\[\d+\]: </F-MLFID><F-CONTENT>.+</F-CONTENT>$".into()),
            failregex: vec![
                r"^<F-NOFAIL>Connection from</F-NOFAIL> <HOST>".into(),
                r"^Failed password for <F-USER>\S+</F-USER>$".into(),
                r"^<F-MLFFORGET><F-MLFGAINED>Accepted password</F-MLFGAINED></F-MLFFORGET> for <F-USER>\S+</F-USER>$".into(),
            ],
            ignoreregex: Vec::new(),
            usedns: "no".into(),
        })
        .unwrap()
    }

    #[test]
    fn an_address_from_an_earlier_line_makes_a_later_one_a_failure() {
        let filter = sshd_like();
        let mut tracker = Tracker::default();
        let first = tracker
            .check(&filter, "h sshd[7]: Connection from 192.0.2.9", true)
            .failures;
        assert!(first[0].nofail, "a connection is no failure");
        let second = tracker
            .check(&filter, "h sshd[7]: Failed password for root", true)
            .failures;
        assert_eq!(second[0].raw.as_deref(), Some("192.0.2.9"));
        assert!(!second[0].nofail);
        // The failure carries the lines since the last one: the connection and itself.
        assert_eq!(second[0].attempts, 2);
        let third = tracker
            .check(&filter, "h sshd[7]: Failed password for root", true)
            .failures;
        assert_eq!(third[0].attempts, 1, "earlier lines were reported already");
        assert_eq!(third[0].raw.as_deref(), Some("192.0.2.9"));
        // Another connection knows nothing of this address.
        let other = tracker
            .check(&filter, "h sshd[8]: Failed password for root", true)
            .failures;
        assert_eq!(other[0].host, None);
    }

    #[test]
    fn an_accepted_login_is_no_failure() {
        let filter = sshd_like();
        let mut tracker = Tracker::default();
        tracker.check(&filter, "h sshd[7]: Connection from 192.0.2.9", true);
        let accepted = tracker
            .check(&filter, "h sshd[7]: Accepted password for alice", true)
            .failures;
        assert!(accepted[0].nofail);
        // The connection is forgotten: a new one on the same id starts afresh.
        let later = tracker
            .check(&filter, "h sshd[7]: Failed password for alice", true)
            .failures;
        assert_eq!(later[0].host, None);
    }
}
