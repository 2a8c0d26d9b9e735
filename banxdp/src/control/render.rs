//! Replies as people read them: `status` in fail2ban-client's layout, `list` and `stats` as
//! tables, `trace` one verdict a line. Pure: the current time and the local-time formatter
//! are arguments, so that the layouts are tested against fixed strings.

use std::fmt::Write as _;

use super::proto::{BanInfo, InterfaceStats, JailStatus, StatusReply, TraceEvent, target_text};

/// `status`: every jail's name (`jail: None`), or one jail's counts, as fail2ban-client
/// prints them (fail2ban's `client/beautifier.py` was the specification).
#[must_use]
pub fn status(reply: &StatusReply, jail: Option<&str>) -> String {
    if let (Some(_), [one]) = (jail, reply.jails.as_slice()) {
        return jail_status(one);
    }
    // fail2ban lists the names sorted, whatever the order of the configuration.
    let mut names: Vec<&str> = reply.jails.iter().map(|j| j.name.as_str()).collect();
    names.sort_unstable();
    let mut out = format!(
        "Status\n|- Number of jail:\t{}\n`- Jail list:\t{}\n",
        names.len(),
        names.join(", ")
    );
    // banxdp's own line, after fail2ban's layout (so that what reads that layout still
    // does): which backend enforces, where, and why not XDP when it is not.
    if !reply.backend_detail.is_empty() {
        let _ = writeln!(out, "Enforced by:\t{}", reply.backend_detail);
    }
    out
}

fn jail_status(jail: &JailStatus) -> String {
    let source = match &jail.journal_matches {
        Some(matches) => ("Journal matches", matches.clone()),
        None => ("File list", jail.files.join(" ")),
    };
    let sections = [
        (
            "Filter",
            vec![
                ("Currently failed", jail.currently_failed.to_string()),
                ("Total failed", jail.total_failed.to_string()),
                source,
            ],
        ),
        (
            "Actions",
            vec![
                ("Currently banned", jail.currently_banned.to_string()),
                ("Total banned", jail.total_banned.to_string()),
                ("Banned IP list", jail.banned.join(" ")),
            ],
        ),
    ];
    let mut out = format!("Status for the jail: {}\n", jail.name);
    for (n, (section, rows)) in sections.iter().enumerate() {
        let last_section = n + 1 == sections.len();
        let (branch, indent) = if last_section {
            ("`-", "   ")
        } else {
            ("|-", "|  ")
        };
        let _ = writeln!(out, "{branch} {section}");
        for (m, (key, value)) in rows.iter().enumerate() {
            let leaf = if m + 1 == rows.len() { "`-" } else { "|-" };
            let _ = writeln!(out, "{indent}{leaf} {key}:\t{value}");
        }
    }
    out
}

/// `list`: one ban a row, with its expiry in local time (`local` formats seconds since the
/// epoch), the time left from `now`, and its drops.
#[must_use]
pub fn bans(bans: &[BanInfo], now: i64, local: &dyn Fn(i64) -> String) -> String {
    if bans.is_empty() {
        return "no active bans\n".to_string();
    }
    let mut rows = vec![[
        "TARGET".to_string(),
        "JAILS".to_string(),
        "EXPIRES".to_string(),
        "REMAINING".to_string(),
        "DROPS".to_string(),
    ]];
    for ban in bans {
        let (expires, remaining) = match ban.expiry {
            Some(at) => (local(at), remaining_text(at - now)),
            None => ("never".to_string(), "-".to_string()),
        };
        rows.push([
            target_text(&ban.target),
            ban.jails.join(","),
            expires,
            remaining,
            drops_text(ban),
        ]);
    }
    table(&rows, 4)
}

/// A ban's drops, and what it let through in shadow mode (`12`, `0 (+40 shadow)`, `-` where
/// the backend does not count).
fn drops_text(ban: &BanInfo) -> String {
    let drops = ban.drops.map_or_else(|| "-".to_string(), |d| d.to_string());
    match ban.shadow {
        Some(shadow) if shadow > 0 => format!("{drops} (+{shadow} shadow)"),
        _ => drops,
    }
}

/// Time left, in its two largest units (`1d 3h`, `12m 5s`); `expired` when none is.
#[must_use]
pub fn remaining_text(seconds: i64) -> String {
    if seconds <= 0 {
        return "expired".to_string();
    }
    let units = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];
    let mut rest = seconds;
    let mut parts = Vec::new();
    for (name, size) in units {
        if rest >= size || !parts.is_empty() {
            parts.push(format!("{}{name}", rest / size));
            rest %= size;
        }
        if parts.len() == 2 {
            break;
        }
    }
    if parts.len() == 2 && parts[1].starts_with('0') {
        parts.pop();
    }
    parts.join(" ")
}

