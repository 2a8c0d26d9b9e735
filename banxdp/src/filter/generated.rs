//! Lines for randomised tests: each line one choice from every list of pieces, chosen by a
//! fixed xorshift sequence, so that a failure repeats.

/// Texts where a pattern's `<HOST>` goes, for the hand readers' generated lines: the forms
/// the readers read (a dotted quad, plain IPv6) and those they leave to the engines
/// (brackets, a mapped IPv4 address, a name, near-addresses).
pub const ADDRESSES: &[&str] = &[
    "192.0.2.1",
    "192.0.2.1",
    "2001:db8::1",
    "2001:db8:12:92::3",
    "[192.0.2.1]",
    "::ffff:192.0.2.1",
    "host.example",
    "1.2.3.4567",
    "1.2.3",
    "1.2.3.4x",
    "2001:db8::1]",
    "fe80::",
    "a:b",
];

/// Endless lines from `pieces`, starting the sequence at `seed` (not zero).
pub fn lines<'p>(pieces: &'p [&'p [&'p str]], seed: u64) -> impl Iterator<Item = String> + 'p {
    let mut next = xorshift(seed);
    std::iter::repeat_with(move || {
        let mut line = String::new();
        for choices in pieces {
            line.push_str(pick(&mut next, choices));
        }
        line
    })
}

/// The xorshift sequence from `seed` (not zero).
pub fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut seed = seed;
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// One of `choices`, by the next number of `next`.
pub fn pick<T: Copy>(next: &mut impl FnMut() -> u64, choices: &[T]) -> T {
    choices[usize::try_from(next() % choices.len() as u64).expect("an index")]
}

/// Runs a hand reader and the engines on `count` lines from `pieces`: wherever the reader
/// answers (a match and its groups), the JIT and the exact engine must find
/// the same match and groups. Returns how many lines it answered and declined.
pub fn agree_where_answered(
    pattern: &super::pattern::Compiled,
    pieces: &[&[&str]],
    seed: u64,
    count: usize,
    read: impl Fn(&[u8]) -> Option<super::hand::Read>,
) -> (usize, usize) {
    let (mut answered, mut declined) = (0, 0);
    let (mut mine, mut jit, mut exact) = (Vec::new(), Vec::new(), Vec::new());
    for line in lines(pieces, seed).take(count) {
        let Some(found) = read(line.as_bytes()) else {
            declined += 1;
            continue;
        };
        found.groups(pattern.names(), &mut mine);
        let whole = found.whole;
        answered += 1;
        assert!(super::jit::Jit::serves(&line));
        let found = pattern.search_spans_in(&line, true, &mut jit).unwrap();
        assert_eq!(found, Some(whole), "{line:?}");
        assert_eq!(mine, jit, "JIT, {line:?}");
        let found = pattern.search_spans_exact(&line, &mut exact).unwrap();
        assert_eq!(found, Some(whole), "{line:?}");
        assert_eq!(mine, exact, "exact, {line:?}");
    }
    (answered, declined)
}

/// [`agree_where_answered`] for the pattern whose fail2ban text is `source`, compiled as
/// `usedns` warn and no make it (with and without host names), on `count` lines each:
/// the reader must answer more than `least` of them, and decline more than 10,000.
pub fn reader_agrees(
    source: &str,
    pieces: &[&[&str]],
    seed: u64,
    count: usize,
    least: usize,
    read: impl Fn(&[u8]) -> Option<super::hand::Read>,
) {
    for usedns in ["warn", "no"] {
        let pattern = super::pattern::Compiled::new(source, usedns).unwrap();
        assert!(pattern.has_jit());
        let (answered, declined) = agree_where_answered(&pattern, pieces, seed, count, &read);
        assert!(
            answered > least && declined > 10_000,
            "usedns {usedns}: {answered} answered, {declined} declined"
        );
    }
}
