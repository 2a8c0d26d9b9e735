//! What the hand readers (`syslog`, `prefix`, `failed`) need to read bytes as the regular
//! expressions they stand in for read an ASCII line.

/// `\s`, as PCRE2 and the `regex` crate read it on ASCII.
#[must_use]
pub fn is_space(byte: u8) -> bool {
    matches!(byte, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// `\w`, on ASCII.
#[must_use]
pub fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// The end of the run of bytes from `at` for which `keep` holds.
#[must_use]
pub fn run(text: &[u8], at: usize, keep: impl Fn(u8) -> bool) -> usize {
    text[at.min(text.len())..]
        .iter()
        .position(|&b| !keep(b))
        .map_or(text.len(), |n| at + n)
}
