//! Which backend enforces the bans: XDP by default, or the fallback `[enforce]` names when
//! XDP cannot load or attach (an old kernel, `bpf()` refused, no permission, an interface
//! without XDP) or is switched off, or another backend chosen outright. The reason XDP was
//! not used is logged once and shown by `banxdp status`.

use std::path::PathBuf;

use crate::{
    action::{ActionSet, CommandEnforcer, Context},
    config::{
        Settings,
        settings::{Backend, Fallback},
    },
    enforce::{
        Enforcer,
        hostsdeny::{HostsDenyEnforcer, HostsDenyOptions},
        ipset::{IpsetEnforcer, IpsetOptions},
        iptables::{IptablesEnforcer, IptablesOptions},
        nftables::{NftEnforcer, NftOptions},
        xdp::{XdpEnforcer, trace::Tracer},
    },
};

use super::{DaemonError, xdp};

/// The enforcing backend, and why it is not XDP when it is not.
pub struct Chosen {
    pub enforcer: Box<dyn Enforcer + Send>,
    pub why_not_xdp: Option<String>,
    /// The XDP program's trace side (`banxdp trace`), when XDP enforces and can trace.
    pub tracer: Option<Tracer>,
}

fn firewall(backend: Backend) -> Result<Box<dyn Enforcer + Send>, crate::enforce::Error> {
    Ok(match backend {
        Backend::Nftables => Box::new(NftEnforcer::new(NftOptions::default())?),
        Backend::Ipset => Box::new(IpsetEnforcer::new(IpsetOptions::default())?),
        Backend::Iptables => Box::new(IptablesEnforcer::new(IptablesOptions::default())?),
        Backend::Hostsdeny => Box::new(HostsDenyEnforcer::new(HostsDenyOptions::default())),
        Backend::Xdp | Backend::Actions => unreachable!("not a firewall backend"),
    })
}

fn load_xdp(settings: &Settings, object: Option<PathBuf>) -> Result<XdpEnforcer, DaemonError> {
    let plan = xdp::xdp_plan(settings, object)?;
    // Pinned links keep the earlier program until the daemon has restored every ban
    // (`Enforcer::take_over`): a map this build could not adopt starts empty.
    let enforcer = XdpEnforcer::load_staged(&plan)?;
    for a in enforcer.attachments() {
        let how = if a.adopted { "took over" } else { "attached" };
        let why = a
            .fallback
            .as_ref()
            .map(|reason| format!(" (native: {reason})"))
            .unwrap_or_default();
        tracing::info!("{how} `{}` in {} mode{why}", a.interface, a.mode.as_str());
    }
    Ok(enforcer)
}

/// Loads the backend the settings choose. `actions` are the jails' action sets, used only
/// by `backend = actions`.
pub fn choose(
    settings: &Settings,
    object: Option<PathBuf>,
    actions: Vec<ActionSet>,
) -> Result<Chosen, DaemonError> {
    let enforce = &settings.enforce;
    match enforce.backend {
        Backend::Actions => Ok(Chosen {
            enforcer: Box::new(CommandEnforcer::new(actions, Context::system())),
            why_not_xdp: Some("`enforce.backend = actions`".into()),
            tracer: None,
        }),
        Backend::Xdp if settings.xdp.enabled => match load_xdp(settings, object) {
            Ok(mut xdp) => Ok(Chosen {
                tracer: xdp.take_tracer(),
                enforcer: Box::new(xdp),
                why_not_xdp: None,
            }),
            Err(error) => {
                let reason = format!("{:#}", anyhow::Error::from(error));
                fall_back(enforce.fallback, reason)
            }
        },
        Backend::Xdp => fall_back(enforce.fallback, "`xdp.enabled = false`".into()),
        other => Ok(Chosen {
            enforcer: firewall(other)?,
            why_not_xdp: Some(format!("`enforce.backend = {}`", other.as_str())),
            tracer: None,
        }),
    }
}

fn fall_back(fallback: Fallback, reason: String) -> Result<Chosen, DaemonError> {
    let Some(backend) = fallback.backend() else {
        tracing::error!("XDP cannot enforce bans: {reason}; `enforce.fallback = none`");
        return Err(DaemonError::NoBackend(reason));
    };
    tracing::warn!(
        "XDP cannot enforce bans: {reason}; enforcing through {} instead",
        backend.as_str()
    );
    Ok(Chosen {
        enforcer: firewall(backend)?,
        why_not_xdp: Some(reason),
        tracer: None,
    })
}
