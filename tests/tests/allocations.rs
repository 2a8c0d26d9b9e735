//! No allocation per line the filter turns away: once the first stretch of an auth.log has
//! been read (the scanner's buffers grown), the daemon's scanner reads a line of another
//! program (cron, sudo, systemd, the kernel: most of a busy server's log) without
//! allocating, with the stock sshd filter. (A line the filter knows is merged into its
//! connection, which is state the scanner keeps: that may allocate.)
//!
//! The allocations are counted by this test binary's global allocator, per thread.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

use banxdp::filter::date::{Clock, Zone};
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

#[test]
fn a_warmed_up_scanner_allocates_nothing_for_a_line_it_turns_away() {
    let test = "a_warmed_up_scanner_allocates_nothing_for_a_line_it_turns_away";
    if !banxdp_tests::fail2ban_present(test, "fail2ban-regex") {
        return;
    }
    let mut scanner = stock::scanner("sshd", &Map::new()).expect("the stock sshd filter");
    let log = authlog::auth_log(60_000, 2_000, 7);
    let lines: Vec<&str> = log.lines().collect();
    let (warm, measured) = lines.split_at(lines.len() / 3);
    // The log's dates are of this year's October; `now` after them.
    let clock = Clock {
        now: 4_102_444_800,
        zone: Zone::Offset(0),
    };
    for line in warm {
        scanner.line(line, &clock);
    }
    let (mut quiet, mut made) = (0, 0);
    for line in measured {
        let before = allocations();
        let read = scanner.line(line, &clock);
        let after = allocations();
        if !line.contains(" sshd[") {
            assert!(read.failures.is_empty(), "{line}");
            quiet += 1;
            made += after - before;
        }
    }
    assert!(
        quiet > measured.len() / 4 && quiet < measured.len(),
        "the log has lines of sshd and of others: {quiet} of {}",
        measured.len()
    );
    assert_eq!(made, 0, "{made} allocations in {quiet} lines turned away");
}
