//! No allocation per line: once the first stretch of an auth.log has been read (the
//! scanner's buffers grown, its first connections come and gone), reading a line, merging
//! its failures into their connections and writing them out as `banxdp regex --json` does
//! allocates nothing, with the stock sshd filter. Values longer than 24 bytes are the one
//! exception (they do not fit inline), and the log here has none.
//!
//! The allocations are counted by this test binary's global allocator, per thread.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

use banxdp::filter::{
    date::{Clock, Zone},
    report,
};
use banxdp_tests::{authlog, stock};
use serde_json::Map;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: a thread being torn down still allocates.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's promises, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Lines of the generated auth.log whose fields would be longer than 24 bytes: the pam
/// line's `<F-NOFAIL>` text, and the user of "Too many authentication failures for", which
/// the stock filter's `.*?` stretches to the end of the line when the name is followed by
/// `from`.
fn long_fields(line: &str) -> bool {
    line.contains("pam_unix(sshd:auth)") || line.contains("Too many authentication failures")
}

#[test]
fn reading_a_warmed_up_scanner_allocates_nothing_per_line() {
    let test = "reading_a_warmed_up_scanner_allocates_nothing_per_line";
    if !banxdp_tests::fail2ban_present(test, "fail2ban-regex") {
        return;
    }
    let mut scanner = stock::scanner("sshd", &Map::new()).expect("the stock sshd filter");
    let log = authlog::auth_log(60_000, 2_000, 7);
    let lines: Vec<&str> = log.lines().filter(|l| !long_fields(l)).collect();
    let (warm, measured) = lines.split_at(lines.len() / 3);
    // The log's dates are of this year's October; `now` after them.
    let clock = Clock {
        now: 4_102_444_800,
        zone: Zone::Offset(0),
    };
    let mut report = report::Report::default();
    let mut json = Vec::with_capacity(1 << 16);
    let mut failures = 0;
    let mut sink = |found: &report::Found| {
        json.clear();
        report::write_json(found, &mut json);
        failures += 1;
    };
    let mut read = |report: &mut report::Report, lines: &[&str], sink: &mut dyn FnMut(&_)| {
        for (index, line) in lines.iter().enumerate() {
            report::count_line(
                report,
                index,
                line,
                &mut scanner,
                &clock,
                None,
                report::Mode::Daemon,
                sink,
            );
        }
    };
    read(&mut report, warm, &mut sink);
    let before = allocations();
    read(&mut report, measured, &mut sink);
    let made = allocations() - before;
    assert!(
        failures > measured.len() / 10,
        "the log has failures to merge and write: {failures} in {} lines",
        measured.len()
    );
    assert_eq!(
        made,
        0,
        "{made} allocations in {} lines ({failures} failures in all)",
        measured.len()
    );
}
