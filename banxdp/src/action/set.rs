//! One action.d action as a jail runs it ([`Action`]; [`super::ActionSet`] holds a jail's):
//! which operation runs when, for which address family, with which tags, following fail2ban
//! 1.0.2's `CommandAction`.
//!
//! - `actionstart` runs at start, or, when the action starts on demand (`actionstart_on_demand`,
//!   implied by `?family=` variants), before the first ban of each family.
//! - `actionban` of a restored ban is skipped when the action says `norestored`; so is its
//!   `actionunban`. `actionunban` runs only for a family that holds bans.
//! - A failed command is retried once; before the retry, `actioncheck` (when there is one)
//!   tests the action's environment and, when that fails, `actionrepair` or a stop and start
//!   restores it (an unban repairs only with `actionrepair_on_unban`).
//! - `actionflush` lifts every ban at once at stop; an action without one gets an
//!   `actionunban` per ban instead; then `actionstop` runs for every started family.

use std::{collections::HashMap, time::Duration};

use indexmap::IndexMap;

use super::{
    ActionError, BanInfo, Context,
    run::{DEFAULT_TIMEOUT, RunError},
    tags::{self, Family, Script},
};
use crate::config::fail2ban::{JailAction, readers::as_bool};

/// `started` bits: the family's `actionstart` ran; the family holds bans.
const STARTED: u8 = 1;
const HOLDS_BANS: u8 = 2;

/// The first `max` bytes of `text` (at a character boundary), marked when cut.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// One action.d action of one jail, with what has run so far.
#[derive(Debug)]
pub struct Action {
    jail: String,
    name: String,
    props: IndexMap<String, String>,
    timeout: Duration,
    on_demand: bool,
    norestored: bool,
    repair_on_unban: bool,
    /// The families `actionstart` runs for when the action does not start on demand.
    families: Vec<Family>,
    resolved: HashMap<Family, IndexMap<String, String>>,
    started: HashMap<Family, u8>,
    /// The last successful command per operation and family (a command identical to one
    /// another family already ran is not run again, as in fail2ban).
    executed: HashMap<&'static str, HashMap<Family, String>>,
}

