//! Byte tests shared by the literal prefilter and the syslog date reader, which read an
//! ASCII text as the regular expressions they stand in for would.

/// `\w`, on ASCII.
#[must_use]
pub fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Whether two short byte strings are equal, compared a word at a time without a call:
/// the library's comparison costs more to start than such texts (a date's minute, the end
/// of a prefix) take to compare.
#[must_use]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4"));
    match n {
        17.. => a == b,
        8.. => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4.. => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => a.iter().zip(b).all(|(x, y)| x == y),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_byte_strings_compare_as_slices_do() {
        for len in 0..24usize {
            let a: Vec<u8> = (0..len).map(|n| b'a' + u8::try_from(n).unwrap()).collect();
            assert!(super::same_bytes(&a, &a.clone()));
            assert!(!super::same_bytes(&a, &a[..len.saturating_sub(1)]) || len == 0);
            for at in 0..len {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!super::same_bytes(&a, &b), "{len} {at}");
            }
        }
    }
}
