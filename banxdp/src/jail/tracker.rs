//! The failures a jail is counting, per address, in bounded memory.
//!
//! One slot per address (or network) that failed within `findtime` and is not banned:
//! its failure window as fail2ban keeps it (first and last time, a retry count, the real
//! failure count) and its last `maxmatches` matched lines, joined in one allocation. Slots
//! live in a vector, found through a hash table of slot numbers (4 bytes per bucket), and
//! are chained in the order they last failed, so that the one whose last failure is oldest
//! is found in O(1).
//!
//! Bounds: at most `max_tracked` addresses and `max_match_bytes` bytes of matched text (or
//! one address's lines, if they alone are more). A failure that would pass either bound
//! first evicts the addresses whose last failure is oldest (their failures are forgotten, as
//! if `findtime` had passed; each eviction is counted). Slots of addresses whose window has passed are freed by [`Tracker::expire`].

use hashbrown::HashTable;
use ipnet::IpNet;

use super::ignore::canonical_net;

/// An address or network, as 16 bytes (IPv4 mapped into IPv6) and a prefix length in that
/// space: 17 bytes, no padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key([u8; 17]);

impl Key {
    #[must_use]
    pub fn of(net: IpNet) -> Self {
        let net = canonical_net(net);
        let mut bytes = [0u8; 17];
        match net {
            IpNet::V4(v4) => {
                bytes[..16].copy_from_slice(&v4.addr().to_ipv6_mapped().octets());
                bytes[16] = v4.prefix_len() + 96;
            }
            IpNet::V6(v6) => {
                bytes[..16].copy_from_slice(&v6.addr().octets());
                bytes[16] = v6.prefix_len();
            }
        }
        Self(bytes)
    }
}

const NONE: u32 = u32::MAX;
/// Separates matched lines in a slot's text (NUL in a line is replaced by a space).
const SEP: char = '\0';

/// One address's failures.
#[derive(Clone, Debug)]
pub struct Window {
    /// Start of the window the retry count covers (fail2ban's `_firstTime`).
    pub first: i64,
    /// Time of the last failure.
    pub last: i64,
    /// Failures as counted against `maxretry` (repeat offenders' first failure weighs more).
    pub retry: u32,
    /// Failures seen.
    pub failures: u32,
    matches: Option<Box<str>>,
}

impl Window {
    /// The matched lines kept, oldest first.
    #[must_use]
    pub fn matches(&self) -> Vec<String> {
        self.matches
            .as_deref()
            .map(|m| m.split(SEP).map(str::to_string).collect())
            .unwrap_or_default()
    }

    fn match_bytes(&self) -> usize {
        self.matches.as_deref().map_or(0, str::len)
    }
}

#[derive(Clone, Debug)]
struct Slot {
    key: Key,
    prev: u32,
    next: u32,
    window: Window,
}

/// What the tracker may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_tracked: usize,
    pub max_match_bytes: usize,
}

/// One failure to count.
pub struct Failure<'a> {
    pub time: i64,
    /// The jail's clock: a window whose last failure is `findtime` older is closed.
    pub now: i64,
    pub line: &'a str,
    /// What the failure counts for against `maxretry` (more than 1 for repeat offenders).
    pub weight: u32,
    pub findtime: i64,
    pub maxmatches: u32,
}

/// Per-address failure windows (see the module's text).
#[derive(Debug, Default)]
pub struct Tracker {
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    /// Least recently failed, and most recently.
    head: u32,
    tail: u32,
    len: usize,
    match_bytes: usize,
    /// Addresses forgotten to stay within the limits.
    pub evicted: u64,
}

