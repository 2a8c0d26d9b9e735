//! `banxdp run`: wires configuration to the enforcers and keeps them running.
//!
//! Today it carries out the XDP plan (attach, adopt pinned state, sweep expired entries) and
//! stops cleanly on SIGINT/SIGTERM; log sources, jails, the ban store and the control socket
//! join it here as their issues land. It is the one place that owns the process's lifetime.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    config::Settings,
    enforce::{
        Enforcer as _,
        xdp::{ObjectSource, XdpEnforcer, XdpError, XdpPlan},
    },
};

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("xdp")]
    Xdp(#[from] XdpError),
    #[error("xdp")]
    Enforce(#[from] crate::enforce::Error),
    #[error("cannot list network interfaces in `{}`", path.display())]
    Interfaces {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no interface to attach to: none is up apart from loopback; name one in `xdp.interfaces`"
    )]
    NoInterface,
    #[error("`xdp.enabled` is false and no other backend exists yet; nothing would enforce bans")]
    NothingToRun,
}

/// The interfaces under `sys_class_net` that are up, loopback excepted, sorted by name.
pub fn up_interfaces(sys_class_net: &Path) -> Result<Vec<String>, DaemonError> {
    let error = |source| DaemonError::Interfaces {
        path: sys_class_net.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(sys_class_net).map_err(error)? {
        let entry = entry.map_err(error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "lo" {
            continue;
        }
        let flags = std::fs::read_to_string(entry.path().join("flags")).unwrap_or_default();
        let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
        if flags & 1 != 0 {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The XDP plan the settings describe.
pub fn xdp_plan(settings: &Settings, object: Option<PathBuf>) -> Result<XdpPlan, DaemonError> {
    let xdp = &settings.xdp;
    let interfaces = if xdp.interfaces.is_empty() {
        let found = up_interfaces(Path::new("/sys/class/net"))?;
        if found.is_empty() {
            return Err(DaemonError::NoInterface);
        }
        found
    } else {
        xdp.interfaces.clone()
    };
    Ok(XdpPlan {
        object: object.map_or(ObjectSource::Embedded, ObjectSource::File),
        interfaces,
        mode: xdp.mode,
        capacities: xdp.capacity,
        pin_dir: Some(xdp.pin_dir.clone()),
    })
}

/// Runs until `wait` returns true (a stop was asked for); `wait` sleeps at most the given
/// time and returns false when it timed out.
pub fn run(
    settings: &Settings,
    plan: &XdpPlan,
    mut wait: impl FnMut(Duration) -> bool,
) -> Result<(), DaemonError> {
    if !settings.xdp.enabled {
        return Err(DaemonError::NothingToRun);
    }
    let mut xdp = XdpEnforcer::load(plan)?;
    for a in xdp.attachments() {
        let how = if a.adopted { "took over" } else { "attached" };
        let why = a
            .fallback
            .as_ref()
            .map(|reason| format!(" (native: {reason})"))
            .unwrap_or_default();
        tracing::info!("{how} `{}` in {} mode{why}", a.interface, a.mode.as_str());
    }
    let active = xdp.active()?.len();
    tracing::info!(
        "enforcing {active} ban(s){}",
        if xdp.adopted_maps() {
            " taken over from pinned maps"
        } else {
            ""
        }
    );
    let interval = Duration::from_secs(settings.xdp.sweep_interval);
    while !wait(interval) {
        let removed = xdp.remove_expired()?;
        if removed > 0 {
            tracing::info!("removed {removed} expired ban(s)");
        }
    }
    if settings.xdp.detach_on_exit {
        tracing::info!("stopping: detaching and removing pins");
        xdp.detach()?;
    } else {
        tracing::info!("stopping: pinned XDP state keeps enforcing until the next start");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_interfaces_skips_loopback_and_down() {
        let dir = tempfile::tempdir().unwrap();
        for (name, flags) in [
            ("lo", "0x9"),
            ("eth0", "0x1003"),
            ("eth1", "0x1002"),
            ("br0", "0x1"),
        ] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("flags"), format!("{flags}\n")).unwrap();
        }
        assert_eq!(up_interfaces(dir.path()).unwrap(), ["br0", "eth0"]);
    }
}
