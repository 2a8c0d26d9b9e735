//! `logencoding`: how a line's bytes become text. Pure: bytes in, text out, no I/O.
//!
//! fail2ban decodes each line with the jail's `logencoding` (`auto` meaning the locale's, in
//! practice UTF-8) and, when the bytes are not valid in it, warns and decodes with
//! replacement characters. banxdp keeps that per-line behaviour, but `auto` tries UTF-8 and
//! falls back to Latin-1 for that line alone, so a stray ISO-8859-1 byte keeps the address and
//! the rest of the line intact instead of turning into U+FFFD. No input makes these
//! functions panic.

use std::borrow::Cow;

use super::SourceError;

/// A jail's `logencoding`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// UTF-8, else Latin-1 for a line that is not valid UTF-8 (fail2ban's default `auto`).
    #[default]
    Auto,
    /// UTF-8; invalid sequences become U+FFFD.
    Utf8,
    /// ISO-8859-1: every byte is the code point of the same value.
    Latin1,
    /// ASCII; bytes above 0x7F become U+FFFD.
    Ascii,
}

impl Encoding {
    /// Parses a jail's `logencoding` value (case-insensitive, Python's codec aliases for the
    /// four encodings supported). `jail` names the jail in the error.
    pub fn parse(jail: &str, value: &str) -> Result<Self, SourceError> {
        let name = value.trim().to_ascii_lowercase().replace('_', "-");
        Ok(match name.as_str() {
            "" | "auto" => Self::Auto,
            "utf-8" | "utf8" | "u8" | "utf" => Self::Utf8,
            "latin-1" | "latin1" | "latin" | "l1" | "iso-8859-1" | "iso8859-1" | "8859"
            | "cp819" | "iso-ir-100" => Self::Latin1,
            "ascii" | "us-ascii" | "646" => Self::Ascii,
            _ => {
                return Err(SourceError::Encoding {
                    jail: jail.to_owned(),
                    value: value.to_owned(),
                });
            }
        })
    }

    /// The text of one line (without its newline). Borrows when the bytes are already valid
    /// text in this encoding.
    #[must_use]
    pub fn decode(self, bytes: &[u8]) -> Cow<'_, str> {
        match self {
            Self::Auto => match std::str::from_utf8(bytes) {
                Ok(text) => Cow::Borrowed(text),
                Err(_) => Cow::Owned(latin1(bytes)),
            },
            Self::Utf8 => String::from_utf8_lossy(bytes),
            Self::Latin1 => match std::str::from_utf8(bytes) {
                Ok(text) if bytes.is_ascii() => Cow::Borrowed(text),
                _ => Cow::Owned(latin1(bytes)),
            },
            Self::Ascii => {
                if bytes.is_ascii() {
                    Cow::Borrowed(std::str::from_utf8(bytes).expect("ascii is utf-8"))
                } else {
                    Cow::Owned(
                        bytes
                            .iter()
                            .map(|&b| {
                                if b.is_ascii() {
                                    char::from(b)
                                } else {
                                    '\u{FFFD}'
                                }
                            })
                            .collect(),
                    )
                }
            }
        }
    }
}

/// ISO-8859-1: each byte is the Unicode code point of the same value.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_python_names_and_rejects_others_naming_the_jail() {
        for (value, want) in [
            ("auto", Encoding::Auto),
            ("UTF-8", Encoding::Utf8),
            ("utf8", Encoding::Utf8),
            ("latin-1", Encoding::Latin1),
            ("ISO-8859-1", Encoding::Latin1),
            ("iso8859_1", Encoding::Latin1),
            ("ascii", Encoding::Ascii),
        ] {
            assert_eq!(Encoding::parse("sshd", value).unwrap(), want, "{value}");
        }
        let err = Encoding::parse("sshd", "koi8-r").unwrap_err().to_string();
        assert_eq!(err, "jail `sshd`: unsupported logencoding `koi8-r`");
    }

    #[test]
    fn decodes_each_encoding_and_never_panics_on_bad_bytes() {
        let utf8 = "Failed password for m\u{fc}ller from 192.0.2.1".as_bytes();
        let latin = b"Failed password for m\xfcller from 192.0.2.1";
        let want = "Failed password for m\u{fc}ller from 192.0.2.1";
        assert_eq!(Encoding::Auto.decode(utf8), want);
        assert!(matches!(Encoding::Auto.decode(utf8), Cow::Borrowed(_)));
        assert_eq!(Encoding::Auto.decode(latin), want);
        assert_eq!(Encoding::Latin1.decode(latin), want);
        assert_eq!(
            Encoding::Utf8.decode(latin),
            "Failed password for m\u{FFFD}ller from 192.0.2.1"
        );
        assert_eq!(Encoding::Ascii.decode(b"a\xffb"), "a\u{FFFD}b");
        assert_eq!(
            Encoding::Ascii
                .decode(utf8)
                .chars()
                .filter(|&c| c == '\u{FFFD}')
                .count(),
            2
        );
        // Truncated multi-byte sequences, lone continuation bytes, NULs: text, no panic.
        for bytes in [&b"\xe2\x82"[..], b"\x80\x80", b"\0\0", b"\xf0\x9f\x98", b""] {
            for enc in [
                Encoding::Auto,
                Encoding::Utf8,
                Encoding::Latin1,
                Encoding::Ascii,
            ] {
                let _ = enc.decode(bytes);
            }
        }
    }
}