impl Tracker {
    #[must_use]
    pub fn new() -> Self {
        Self {
            head: NONE,
            tail: NONE,
            ..Self::default()
        }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    #[must_use]
    pub fn match_bytes(&self) -> usize {
        self.match_bytes
    }

    fn slot(&self, i: u32) -> &Slot {
        self.slots[i as usize]
            .as_ref()
            .expect("a linked slot is filled")
    }

    fn slot_mut(&mut self, i: u32) -> &mut Slot {
        self.slots[i as usize]
            .as_mut()
            .expect("a linked slot is filled")
    }

    fn hash(&self, key: &Key) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, key)
    }

    fn find(&self, key: &Key) -> Option<u32> {
        let hash = self.hash(key);
        self.index
            .find(hash, |&i| self.slot(i).key == *key)
            .copied()
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let s = self.slot(i);
            (s.prev, s.next)
        };
        match prev {
            NONE => self.head = next,
            p => self.slot_mut(p).next = next,
        }
        match next {
            NONE => self.tail = prev,
            n => self.slot_mut(n).prev = prev,
        }
    }

    fn push_back(&mut self, i: u32) {
        let tail = self.tail;
        {
            let s = self.slot_mut(i);
            s.prev = tail;
            s.next = NONE;
        }
        match tail {
            NONE => self.head = i,
            t => self.slot_mut(t).next = i,
        }
        self.tail = i;
    }

    /// Forgets `key`'s failures; its window, if it had one.
    pub fn remove(&mut self, key: &Key) -> Option<Window> {
        let i = self.find(key)?;
        Some(self.remove_slot(i))
    }

    fn remove_slot(&mut self, i: u32) -> Window {
        self.unlink(i);
        let hash = self.hash(&self.slot(i).key);
        self.index
            .find_entry(hash, |&s| s == i)
            .expect("a slot is in the table")
            .remove();
        let slot = self.slots[i as usize].take().expect("a filled slot");
        self.free.push(i);
        self.len -= 1;
        self.match_bytes -= slot.window.match_bytes();
        slot.window
    }

    /// Frees the windows whose last failure is at or before `cutoff`, oldest first, stopping
    /// at the first younger one; returns how many went.
    pub fn expire(&mut self, cutoff: i64) -> usize {
        let mut freed = 0;
        while self.head != NONE && self.slot(self.head).window.last <= cutoff {
            self.remove_slot(self.head);
            freed += 1;
        }
        freed
    }

    /// Counts a failure of `key`; returns its window as it now stands.
    pub fn add(&mut self, key: Key, failure: &Failure<'_>, limits: Limits) -> &Window {
        let i = match self.find(&key) {
            Some(i) => {
                self.unlink(i);
                let before = self.slot(i).window.match_bytes();
                let window = &mut self.slot_mut(i).window;
                count(window, failure);
                let after = window.match_bytes();
                self.match_bytes = self.match_bytes + after - before;
                i
            }
            None => self.insert(key, failure, limits),
        };
        self.push_back(i);
        // An address's lines grew: others make room (the address itself, now the most
        // recent, goes last).
        while self.match_bytes > limits.max_match_bytes && self.head != i {
            self.remove_slot(self.head);
            self.evicted += 1;
        }
        &self.slot(i).window
    }

    fn insert(&mut self, key: Key, failure: &Failure<'_>, limits: Limits) -> u32 {
        let line_bytes = if failure.maxmatches == 0 {
            0
        } else {
            failure.line.len()
        };
        while self.head != NONE
            && (self.len >= limits.max_tracked.max(1)
                || self.match_bytes + line_bytes > limits.max_match_bytes)
        {
            self.remove_slot(self.head);
            self.evicted += 1;
        }
        let mut window = Window {
            first: failure.time,
            last: failure.time,
            retry: failure.weight.max(1),
            failures: 1,
            matches: None,
        };
        push_match(&mut window, failure.line, failure.maxmatches);
        self.match_bytes += window.match_bytes();
        let slot = Slot {
            key,
            prev: NONE,
            next: NONE,
            window,
        };
        let i = if let Some(i) = self.free.pop() {
            self.slots[i as usize] = Some(slot);
            i
        } else {
            let i = u32::try_from(self.slots.len()).expect("fewer than 2^32 slots");
            self.slots.push(Some(slot));
            i
        };
        let hash = self.hash(&key);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, i, |&s| {
            let key = slots[s as usize].as_ref().expect("a filled slot").key;
            std::hash::BuildHasher::hash_one(hasher, key)
        });
        self.len += 1;
        i
    }

    /// Bytes of heap the tracker holds, by its own account (the allocator adds its overhead
    /// to each matched text).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Option<Slot>>()
            + self.free.capacity() * 4
            + self.index.capacity() * 5
            + self.match_bytes
    }
}

/// fail2ban's `FailTicket.adjustTime` and `inc`: a failure after the window's span scales the
/// count to the rate seen over the last `findtime`; a window whose last failure is `findtime`
/// older than now is closed (fail2ban's `FailManager.cleanup`), and the failure opens a new
/// one.
fn count(window: &mut Window, failure: &Failure<'_>) {
    let (time, findtime) = (failure.time, failure.findtime);
    if window.last <= failure.now - findtime {
        *window = Window {
            first: time,
            last: time,
            retry: failure.weight.max(1),
            failures: 1,
            matches: None,
        };
        push_match(window, failure.line, failure.maxmatches);
        return;
    }
    if time > window.last {
        if window.first < time - findtime {
            // fail2ban's `int(round(retry / float(span) * findtime))`, in the same floating
            // point operations, rounding halves to even as Python 3 does.
            let span = time - window.first;
            let scaled =
                (f64::from(window.retry) / seconds(span) * seconds(findtime)).round_ties_even();
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "0 ≤ scaled ≤ retry"
            )]
            let scaled = scaled as u32;
            window.retry = scaled;
            window.first = time - findtime;
        }
        window.last = time;
    }
    window.retry = window.retry.saturating_add(failure.weight.max(1));
    window.failures = window.failures.saturating_add(1);
    push_match(window, failure.line, failure.maxmatches);
}

/// Seconds as a float, exact below 2^53 (every time a log holds).
fn seconds(s: i64) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "exact below 2^53")]
    let f = s as f64;
    f
}

/// Appends `line`, keeping the last `max` lines.
fn push_match(window: &mut Window, line: &str, max: u32) {
    if max == 0 {
        window.matches = None;
        return;
    }
    let line = if line.contains(SEP) {
        std::borrow::Cow::Owned(line.replace(SEP, " "))
    } else {
        std::borrow::Cow::Borrowed(line)
    };
    let joined = match window.matches.take() {
        None => line.into_owned(),
        Some(old) => {
            let kept = old.split(SEP).count();
            let skip = (kept + 1).saturating_sub(max as usize);
            let mut rest: &str = &old;
            for _ in 0..skip {
                rest = rest.split_once(SEP).map_or("", |(_, r)| r);
            }
            if skip >= kept {
                line.into_owned()
            } else {
                format!("{rest}{SEP}{line}")
            }
        }
    };
    window.matches = Some(joined.into_boxed_str());
}
