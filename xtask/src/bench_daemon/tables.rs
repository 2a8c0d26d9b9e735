//! The tables of `cargo xtask bench-daemon` that set the two tools side by side: the rows
//! each tool's runs fill, printed run by run (banxdp's row, fail2ban's, then fail2ban's ÷
//! banxdp's for every column where a ratio means something).

use std::fmt::Write as _;

use anyhow::Result;

/// One measured row of the reaction table.
pub(super) struct ReactionRow {
    pub(super) tool: &'static str,
    pub(super) rate: u32,
    /// Lines written before the ban: median and max over the trials.
    pub(super) lines: (usize, usize),
    /// Seconds from the third line to the ban: median and p99.
    pub(super) latency: (f64, f64),
}

/// The reaction table, rate by rate: each tool's row, then fail2ban's ÷ banxdp's.
#[expect(clippy::cast_precision_loss, reason = "line counts fit a double")]
pub(super) fn reaction_table(rows: &[ReactionRow], rates: &[u32], out: &mut String) -> Result<()> {
    writeln!(
        out,
        "\nreaction (maxretry 3; lines written before the ban, latency from the 3rd line)\n"
    )?;
    writeln!(
        out,
        "| tool | lines/s | lines before ban: median (max) | latency median | latency p99 |\n|---|---:|---:|---:|---:|"
    )?;
    for rate in rates {
        let at: Vec<&ReactionRow> = rows.iter().filter(|r| r.rate == *rate).collect();
        for row in &at {
            writeln!(
                out,
                "| {} | {rate} | {} ({}) | {:.2} ms | {:.2} ms |",
                row.tool,
                row.lines.0,
                row.lines.1,
                row.latency.0 * 1e3,
                row.latency.1 * 1e3
            )?;
        }
        if let [ours, theirs] = at[..] {
            writeln!(
                out,
                "| fail2ban ÷ banxdp | {rate} | {:.1}× ({:.1}×) | {:.0}× | {:.0}× |",
                theirs.lines.0 as f64 / ours.lines.0 as f64,
                theirs.lines.1 as f64 / ours.lines.1 as f64,
                theirs.latency.0 / ours.latency.0,
                theirs.latency.1 / ours.latency.1
            )?;
        }
    }
    Ok(())
}

/// One measured row of the load table.
pub(super) struct LoadRow {
    pub(super) tool: &'static str,
    pub(super) lines: usize,
    /// Lines per second written (`None`: all at once).
    pub(super) rate: Option<usize>,
    pub(super) cpu: f64,
    /// Seconds from the first write until the tool's CPU went idle.
    pub(super) wall: f64,
    pub(super) bans: usize,
}

impl LoadRow {
    pub(super) fn written(&self) -> String {
        self.rate
            .map_or_else(|| "at once".to_string(), |r| format!("{r}/s"))
    }

    #[expect(clippy::cast_precision_loss, reason = "line counts fit a double")]
    fn per_million(&self) -> f64 {
        self.cpu / self.lines as f64 * 1e6
    }

    #[expect(clippy::cast_precision_loss, reason = "line counts fit a double")]
    fn lines_per_second(&self) -> f64 {
        self.lines as f64 / self.wall
    }
}

