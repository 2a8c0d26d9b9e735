//! One INI file, read the way fail2ban's Python `ConfigParser` reads it, with the file and
//! line of every value kept for error messages.
//!
//! The rules (those of `configparser.ConfigParser` with `inline_comment_prefixes=";"`):
//! section headers are `[name]` (case kept; `DEFAULT` is the defaults section); option
//! names are lower-cased; `=` or `:` separates name and value, both stripped; a line that
//! starts with `#` or `;` after its indentation is a comment, and so is `;` preceded by white
//! space anywhere on a line; a line indented deeper than the option line above continues its
//! value (joined with `\n`, each part stripped); empty lines inside a value are kept, trailing
//! ones dropped. A section or option repeated within one file is an error, as in Python's
//! strict mode. Pure: text in, sections out.

use std::{path::Path, sync::Arc};

use indexmap::IndexMap;

/// Where a value was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<Path>,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// An option's raw (not interpolated) value and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Raw {
    pub value: String,
    pub origin: Origin,
}

/// Options in the order they were written (a later write keeps the first position).
pub type Options = IndexMap<String, Raw>;

/// A parsed file: its `[DEFAULT]` options and its other sections in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IniFile {
    pub defaults: Options,
    pub sections: IndexMap<String, Options>,
}

/// A line that is not INI.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IniError {
    #[error("{origin}: `{line}` comes before any [section] header")]
    NoSection { origin: Origin, line: String },
    #[error("{origin}: `{line}` is neither a [section] header nor `name = value`")]
    Syntax { origin: Origin, line: String },
    #[error("{origin}: section [{section}] appears twice in this file")]
    DuplicateSection { origin: Origin, section: String },
    #[error("{origin}: option `{option}` appears twice in section [{section}] of this file")]
    DuplicateOption {
        origin: Origin,
        section: String,
        option: String,
    },
}

/// The part of `line` before a comment, or `None` when the whole line is a comment.
fn strip_comment(line: &str) -> Option<&str> {
    let trimmed = line.trim();
    if trimmed.starts_with('#') || trimmed.starts_with(';') {
        return None;
    }
    // `;` starts an inline comment at the start of the line or after white space.
    let bytes = line.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b';'
            && (i == 0
                || line[..i]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_whitespace))
        {
            return Some(&line[..i]);
        }
    }
    Some(line)
}

