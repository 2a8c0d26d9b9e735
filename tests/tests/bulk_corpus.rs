//! `banxdp regex`'s parallel reading (`source::bulk`) against reading line by line, on every
//! sample log of the installed fail2ban with its filter: the same answers for every line
//! (date, template, failures, ignored), however the log is cut into chunks and however many
//! threads read it. The logs cover fail2ban's date formats, multi-line filters and failure
//! ids, which a generated log cannot all reach.

use std::path::Path;

use banxdp::{
    filter::{
        Scanned, Scanner,
        date::{Clock, Zone},
        report,
    },
    source::bulk,
};
use banxdp_tests::stock::{self, LOGS};
use serde_json::Map;

/// fail2ban's test "now" (2005-08-14 10:00 UTC), dates read as UTC.
fn clock() -> Clock {
    Clock {
        now: 1_124_013_600,
        zone: Zone::Offset(0),
    }
}

/// What a scanner reading `log` line by line gives, with each line's number; `None` for the
/// lines `banxdp regex` passes over.
fn line_by_line(mut scanner: Scanner, log: &[u8]) -> Vec<(usize, Option<Scanned>)> {
    let mut lines: Vec<&[u8]> = log.split(|b| *b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(index, line)| {
            let end = line.iter().rposition(|b| *b != b'\r').map_or(0, |p| p + 1);
            let text = String::from_utf8_lossy(&line[..end]);
            let read = (!report::skipped(&text)).then(|| scanner.line(&text, &clock()));
            (index, read)
        })
        .collect()
}

#[test]
fn every_sample_log_reads_alike_in_bulk() {
    let names = stock::logs_with_filters();
    if names.is_empty() {
        assert!(
            std::env::var("BANXDP_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "needs fail2ban installed (apt-get install fail2ban)"
        );
        eprintln!("skipped every_sample_log_reads_alike_in_bulk: needs fail2ban installed");
        return;
    }
    let (mut logs, mut lines) = (0, 0);
    for name in &names {
        let log = std::fs::read(Path::new(LOGS).join(name)).unwrap();
        // A filter banxdp cannot build is the corpus test's to report.
        let Ok(scanner) = stock::scanner(name, &Map::new()) else {
            continue;
        };
        let want = line_by_line(scanner.clone(), &log);
        for (threads, chunk) in [(2, 97), (3, 1000), (4, 1 << 20)] {
            let mut scanner = scanner.clone();
            let mut got = Vec::new();
            let options = bulk::Options { threads, chunk };
            bulk::scan(
                &mut &log[..],
                &mut scanner,
                &clock(),
                options,
                report::skipped,
                &mut |line| got.push((line.index, line.scanned)),
            )
            .unwrap();
            assert_eq!(got.len(), want.len(), "{name}");
            for (got, want) in got.iter().zip(&want) {
                assert_eq!(
                    got, want,
                    "{name}, {threads} threads, chunks of {chunk} bytes"
                );
            }
        }
        logs += 1;
        lines += want.len();
    }
    eprintln!("{logs} sample logs, {lines} lines: the same in bulk");
    assert!(logs > 50 && lines > 2_000, "{logs} logs, {lines} lines");
}
