//! `banxdp regex`: resolves the filter argument and prints the report.

use std::path::{Path, PathBuf};

use std::io::Write as _;

use anyhow::{Context as _, Result};

use crate::{
    config::{
        embedded::{self, ConfigDir, Embedded},
        fail2ban::{Disk, load_filter, readers::extract_options},
    },
    filter::{
        FilterSpec, Scanner,
        date::{Clock, Zone},
        report,
    },
    source::bulk,
};

/// What `banxdp regex` was asked.
pub struct Args<'a> {
    pub log: &'a str,
    pub filter: &'a str,
    pub ignoreregex: Option<&'a str>,
    pub config_dir: Option<&'a Path>,
    pub json: bool,
    /// Hosts as written, names not resolved.
    pub raw: bool,
    pub threads: Option<usize>,
}

/// The filter `banxdp regex` was given: a filter file, a name in the configuration's
/// `filter.d` (with `[mode=...]`), or else a failregex; with the extra ignoreregex.
fn filter_spec(
    filter: &str,
    ignoreregex: Option<&str>,
    config_dir: Option<&Path>,
) -> Result<FilterSpec> {
    let (name, params) =
        extract_options(filter).unwrap_or_else(|_| (filter.to_string(), indexmap::IndexMap::new()));
    let as_file = Path::new(&name);
    let mut spec = if as_file.is_file() {
        let dir = as_file
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let stem = as_file
            .file_stem()
            .context("a filter file name")?
            .to_string_lossy()
            .into_owned();
        load_filter(&Disk, &dir, &stem, params)?
    } else {
        let in_filter_d = format!("filter.d/{name}");
        match embedded::choose(config_dir, &["/etc/banxdp", "/etc/fail2ban"], Path::is_dir) {
            ConfigDir::Disk(dir) => load_filter(&Disk, &dir, &in_filter_d, params)?,
            ConfigDir::BuiltIn => {
                load_filter(&Embedded, Path::new(embedded::ROOT), &in_filter_d, params)?
            }
        }
    }
    .unwrap_or_else(|| {
        // Not a filter: a regular expression.
        FilterSpec {
            failregex: vec![filter.to_string()],
            ..FilterSpec::default()
        }
    });
    if let Some(ignore) = ignoreregex {
        spec.ignoreregex.push(ignore.to_string());
    }
    Ok(spec)
}

/// The addresses `name` resolves to, sorted, each once.
fn lookup(name: &str) -> Vec<std::net::IpAddr> {
    use std::net::ToSocketAddrs as _;
    let mut found: Vec<std::net::IpAddr> = (name, 0)
        .to_socket_addrs()
        .map(|addrs| addrs.map(|a| a.ip()).collect())
        .unwrap_or_default();
    found.sort();
    found.dedup();
    found
}

pub fn run(args: &Args<'_>) -> Result<()> {
    let Args {
        log,
        filter,
        ignoreregex,
        config_dir,
        json,
        raw,
        threads,
    } = *args;
    let spec = filter_spec(filter, ignoreregex, config_dir)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let year = report::iso8601(now)[..4].parse::<i32>().unwrap_or(2026);
    let mut scanner = Scanner::new(&spec, year).with_context(|| format!("filter `{filter}`"))?;
    let clock = Clock {
        now,
        zone: Zone::Local,
    };
    // Host names as fail2ban treats them: resolved, unless `usedns = raw` or `--raw`.
    let resolve: report::Resolver<'_> = if raw || spec.usedns == "raw" {
        None
    } else {
        Some(&lookup)
    };
    // The summary counts every failregex, as fail2ban-regex's does; the failures listed
    // are the daemon's, as `fail2ban-regex -o` lists them, written as they are found.
    let mode = if json {
        report::Mode::Daemon
    } else {
        report::Mode::AllRegex
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut written = Ok(());
    // The failures' lines, written out 1 MiB at a time (a 1M-line log has tens of MB of
    // them: fewer, larger writes).
    let mut text = Vec::with_capacity((1 << 20) + (1 << 12));
    let mut sink = |found: &report::Found| {
        if json && written.is_ok() {
            report::write_json(found, raw, &mut text);
            text.push(b'\n');
            if text.len() >= 1 << 20 {
                written = out.write_all(&text);
                text.clear();
            }
        }
    };
    scanner.set_check_all(mode == report::Mode::AllRegex);
    let mut report = report::Report::default();
    if Path::new(log).is_file() {
        let mut file = std::fs::File::open(log).with_context(|| format!("reading `{log}`"))?;
        let defaults = bulk::Options::default();
        let options = bulk::Options {
            threads: threads.unwrap_or(defaults.threads),
            ..defaults
        };
        let mut count = |line: bulk::Line<'_>| {
            if let Some(scanned) = line.scanned {
                report::count_scanned(
                    &mut report,
                    line.index,
                    scanned,
                    line.scanner,
                    resolve,
                    &mut sink,
                );
            }
        };
        bulk::scan(
            &mut file,
            &mut scanner,
            &clock,
            options,
            report::skipped,
            &mut count,
        )
        .with_context(|| format!("reading `{log}`"))?;
    } else {
        report::count_line(
            &mut report,
            0,
            log,
            &mut scanner,
            &clock,
            resolve,
            &mut sink,
        );
    }
    if written.is_ok() {
        written = out.write_all(&text);
    }
    written.context("writing the failures")?;
    if !json {
        write!(out, "{}", report.summary(&spec.failregex))?;
    }
    out.flush()?;
    Ok(())
}