impl Action {
    /// An action from its properties: the `[Definition]` operations, `[Init]` parameters and
    /// the jail's options, with their static tags as the configuration reader left them.
    pub fn new(
        jail: &str,
        name: &str,
        props: IndexMap<String, String>,
    ) -> Result<Self, ActionError> {
        let conditional = props.keys().any(|k| {
            k.split_once("?family=").is_some_and(|(base, _)| {
                !base.is_empty() && base.chars().all(|c| c.is_alphanumeric() || c == '_')
            })
        });
        let flag = |key: &str| props.get(key).map(|v| as_bool(v));
        let timeout = match props.get("timeout").map(|t| t.trim()) {
            None | Some("") => DEFAULT_TIMEOUT,
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| ActionError::BadTimeout {
                    jail: jail.into(),
                    action: name.into(),
                    value: text.into(),
                })?,
        };
        let mut action = Self {
            jail: jail.into(),
            name: name.into(),
            on_demand: flag("actionstart_on_demand").unwrap_or(conditional),
            norestored: flag("norestored").unwrap_or(false),
            repair_on_unban: flag("actionrepair_on_unban").unwrap_or(false),
            families: if conditional {
                vec![Family::Inet4, Family::Inet6]
            } else {
                vec![Family::Any]
            },
            props,
            timeout,
            resolved: HashMap::new(),
            started: HashMap::new(),
            executed: HashMap::new(),
        };
        // Self references are configuration errors: report them before the first ban.
        for family in action.families.clone() {
            action.resolved(family)?;
        }
        Ok(action)
    }

    /// The action of a jail as the configuration reader gives it; `None` for a Python action.
    #[must_use]
    pub fn from_jail_action(jail: &str, action: &JailAction) -> Option<Result<Self, ActionError>> {
        match action {
            JailAction::Command { name, options, .. } => {
                let props = options.iter().map(|(k, v)| (k.clone(), v.text())).collect();
                Some(Self::new(jail, name, props))
            }
            JailAction::Python { .. } => None,
        }
    }

    /// The action's name (`actname`).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the action was configured as (its name, properties and options), apart from
    /// what has run: equal for two reads of an unchanged configuration.
    #[must_use]
    pub fn definition(&self) -> String {
        format!(
            "{}|{:?}|{:?}|{}|{}|{}",
            self.name,
            self.props,
            self.timeout,
            self.on_demand,
            self.norestored,
            self.repair_on_unban
        )
    }

    /// Whether a restored ban skips this action.
    #[must_use]
    pub fn norestored(&self) -> bool {
        self.norestored
    }

    /// Whether the action defines `op` with a command.
    #[must_use]
    pub fn defines(&self, op: &str) -> bool {
        self.props.get(op).is_some_and(|c| !c.trim().is_empty())
    }

    fn resolved(&mut self, family: Family) -> Result<&IndexMap<String, String>, ActionError> {
        if !self.resolved.contains_key(&family) {
            let resolved = tags::resolve_props(&self.props, family)
                .map_err(|source| self.tags_error(source))?;
            self.resolved.insert(family, resolved);
        }
        Ok(&self.resolved[&family])
    }

    fn tags_error(&self, source: crate::config::fail2ban::readers::ReaderError) -> ActionError {
        ActionError::Tags {
            jail: self.jail.clone(),
            action: self.name.clone(),
            source,
        }
    }

    /// The family a ban is tracked under: its own when the action has `?family=` variants.
    fn family_key(&self, info: &BanInfo) -> Family {
        if self.families.len() > 1 {
            Family::of(&info.ip)
        } else {
            Family::Any
        }
    }

    /// `op`'s command for `family`, its tags filled from `values`.
    fn script(
        &mut self,
        op: &'static str,
        family: Family,
        values: &IndexMap<&str, String>,
        fields: &IndexMap<String, String>,
        reverse_of: Option<std::net::IpAddr>,
        ctx: &Context,
    ) -> Result<Script, ActionError> {
        let resolved = self.resolved(family)?;
        let command = tags::static_command(resolved, op, &ctx.host)
            .map_err(|source| self.tags_error(source))?;
        // `<ip-host>` asks the resolver: only when the command uses it.
        if let (Some(addr), true) = (reverse_of, command.contains("<ip-host>")) {
            let mut values = values.clone();
            values.insert("ip-host", (ctx.reverse)(addr).unwrap_or_default());
            return Ok(tags::dynamic_script(&command, &values, fields, &ctx.host));
        }
        Ok(tags::dynamic_script(&command, values, fields, &ctx.host))
    }

    /// Runs `script` for `op`; an empty command succeeds without running.
    fn execute(&self, op: &'static str, script: &Script, ctx: &Context) -> Result<(), ActionError> {
        if script.text.trim().is_empty() {
            return Ok(());
        }
        let (jail, action) = (self.jail.as_str(), self.name.as_str());
        tracing::debug!(jail, action, op, command = %script.text, "running action command");
        let error = |source| ActionError::Run {
            jail: jail.into(),
            action: action.into(),
            op,
            source,
        };
        let done = ctx.shell.run(script, self.timeout).map_err(|e| {
            if let RunError::Timeout(_, f) = &e {
                tracing::error!(jail, action, op, stdout = %f.stdout, stderr = %f.stderr, "action command timed out");
            }
            error(e)
        })?;
        if done.status.success() {
            if !done.stdout.is_empty() || !done.stderr.is_empty() {
                tracing::debug!(jail, action, op, stdout = %done.stdout, stderr = %done.stderr, "action command output");
            }
            return Ok(());
        }
        tracing::error!(jail, action, op, status = %done.describe_status(), stdout = %done.stdout, stderr = %done.stderr, "action command failed");
        Err(ActionError::Failed {
            jail: jail.into(),
            action: action.into(),
            op,
            status: done.describe_status(),
            stderr: match done.stderr.trim_end() {
                "" => "(nothing on stderr)".into(),
                text => clip(text, 1000),
            },
        })
    }

    /// Runs an operation that concerns no ban (`actionstart`, `actionstop`, `actionflush`,
    /// `actioncheck`, `actionrepair`) for `family`.
    /// The script `op` runs: for the ban `info` (in its address's family), or, without one,
    /// as an operation concerning no ban (`actionstart`...) for `family`. For diagnostics
    /// (`banxdp dump`) and tests; nothing runs.
    pub fn script_for(
        &mut self,
        op: &'static str,
        family: Family,
        info: Option<&BanInfo>,
        ctx: &Context,
    ) -> Result<Script, ActionError> {
        if let Some(info) = info {
            let family = Family::of(&info.ip);
            let values = super::ban_values(info, family);
            return self.script(op, family, &values, &info.fields, Some(info.ip.addr()), ctx);
        }
        let mut values = IndexMap::new();
        values.insert("time", super::epoch_text((ctx.clock)()));
        if family != Family::Any {
            values.insert("family", family.as_str().to_string());
        }
        self.script(op, family, &values, &IndexMap::new(), None, ctx)
    }

    fn operation(
        &mut self,
        op: &'static str,
        family: Family,
        ctx: &Context,
    ) -> Result<(), ActionError> {
        let script = self.script_for(op, family, None, ctx)?;
        if matches!(op, "actioncheck" | "actionrepair") {
            return self.execute(op, &script, ctx);
        }
        let done = self.executed.entry(op).or_default();
        if !script.text.trim().is_empty()
            && done
                .iter()
                .any(|(f, cmd)| *f != family && *cmd == script.text)
        {
            return Ok(());
        }
        self.execute(op, &script, ctx)?;
        self.executed
            .entry(op)
            .or_default()
            .insert(family, script.text);
        Ok(())
    }

    fn start_family(&mut self, family: Family, ctx: &Context) -> Result<(), ActionError> {
        self.operation("actionstart", family, ctx)?;
        if let Some(done) = self.executed.get_mut("actionstop") {
            done.remove(&family);
        }
        *self.started.entry(family).or_insert(0) |= STARTED;
        Ok(())
    }

    fn stop_family(&mut self, family: Family, ctx: &Context) -> Result<(), ActionError> {
        self.started.remove(&family);
        let result = self.operation("actionstop", family, ctx);
        if result.is_ok() {
            if let Some(done) = self.executed.get_mut("actionstart") {
                done.remove(&family);
            }
        }
        result
    }

    /// `actionstart`, unless the action starts on demand.
    pub fn start(&mut self, ctx: &Context) -> Result<(), ActionError> {
        if self.on_demand {
            return Ok(());
        }
        for family in self.families.clone() {
            if self.started.get(&family).copied().unwrap_or(0) & STARTED == 0 {
                self.start_family(family, ctx)?;
            }
        }
        Ok(())
    }

    /// `actionban` (after `actionstart` when on demand); `Ok(false)` when the ban is restored
    /// and the action says `norestored`.
    pub fn ban(&mut self, info: &BanInfo, ctx: &Context) -> Result<bool, ActionError> {
        if info.restored && self.norestored {
            return Ok(false);
        }
        let family = self.family_key(info);
        if self.on_demand && self.started.get(&family).copied().unwrap_or(0) & STARTED == 0 {
            self.start_family(family, ctx)?;
        }
        self.process("actionban", info, ctx)?;
        *self.started.entry(family).or_insert(0) |= STARTED | HOLDS_BANS;
        Ok(true)
    }

    /// `actionunban`, when the ban's family holds bans.
    pub fn unban(&mut self, info: &BanInfo, ctx: &Context) -> Result<(), ActionError> {
        if info.restored && self.norestored {
            return Ok(());
        }
        let family = self.family_key(info);
        if self.started.get(&family).copied().unwrap_or(0) & HOLDS_BANS == 0 {
            return Ok(());
        }
        self.process("actionunban", info, ctx)
    }

    /// `actionflush` for every family holding bans; `Ok(false)` when the action has none (the
    /// caller unbans one by one instead).
    pub fn flush(&mut self, ctx: &Context) -> Result<bool, ActionError> {
        if !self.defines("actionflush") {
            return Ok(false);
        }
        let mut holding: Vec<Family> = self
            .started
            .iter()
            .filter(|(_, bits)| **bits & (STARTED | HOLDS_BANS) == STARTED | HOLDS_BANS)
            .map(|(f, _)| *f)
            .collect();
        holding.sort();
        for family in holding {
            self.operation("actionflush", family, ctx)?;
            if let Some(bits) = self.started.get_mut(&family) {
                *bits &= !HOLDS_BANS;
            }
        }
        Ok(true)
    }

    /// `actionstop` for every started family.
    pub fn stop(&mut self, ctx: &Context) -> Result<(), ActionError> {
        let mut started: Vec<Family> = self
            .started
            .iter()
            .filter(|(_, bits)| **bits != 0)
            .map(|(f, _)| *f)
            .collect();
        started.sort();
        let mut first = Ok(());
        for family in started {
            if let Err(e) = self.stop_family(family, ctx) {
                first = first.and(Err(e));
            }
        }
        self.started.clear();
        first
    }

    /// A ban operation: run, and on failure check (and repair) the environment, then retry
    /// once (fail2ban's `_processCmd`).
    fn process(
        &mut self,
        op: &'static str,
        info: &BanInfo,
        ctx: &Context,
    ) -> Result<(), ActionError> {
        let script = self.script_for(op, Family::Any, Some(info), ctx)?;
        let Err(first) = self.execute(op, &script, ctx) else {
            return Ok(());
        };
        if self.defines("actioncheck") && !self.check_and_repair(op, self.family_key(info), ctx) {
            return Err(first);
        }
        tracing::warn!(jail = %self.jail, action = %self.name, op, "retrying the action command once");
        self.execute(op, &script, ctx)
    }

    /// fail2ban's `_invariantCheck`: `true` when the environment is sane (again).
    fn check_and_repair(&mut self, op: &str, family: Family, ctx: &Context) -> bool {
        if self.operation("actioncheck", family, ctx).is_ok() {
            return true;
        }
        if op == "actionunban" && !self.repair_on_unban {
            tracing::error!(jail = %self.jail, action = %self.name, "invariant check failed: unban is impossible");
            return false;
        }
        tracing::error!(jail = %self.jail, action = %self.name, "invariant check failed: restoring a sane environment");
        if self.defines("actionrepair") {
            if self.operation("actionrepair", family, ctx).is_err() {
                self.started.insert(family, 0);
                return false;
            }
            self.started.insert(family, STARTED);
        } else {
            let _ = self.stop_family(family, ctx);
            if self.start_family(family, ctx).is_err() {
                return false;
            }
        }
        self.operation("actioncheck", family, ctx).is_ok()
    }
}

#[cfg(test)]
#[path = "set_tests.rs"]
mod tests;
