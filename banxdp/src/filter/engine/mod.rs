//! The matching engine: one path for every filter. `pattern` translates fail2ban's
//! expressions and tags (`<HOST>`, `<F-USER>`...) and compiles them (the `regex` crate, or
//! `fancy-regex` with a backtracking limit where a pattern needs it); `jit` runs a pattern
//! that PCRE2 reads as they do through PCRE2's JIT on ASCII lines; `rest` searches a pattern
//! that ends in the rest of the line (a prefregex's `<F-CONTENT>`) by its head alone;
//! `literals` finds the strings a pattern requires, to turn away the lines that lack
//! them in one scan; `matcher` holds a whole filter and tells the host of a match; `ascii`
//! has the byte tests they share.

pub mod ascii;
pub mod jit;
pub mod literals;
pub mod matcher;
pub mod pattern;
pub mod rest;
