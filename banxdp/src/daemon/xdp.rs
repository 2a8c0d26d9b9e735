//! The XDP plan from the settings: which interfaces (the configured ones, else every one
//! that is up but loopback), in which mode, with which map sizes and pins. Reads
//! `/sys/class/net` and nothing else; loading the plan is `enforce::xdp`'s.

use std::path::{Path, PathBuf};

use crate::{
    config::Settings,
    enforce::xdp::{ObjectSource, XdpPlan},
};

/// Why no plan can be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
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
}

/// The interfaces under `sys_class_net` that are up, loopback excepted, sorted by name.
pub fn up_interfaces(sys_class_net: &Path) -> Result<Vec<String>, PlanError> {
    let error = |source| PlanError::Interfaces {
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
pub fn xdp_plan(settings: &Settings, object: Option<PathBuf>) -> Result<XdpPlan, PlanError> {
    let xdp = &settings.xdp;
    let interfaces = if xdp.interfaces.is_empty() {
        let found = up_interfaces(Path::new("/sys/class/net"))?;
        if found.is_empty() {
            return Err(PlanError::NoInterface);
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
        ..XdpPlan::default()
    })
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