/// Python's `str.isspace` boundary for indentation: leading white space.
fn indentation(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// `name = value` or `name: value` (the first `=` or `:` separates them): the lower-cased
/// name and the stripped value.
fn option_line(line: &str, origin: &Origin) -> Result<(String, String), IniError> {
    let syntax = || IniError::Syntax {
        origin: origin.clone(),
        line: line.to_string(),
    };
    let at = line.find(['=', ':']).ok_or_else(syntax)?;
    let name = line[..at].trim_end().to_lowercase();
    if name.is_empty() {
        return Err(syntax());
    }
    Ok((name, line[at + 1..].trim().to_string()))
}

/// Parses the text of one file.
pub fn parse(text: &str, file: &Arc<Path>) -> Result<IniFile, IniError> {
    let mut out = IniFile::default();
    // The section being filled: None before the first header, Some(None) for DEFAULT.
    let mut current: Option<Option<String>> = None;
    let mut seen_sections: Vec<String> = Vec::new();
    let mut seen_options: Vec<(Option<String>, String)> = Vec::new();
    // The option whose value may continue, its parts, and the indentation of its line.
    let mut open: Option<(String, Vec<String>)> = None;
    let mut indent_level = usize::MAX;
    let origin = |line: usize| Origin {
        file: Arc::clone(file),
        line,
    };

    let flush = |out: &mut IniFile,
                 current: &Option<Option<String>>,
                 open: &mut Option<(String, Vec<String>)>| {
        if let (Some(section), Some((name, parts))) = (current, open.take()) {
            let target = match section {
                None => &mut out.defaults,
                Some(name) => out
                    .sections
                    .get_mut(name)
                    .expect("section created on its header"),
            };
            if let Some(raw) = target.get_mut(&name) {
                raw.value = parts.join("\n").trim_end().to_string();
            }
        }
    };

    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let content = strip_comment(line);
        let value = content.unwrap_or("").trim();
        if value.is_empty() {
            // An empty line (not a comment line) inside a value is kept.
            if content.is_some() {
                if let Some((_, parts)) = open.as_mut() {
                    parts.push(String::new());
                }
            }
            continue;
        }
        let indent = indentation(line);
        if let Some((_, parts)) = open.as_mut().filter(|_| indent > indent_level) {
            parts.push(value.to_string());
            continue;
        }
        flush(&mut out, &current, &mut open);
        indent_level = indent;
        if let Some(header) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            if !header.is_empty() {
                if header == "DEFAULT" {
                    current = Some(None);
                    continue;
                }
                if seen_sections.iter().any(|s| s == header) {
                    return Err(IniError::DuplicateSection {
                        origin: origin(number),
                        section: header.to_string(),
                    });
                }
                seen_sections.push(header.to_string());
                out.sections.entry(header.to_string()).or_default();
                current = Some(Some(header.to_string()));
                continue;
            }
        }
        let Some(section) = &current else {
            return Err(IniError::NoSection {
                origin: origin(number),
                line: value.to_string(),
            });
        };
        let (name, raw) = option_line(value, &origin(number))?;
        let key = (section.clone(), name.clone());
        if seen_options.contains(&key) {
            return Err(IniError::DuplicateOption {
                origin: origin(number),
                section: section.clone().unwrap_or_else(|| "DEFAULT".into()),
                option: name,
            });
        }
        seen_options.push(key);
        let target = match section {
            None => &mut out.defaults,
            Some(name) => out.sections.get_mut(name).expect("created on its header"),
        };
        target.insert(
            name.clone(),
            Raw {
                value: raw.clone(),
                origin: origin(number),
            },
        );
        open = Some((name, vec![raw]));
    }
    flush(&mut out, &current, &mut open);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Arc<Path> {
        Arc::from(Path::new("jail.local"))
    }

    fn get<'a>(ini: &'a IniFile, section: &str, option: &str) -> &'a str {
        &ini.sections[section][option].value
    }

    #[test]
    fn sections_options_and_defaults() {
        let ini = parse(
            "[DEFAULT]\nbantime = 10m\n\n[sshd]\nEnabled = true\nport: ssh\n",
            &file(),
        )
        .unwrap();
        assert_eq!(ini.defaults["bantime"].value, "10m");
        assert_eq!(get(&ini, "sshd", "enabled"), "true");
        assert_eq!(get(&ini, "sshd", "port"), "ssh");
        assert_eq!(ini.sections["sshd"]["port"].origin.line, 6);
    }

    #[test]
    fn continuation_lines_and_empty_lines_inside_values() {
        let text = "[Definition]\nfailregex = ^a$\n            ^b$\n\n            ^c$\n\nignoreregex =\nnext = x\n";
        let ini = parse(text, &file()).unwrap();
        assert_eq!(get(&ini, "Definition", "failregex"), "^a$\n^b$\n\n^c$");
        assert_eq!(get(&ini, "Definition", "ignoreregex"), "");
        assert_eq!(get(&ini, "Definition", "next"), "x");
    }

    #[test]
    fn comments_full_line_and_inline() {
        let text =
            "# top\n[a]\n; note\nx = 1 ; inline\ny = a;b\nz = 2 # not a comment\n  # inside\n";
        let ini = parse(text, &file()).unwrap();
        assert_eq!(get(&ini, "a", "x"), "1");
        assert_eq!(get(&ini, "a", "y"), "a;b");
        assert_eq!(get(&ini, "a", "z"), "2 # not a comment");
    }

    #[test]
    fn the_first_separator_splits() {
        let ini = parse("[a]\nfailregex = ^x: <HOST>=y\n", &file()).unwrap();
        assert_eq!(get(&ini, "a", "failregex"), "^x: <HOST>=y");
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse("x = 1\n", &file()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "jail.local:1: `x = 1` comes before any [section] header"
        );
        let e = parse("[a]\n[]\n", &file()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "jail.local:2: `[]` is neither a [section] header nor `name = value`"
        );
        let e = parse("[a]\nx = 1\nx = 2\n", &file()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("jail.local:3: option `x` appears twice"),
            "{e}"
        );
        let e = parse("[a]\n[b]\n[a]\n", &file()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("jail.local:3: section [a] appears twice"),
            "{e}"
        );
        let e = parse("[a]\njust words\n", &file()).unwrap_err();
        assert!(matches!(e, IniError::Syntax { .. }));
    }
}