/// `stats`: one row per counter, one column per interface.
#[must_use]
pub fn stats(interfaces: &[InterfaceStats]) -> String {
    if interfaces.is_empty() {
        return "no interface is attached\n".to_string();
    }
    let mut names: Vec<&str> = banxdp_common::counter::NAMES.to_vec();
    for interface in interfaces {
        for name in interface.packets.keys() {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    let mut rows = vec![
        std::iter::once("COUNTER".to_string())
            .chain(interfaces.iter().map(|i| i.interface.clone()))
            .collect::<Vec<_>>(),
    ];
    for name in names {
        rows.push(
            std::iter::once(name.to_string())
                .chain(
                    interfaces
                        .iter()
                        .map(|i| i.packets.get(name).copied().unwrap_or(0).to_string()),
                )
                .collect(),
        );
    }
    let right: Vec<bool> = (0..=interfaces.len()).map(|c| c > 0).collect();
    table_aligned(&rows, &right)
}

/// `trace`: one verdict a line (`11:00:00.250 eth0 192.0.2.7 drop drop_v4 sshd`).
#[must_use]
pub fn trace(event: &TraceEvent, local: &dyn Fn(i64) -> String) -> String {
    let seconds = i64::try_from(event.time_ms / 1000).unwrap_or(i64::MAX);
    let when = local(seconds);
    let clock = when.rsplit(' ').next().unwrap_or(&when);
    let mut line = format!(
        "{clock}.{:03} {} {} {} {}",
        event.time_ms % 1000,
        event.interface,
        event.source,
        event.verdict,
        event.reason
    );
    if !event.jails.is_empty() {
        let _ = write!(line, " {}", event.jails.join(","));
    }
    line.push('\n');
    line
}

/// Columns padded to their widest cell, the column `right` aligned to the right.
fn table<const N: usize>(rows: &[[String; N]], right: usize) -> String {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.to_vec()).collect();
    let align: Vec<bool> = (0..N).map(|c| c == right).collect();
    table_aligned(&rows, &align)
}

fn table_aligned(rows: &[Vec<String>], right: &[bool]) -> String {
    let columns = right.len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let width = widths[c];
            if right[c] {
                let _ = write!(line, "{cell:>width$}");
            } else {
                let _ = write!(line, "{cell:<width$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Seconds since the epoch as local time, `2026-12-05 11:00:00` (the C library's time zone
/// rules: `TZ`, else /etc/localtime).
#[must_use]
pub fn local_time(seconds: i64) -> String {
    // 64-bit time_t: every target banxdp builds for (its eBPF side needs a 64-bit kernel).
    let time: libc::time_t = seconds;
    // SAFETY: `tm` is plain data that localtime_r fills; both pointers are valid.
    let tm = unsafe {
        let mut tm = std::mem::zeroed::<libc::tm>();
        if libc::localtime_r(&raw const time, &raw mut tm).is_null() {
            return seconds.to_string();
        }
        tm
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::parse_target;

    /// UTC, as a fixed stand-in for the local zone.
    fn utc(seconds: i64) -> String {
        let days = seconds.div_euclid(86_400);
        let rest = seconds.rem_euclid(86_400);
        // 2026-12-05 is day 20792 of the epoch; the tests stay within that month.
        assert!((20_788..20_818).contains(&days), "{days}");
        format!(
            "2026-12-{:02} {:02}:{:02}:{:02}",
            days - 20_792 + 5,
            rest / 3600,
            rest % 3600 / 60,
            rest % 60
        )
    }

    const NOON: i64 = 1_796_472_000; // 2026-12-05 12:00:00 UTC

    fn sshd() -> JailStatus {
        JailStatus {
            name: "sshd".into(),
            currently_failed: 3,
            total_failed: 27,
            files: vec!["/var/log/auth.log".into(), "/var/log/auth.log.1".into()],
            journal_matches: None,
            currently_banned: 2,
            total_banned: 5,
            banned: vec!["192.0.2.7".into(), "2001:db8::/64".into()],
        }
    }

    #[test]
    fn status_of_all_jails_is_fail2bans_layout() {
        let reply = StatusReply {
            jails: vec![
                sshd(),
                JailStatus {
                    name: "nginx-http-auth".into(),
                    ..JailStatus::default()
                },
            ],
            backend: "xdp".into(),
            backend_detail: "native on eth0".into(),
        };
        assert_eq!(
            status(&reply, None),
            // Sorted, as fail2ban lists them, whatever the order of the reply.
            "Status\n|- Number of jail:\t2\n`- Jail list:\tnginx-http-auth, sshd\n\
             Enforced by:\tnative on eth0\n"
        );
        assert_eq!(
            status(&StatusReply::default(), None),
            "Status\n|- Number of jail:\t0\n`- Jail list:\t\n"
        );
    }

    #[test]
    fn status_of_one_jail_is_fail2bans_layout() {
        let reply = StatusReply {
            jails: vec![sshd()],
            ..StatusReply::default()
        };
        assert_eq!(
            status(&reply, Some("sshd")),
            "Status for the jail: sshd\n\
             |- Filter\n\
             |  |- Currently failed:\t3\n\
             |  |- Total failed:\t27\n\
             |  `- File list:\t/var/log/auth.log /var/log/auth.log.1\n\
             `- Actions\n   \
             |- Currently banned:\t2\n   \
             |- Total banned:\t5\n   \
             `- Banned IP list:\t192.0.2.7 2001:db8::/64\n"
        );
        let journal = JailStatus {
            journal_matches: Some("_SYSTEMD_UNIT=sshd.service + _COMM=sshd".into()),
            files: vec![],
            banned: vec![],
            ..sshd()
        };
        let text = status(
            &StatusReply {
                jails: vec![journal],
                ..StatusReply::default()
            },
            Some("sshd"),
        );
        assert!(
            text.contains("|  `- Journal matches:\t_SYSTEMD_UNIT=sshd.service + _COMM=sshd\n"),
            "{text}"
        );
        assert!(text.ends_with("   `- Banned IP list:\t\n"), "{text}");
    }

    #[test]
    fn list_is_a_table_in_local_time() {
        let ban = |target: &str, jails: &[&str], expiry, drops| BanInfo {
            target: parse_target(target).unwrap(),
            jails: jails.iter().map(ToString::to_string).collect(),
            expiry,
            drops,
            shadow: None,
        };
        let text = bans(
            &[
                ban("192.0.2.7", &["sshd"], Some(NOON + 3_725), Some(1_234_567)),
                ban("2001:db8::/64", &["sshd", "recidive"], None, Some(0)),
                ban("198.51.100.9", &["nginx-http-auth"], Some(NOON - 5), None),
            ],
            NOON,
            &utc,
        );
        assert_eq!(
            text,
            "TARGET         JAILS            EXPIRES              REMAINING    DROPS\n\
             192.0.2.7      sshd             2026-12-05 13:02:05  1h 2m      1234567\n\
             2001:db8::/64  sshd,recidive    never                -                0\n\
             198.51.100.9   nginx-http-auth  2026-12-05 11:59:55  expired          -\n"
        );
        assert_eq!(bans(&[], NOON, &utc), "no active bans\n");
    }

    #[test]
    fn a_shadow_jails_ban_shows_what_it_let_through() {
        let shadowed = BanInfo {
            target: parse_target("192.0.2.8").unwrap(),
            jails: vec!["trial".into()],
            expiry: None,
            drops: Some(0),
            shadow: Some(40),
        };
        let text = bans(std::slice::from_ref(&shadowed), NOON, &utc);
        assert!(
            text.ends_with("never    -          0 (+40 shadow)\n"),
            "{text}"
        );
        let quiet = BanInfo {
            shadow: Some(0),
            ..shadowed
        };
        assert!(bans(&[quiet], NOON, &utc).ends_with(" 0\n"));
    }

    #[test]
    fn remaining_time_keeps_two_units() {
        for (seconds, text) in [
            (0, "expired"),
            (-9, "expired"),
            (59, "59s"),
            (60, "1m"),
            (61, "1m 1s"),
            (3_600, "1h"),
            (3_725, "1h 2m"),
            (90_061, "1d 1h"),
            (86_400 * 400, "400d"),
        ] {
            assert_eq!(remaining_text(seconds), text, "{seconds}");
        }
    }

    #[test]
    fn stats_have_a_column_per_interface() {
        let eth0 = InterfaceStats {
            interface: "eth0".into(),
            packets: [("seen".into(), 1_000), ("drop_v4".into(), 900)].into(),
        };
        let lo = InterfaceStats {
            interface: "lo".into(),
            packets: [("seen".into(), 7), ("new_reason".into(), 1)].into(),
        };
        let text = stats(&[eth0, lo]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "COUNTER          eth0  lo");
        assert_eq!(lines[1], "seen             1000   7");
        assert_eq!(lines[2], "pass_clean          0   0");
        assert_eq!(lines[9], "drop_v4           900   0");
        assert_eq!(lines.last(), Some(&"new_reason          0   1"));
        assert_eq!(lines.len(), 1 + banxdp_common::counter::COUNT + 1);
        assert_eq!(stats(&[]), "no interface is attached\n");
    }

    #[test]
    fn trace_is_one_line_a_verdict() {
        let event = TraceEvent {
            time_ms: u64::try_from(NOON).unwrap() * 1000 + 250,
            interface: "eth0".into(),
            source: "192.0.2.7".into(),
            verdict: "drop".into(),
            reason: "drop_v4".into(),
            jails: vec!["sshd".into()],
        };
        assert_eq!(
            trace(&event, &utc),
            "12:00:00.250 eth0 192.0.2.7 drop drop_v4 sshd\n"
        );
    }

    #[test]
    fn local_time_follows_the_time_zone_rules() {
        // The zone of this process is whatever the machine says; UTC offsets are whole
        // minutes, so seconds survive, and the shape is fixed.
        let text = local_time(NOON + 7);
        assert_eq!(text.len(), 19, "{text}");
        assert!(text.ends_with(":07"), "{text}");
        assert!(text.starts_with("2026-12-0"), "{text}");
    }
}
