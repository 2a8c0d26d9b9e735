//! Lines for randomised tests: each line one choice from every list of pieces, chosen by a
//! fixed xorshift sequence, so that a failure repeats.

/// Endless lines from `pieces`, starting the sequence at `seed` (not zero).
pub fn lines<'p>(pieces: &'p [&'p [&'p str]], seed: u64) -> impl Iterator<Item = String> + 'p {
    let mut seed = seed;
    std::iter::repeat_with(move || {
        let mut line = String::new();
        for choices in pieces {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = usize::try_from(seed % choices.len() as u64).expect("an index");
            line.push_str(choices[at]);
        }
        line
    })
}
