//! Lines for randomised tests: each line one choice from every list of pieces, chosen by a
//! fixed xorshift sequence, so that a failure repeats.

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
