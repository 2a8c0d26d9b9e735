//! fail2ban's configuration language, read as fail2ban 1.0.2 reads it: INI files with
//! `.conf`/`.local` layering and includes (`ini`, `store`), filters and actions with their
//! `[Definition]`/`[Init]` sections and `<tag>` substitution (`readers`), and jails
//! (`jail`), including the command stream `fail2ban-client -d` prints, so that equality
//! with fail2ban can be tested directly.
//!
//! Pure apart from reading the files it is pointed at (through `store::Files`) and globbing
//! `logpath` for the stream.

pub mod filter;
pub mod ini;
pub mod jail;
pub mod readers;
pub mod store;

pub use filter::{FilterFileError, load_filter};
pub use jail::{Dump, Jail, JailAction, JailError, read_stream};
pub use store::{Disk, Files, Value};
