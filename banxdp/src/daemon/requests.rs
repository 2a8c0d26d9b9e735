//! The daemon's answers to the control socket's requests. Each runs in the event loop, on
//! the loop's own state, so a reply reflects every line read before it.

use ipnet::IpNet;

use super::{End, State, unix_now};
use crate::{
    control::{
        proto::{self, BanInfo, InterfaceStats, JailStatus, Reply, Request, StatusReply},
        server::Call,
    },
    store::BanRecord,
};

/// An address as written (`192.0.2.7`), a network with its prefix (`192.0.2.0/24`).
pub fn target_text(target: IpNet) -> String {
    proto::target_text(&target)
}

fn error(message: impl Into<String>) -> Reply {
    Reply::Error {
        message: message.into(),
    }
}

fn ok(message: impl Into<String>) -> Reply {
    Reply::Ok {
        message: Some(message.into()),
        count: None,
    }
}

/// An acknowledgement of bans placed or lifted, with their number.
fn counted(message: impl Into<String>, count: usize) -> Reply {
    Reply::Ok {
        message: Some(message.into()),
        count: Some(count as u64),
    }
}

impl State {
    /// Answers one call; `Some` when it asks the daemon to stop.
    pub(super) fn call(&mut self, call: Call) -> Option<End> {
        let Call { request, reply, .. } = call;
        if let Request::Trace { target } = request {
            // A stream, served by the tracing task until the client hangs up.
            self.traces.start(target, reply);
            return None;
        }
        let (answer, end) = match request {
            Request::Ping {} => (Reply::Pong, None),
            Request::Status { jail } => (self.status(jail.as_deref()), None),
            Request::Ban {
                target,
                jail,
                duration,
            } => (self.manual_ban(target, jail.as_deref(), duration), None),
            Request::Unban { target, jail, all } => {
                (self.manual_unban(target, jail.as_deref(), all), None)
            }
            Request::List { jail } => (self.list(jail.as_deref()), None),
            Request::Reload { jail } => (self.reload(jail.as_deref()), None),
            Request::Stop { detach } => (ok("stopping"), Some(End::Stop { detach })),
            Request::Stats {} => (self.stats(), None),
            Request::Trace { .. } => unreachable!("answered above"),
        };
        reply.answer(answer);
        end
    }

    fn status(&self, jail: Option<&str>) -> Reply {
        let names: Vec<String> = match jail {
            Some(name) if self.jails.get(name).is_none() => {
                return error(format!("no jail `{name}`"));
            }
            Some(name) => vec![name.to_string()],
            None => self.jails.names(),
        };
        let files = self.follower.files();
        let jails = names
            .iter()
            .map(|name| {
                let run = self.jails.get(name).expect("listed");
                let banned = self.bans.of_jail(name);
                JailStatus {
                    name: name.clone(),
                    currently_failed: run.currently_failed(),
                    total_failed: run.total_failed(),
                    files: run.files(&files),
                    journal_matches: None,
                    currently_banned: banned.len() as u64,
                    total_banned: self.bans.total(name),
                    banned: banned.into_iter().map(target_text).collect(),
                }
            })
            .collect();
        Reply::Status(StatusReply {
            jails,
            backend: self.bans.enforcer().name().to_string(),
            backend_detail: match &self.why_not_xdp {
                Some(why) => format!("{} (not XDP: {why})", self.bans.enforcer().describe()),
                None => self.bans.enforcer().describe(),
            },
        })
    }

    fn manual_ban(&mut self, target: IpNet, jail: Option<&str>, duration: Option<i64>) -> Reply {
        let Some(name) = jail
            .map(str::to_string)
            .or_else(|| self.jails.names().first().cloned())
        else {
            return error("no jail to ban in: none is running");
        };
        let now = unix_now();
        let Some(decision) = self.jails.manual_ban(&name, target, duration, now) else {
            return error(format!("no jail `{name}`"));
        };
        let how_long = decision
            .duration
            .map_or_else(|| "for ever".to_string(), |d| format!("for {d} s"));
        match self.place(&name, decision) {
            Ok(true) => {
                // The CLI's acknowledgement promises the ban survives a crash: wait for the store.
                if let Some(Err(e)) = self.bans.store().map(crate::store::Writer::sync) {
                    return error(format!("banned, but the store did not confirm it: {e}"));
                }
                counted(
                    format!("banned {} in {name} {how_long}", target_text(target)),
                    1,
                )
            }
            Ok(false) => counted(
                format!("{} is already banned in {name}", target_text(target)),
                0,
            ),
            Err(e) => error(format!("{:#}", anyhow::Error::from(e))),
        }
    }

