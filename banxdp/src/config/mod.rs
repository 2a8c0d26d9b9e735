//! Configuration: text in, values out, no syscalls beyond reading the files named.
//!
//! `settings` is `banxdp.toml`; `fail2ban` is fail2ban's jail/filter/action language, read
//! as fail2ban reads it; `jails` types and checks what banxdp uses of a jail (and depends on
//! `fail2ban`, never the other way: [`dump_stream`] joins the two).

pub mod duration;
pub mod embedded;
pub mod fail2ban;
pub mod jails;
pub mod settings;

use std::path::{Path, PathBuf};

pub use settings::{Settings, SettingsError};

/// Reads `basedir` as `fail2ban-client -d` does, and checks each enabled jail as banxdp
/// runs it ([`jails::JailConfig::resolve`]): a jail banxdp could not run carries its error,
/// reported now rather than at its first ban, and is not started.
pub fn dump_stream(
    files: &dyn fail2ban::Files,
    basedir: &Path,
) -> Result<fail2ban::Dump, fail2ban::store::StoreError> {
    fail2ban::read_stream(files, basedir, |jail| {
        jails::JailConfig::resolve(jail).map(drop)
    })
}

/// Where the settings came from, for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Embedded,
}

/// Reads `explicit` if given, else `/etc/banxdp/banxdp.toml` when it exists, else the
/// defaults embedded in the binary.
pub fn load_settings(explicit: Option<&Path>) -> Result<(Settings, Origin), LoadError> {
    let system = Path::new("/etc/banxdp/banxdp.toml");
    let path = if let Some(path) = explicit {
        path.to_path_buf()
    } else if system.exists() {
        system.to_path_buf()
    } else {
        let settings = Settings::parse(settings::DEFAULT_TOML, Path::new("(built-in)"))?;
        return Ok((settings, Origin::Embedded));
    };
    let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Read {
        path: path.clone(),
        source,
    })?;
    Ok((Settings::parse(&text, &path)?, Origin::File(path)))
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Settings(#[from] SettingsError),
}
