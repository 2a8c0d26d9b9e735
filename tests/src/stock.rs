//! Filters of the installed fail2ban (Debian's /etc/fail2ban) and its own sample logs, as the
//! corpus tests read them.

use std::path::Path;

use banxdp::{
    config::fail2ban::{Disk, load_filter},
    filter::Scanner,
};
use indexmap::IndexMap;
use serde_json::{Map, Value as Json};

/// fail2ban's sample logs, one per filter (and some more).
pub const LOGS: &str = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs";
/// The installed configuration.
pub const CONFIG: &str = "/etc/fail2ban";

/// The present year, which bounds `%ExY` in date patterns.
#[must_use]
pub fn current_year() -> i32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    banxdp::filter::report::iso8601(now)[..4]
        .parse()
        .unwrap_or(2026)
}

/// The installed filter `filter` with the options `opts` (a `# filterOptions` set: `mode`
/// and the like), compiled as a jail would compile it.
///
/// # Errors
/// Why the filter cannot be read or compiled.
pub fn scanner(filter: &str, opts: &Map<String, Json>) -> Result<Scanner, String> {
    let params: IndexMap<String, String> = opts
        .iter()
        .filter(|(k, _)| !k.starts_with("test."))
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_string),
            )
        })
        .collect();
    let spec = load_filter(
        &Disk,
        Path::new(CONFIG),
        &format!("filter.d/{filter}"),
        params,
    )
    .map_err(|e| e.to_string())?
    .ok_or("no filter file")?;
    // `%ExY` accepts years around the real present, whatever "now" the test sets.
    Scanner::new(&spec, current_year()).map_err(|e| e.to_string())
}

/// The sample logs that have a filter of the same name, sorted; empty without fail2ban.
#[must_use]
pub fn logs_with_filters() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(LOGS) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            Path::new(CONFIG)
                .join("filter.d")
                .join(format!("{n}.conf"))
                .is_file()
        })
        .collect();
    names.sort();
    names
}