    /// Enforces a decision, logs it as fail2ban does (`[sshd] Ban 192.0.2.7`) and tells the
    /// jail; `false` when the jail held it already.
    pub(super) fn place(
        &mut self,
        jail: &str,
        decision: crate::jail::Decision,
    ) -> Result<bool, crate::enforce::Error> {
        let record = BanRecord {
            jail: jail.to_string(),
            target: decision.target,
            start: decision.start,
            duration: decision.duration,
            ban_count: decision.ban_count,
            failures: decision.failures,
            matches: decision.matches,
        };
        let target = record.target;
        let info = super::notify::ban_info(&record, false);
        let placed = self.bans.place(record)?;
        if placed {
            tracing::info!(target: crate::logging::ACTIONS, "[{jail}] Ban {}", target_text(target));
            self.notifier.ban(jail, info);
        }
        Ok(placed)
    }

    fn manual_unban(&mut self, target: Option<IpNet>, jail: Option<&str>, all: bool) -> Reply {
        let now = unix_now();
        let chosen: Vec<(String, IpNet)> = self
            .bans
            .all()
            .into_iter()
            .filter(|(j, t)| jail.is_none_or(|want| **j == *want) && (all || target == Some(*t)))
            .map(|(j, t)| (j.to_string(), t))
            .collect();
        if !all && target.is_none() {
            return error("name an address or network to unban, or --all");
        }
        if chosen.is_empty() {
            return match target {
                Some(t) => error(format!("{} is not banned", target_text(t))),
                None => counted("no ban to lift", 0),
            };
        }
        for (name, t) in &chosen {
            match self.bans.lift(name, *t, now) {
                Ok(_) => {
                    self.jails.unbanned(name, *t);
                    let info = crate::action::BanInfo::new(*t, std::time::SystemTime::now());
                    self.notifier.unban(name, info);
                    tracing::info!(target: crate::logging::ACTIONS, "[{name}] Unban {}", target_text(*t));
                }
                Err(e) => return error(format!("{:#}", anyhow::Error::from(e))),
            }
        }
        if let Some(Err(e)) = self.bans.store().map(crate::store::Writer::sync) {
            return error(format!("unbanned, but the store did not confirm it: {e}"));
        }
        counted(format!("lifted {} ban(s)", chosen.len()), chosen.len())
    }

    fn list(&self, jail: Option<&str>) -> Reply {
        let active = match self.bans.active() {
            Ok(active) => active,
            Err(e) => return error(format!("{:#}", anyhow::Error::from(e))),
        };
        let bans = active
            .into_iter()
            .filter(|b| jail.is_none_or(|j| b.jails.iter().any(|x| x == j)))
            .map(|b| {
                let expiry = b
                    .jails
                    .iter()
                    .filter_map(|j| self.bans.held(j, b.target))
                    .map(|h| h.end)
                    .max()
                    .flatten();
                BanInfo {
                    target: b.target,
                    jails: b.jails,
                    expiry,
                    drops: b.drops,
                    shadow: b.shadow_hits,
                }
            })
            .collect();
        Reply::Bans { bans }
    }

    fn stats(&self) -> Reply {
        match self.bans.enforcer().counters() {
            Ok(counters) => Reply::Stats {
                interfaces: counters.iter().map(InterfaceStats::from).collect(),
            },
            Err(e) => error(format!("{:#}", anyhow::Error::from(e))),
        }
    }

    fn restart_follower(&mut self) -> anyhow::Result<()> {
        if let Some(store) = self.bans.store() {
            store.sync()?;
        }
        let store = crate::store::Store::open(&self.settings.daemon.database)?;
        let positions = self.jails.positions(&store)?;
        self.follower = super::Follower::new(self.jails.follow_specs(), positions)?;
        Ok(())
    }

    /// Reads the configuration again and replaces the jails (all, or `only`), keeping every
    /// active ban of a jail that still exists; systemd sees the unit reloading meanwhile.
    pub(super) fn reload(&mut self, only: Option<&str>) -> Reply {
        super::systemd::reloading();
        let reply = self.reread_jails(only);
        super::systemd::ready(&format!("enforcing {} ban(s)", self.bans.count()));
        reply
    }

    fn reread_jails(&mut self, only: Option<&str>) -> Reply {
        let Some((configs, actions)) = (self.reread)() else {
            return error(
                "the configuration cannot be read; nothing changed (see the daemon's log)",
            );
        };
        let specs = self.jails.follow_specs();
        let summary = match self.jails.reload(&configs, only, &mut self.bans) {
            Ok(summary) => summary,
            Err(message) => return error(message),
        };
        self.journals.reconcile(self.jails.journals());
        // With `backend = actions` the actions are the backend, built once at start.
        if self.settings.enforce.backend != crate::config::settings::Backend::Actions {
            self.notifier
                .replace(super::running_only(actions, &self.jails.names()), only);
        }
        if self.jails.follow_specs() != specs {
            // New files to follow: a new follower, resuming where the store says every file
            // was left (written out first).
            if let Err(e) = self.restart_follower() {
                return error(format!("log sources: {e:#}"));
            }
        }
        tracing::info!("reloaded: {summary}");
        ok(summary)
    }
}