/// The load table, run by run: each tool's row, then fail2ban's ÷ banxdp's.
pub(super) fn load_table(rows: &[LoadRow], out: &mut String) -> Result<()> {
    writeln!(
        out,
        "\nload (stock sshd filter; the generated auth.log of bench-regex, 25% failures)\n"
    )?;
    writeln!(
        out,
        "| tool | lines | written at | CPU s | CPU s per million lines | lines/s read | bans |\n\
         |---|---:|---:|---:|---:|---:|---:|"
    )?;
    let mut runs: Vec<(usize, Option<usize>)> = Vec::new();
    for row in rows {
        if !runs.contains(&(row.lines, row.rate)) {
            runs.push((row.lines, row.rate));
        }
    }
    for run in runs {
        let at: Vec<&LoadRow> = rows.iter().filter(|r| (r.lines, r.rate) == run).collect();
        for row in &at {
            writeln!(
                out,
                "| {} | {} | {} | {:.2} | {:.2} | {:.0} | {} |",
                row.tool,
                row.lines,
                row.written(),
                row.cpu,
                row.per_million(),
                row.lines_per_second(),
                row.bans
            )?;
        }
        if let [ours, theirs] = at[..] {
            writeln!(
                out,
                "| fail2ban ÷ banxdp | | {} | {:.0}× | {:.0}× | {:.3}× | |",
                ours.written(),
                theirs.cpu / ours.cpu,
                theirs.per_million() / ours.per_million(),
                theirs.lines_per_second() / ours.lines_per_second()
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table's rows, less its header and separator.
    fn body(out: &str) -> Vec<&str> {
        out.lines()
            .filter(|l| l.starts_with("| "))
            .skip(1)
            .collect()
    }

    fn reaction(tool: &'static str, rate: u32, lines: usize, ms: f64) -> ReactionRow {
        ReactionRow {
            tool,
            rate,
            lines: (lines, lines + 1),
            latency: (ms / 1e3, 2.0 * ms / 1e3),
        }
    }

    #[test]
    fn reaction_rows_are_grouped_by_rate_with_the_ratio_after_both() {
        let rows = [
            reaction("banxdp", 20, 3, 0.5),
            reaction("banxdp", 200, 3, 0.25),
            reaction("fail2ban 1.0.2", 20, 6, 100.0),
            reaction("fail2ban 1.0.2", 200, 30, 200.0),
        ];
        let mut out = String::new();
        reaction_table(&rows, &[20, 200], &mut out).unwrap();
        let body = body(&out);
        assert_eq!(
            body,
            [
                "| banxdp | 20 | 3 (4) | 0.50 ms | 1.00 ms |",
                "| fail2ban 1.0.2 | 20 | 6 (7) | 100.00 ms | 200.00 ms |",
                "| fail2ban ÷ banxdp | 20 | 2.0× (1.8×) | 200× | 200× |",
                "| banxdp | 200 | 3 (4) | 0.25 ms | 0.50 ms |",
                "| fail2ban 1.0.2 | 200 | 30 (31) | 200.00 ms | 400.00 ms |",
                "| fail2ban ÷ banxdp | 200 | 10.0× (7.8×) | 800× | 800× |",
            ]
        );
    }

    #[test]
    fn a_table_of_banxdp_alone_has_no_ratio() {
        let mut out = String::new();
        reaction_table(&[reaction("banxdp", 20, 3, 1.0)], &[20], &mut out).unwrap();
        assert!(!out.contains('÷'), "{out}");
        let mut out = String::new();
        let row = LoadRow {
            tool: "banxdp",
            lines: 1000,
            rate: None,
            cpu: 0.5,
            wall: 0.25,
            bans: 7,
        };
        load_table(&[row], &mut out).unwrap();
        assert!(
            out.contains("| banxdp | 1000 | at once | 0.50 | 500.00 | 4000 | 7 |"),
            "{out}"
        );
        assert!(!out.contains('÷'), "{out}");
    }

    #[test]
    fn load_rows_pair_by_run() {
        let row = |tool, rate, cpu, wall| LoadRow {
            tool,
            lines: 10_000,
            rate,
            cpu,
            wall,
            bans: 23,
        };
        let rows = [
            row("banxdp", Some(1000), 0.2, 10.0),
            row("banxdp", None, 0.1, 0.1),
            row("fail2ban 1.0.2", Some(1000), 1.4, 10.0),
            row("fail2ban 1.0.2", None, 1.0, 1.0),
        ];
        let mut out = String::new();
        load_table(&rows, &mut out).unwrap();
        let body = body(&out);
        assert_eq!(
            body,
            [
                "| banxdp | 10000 | 1000/s | 0.20 | 20.00 | 1000 | 23 |",
                "| fail2ban 1.0.2 | 10000 | 1000/s | 1.40 | 140.00 | 1000 | 23 |",
                "| fail2ban ÷ banxdp | | 1000/s | 7× | 7× | 1.000× | |",
                "| banxdp | 10000 | at once | 0.10 | 10.00 | 100000 | 23 |",
                "| fail2ban 1.0.2 | 10000 | at once | 1.00 | 100.00 | 10000 | 23 |",
                "| fail2ban ÷ banxdp | | at once | 10× | 10× | 0.100× | |",
            ]
        );
    }
}
