//! The journal jails' readers: one task per jail runs `journalctl` and forwards its entries
//! to the event loop, tagged with the jail and the reader's generation.
//!
//! A reload keeps the reader of a jail whose journal source did not change (same matches,
//! files, directory, encoding), so that no entry is read twice, and replaces the others: a
//! changed jail's new reader resumes after the last entry the loop took from the old one (its
//! cursor), a new jail's reads from now minus `findtime`, as at start. Entries the old reader
//! had sent but the loop had not taken are dropped by their generation: the new reader reads
//! them again after that cursor.

use std::collections::HashMap;

use tokio::{sync::mpsc, task::JoinHandle};

use crate::source::{JournalEntry, JournalSource, JournalSpec};

/// One entry, as a reader sends it: its jail, the reader's generation, the entry.
pub type Tagged = (String, u64, JournalEntry);

/// The running readers, by jail.
pub struct Journals {
    entries: mpsc::Sender<Tagged>,
    running: HashMap<String, Reader>,
    generation: u64,
}

struct Reader {
    /// The spec it was started with.
    spec: JournalSpec,
    generation: u64,
    task: JoinHandle<()>,
    /// The cursor of the last entry the loop took from it.
    cursor: Option<String>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        // Dropping the task's future drops its journalctl, which is killed on drop.
        self.task.abort();
    }
}

/// Whether two specs read the same entries (where they start aside).
fn same_source(a: &JournalSpec, b: &JournalSpec) -> bool {
    let start = |s: &JournalSpec| JournalSpec {
        after_cursor: None,
        since: None,
        ..s.clone()
    };
    start(a) == start(b)
}

impl Journals {
    /// Starts a reader per spec; the receiver gets their entries.
    pub fn start(specs: Vec<JournalSpec>) -> (Self, mpsc::Receiver<Tagged>) {
        let (entries, receiver) = mpsc::channel(1024);
        let mut journals = Self {
            entries,
            running: HashMap::new(),
            generation: 0,
        };
        for spec in specs {
            journals.spawn(spec);
        }
        (journals, receiver)
    }

    /// Whether the loop should read `entry` of `jail` from the reader of `generation`: not
    /// when a reload has replaced that reader since. Notes its cursor.
    pub fn accept(&mut self, jail: &str, generation: u64, entry: &JournalEntry) -> bool {
        match self.running.get_mut(jail) {
            Some(reader) if reader.generation == generation => {
                reader.cursor = Some(entry.cursor.clone());
                true
            }
            _ => false,
        }
    }

    /// After a reload: keeps the readers whose source is unchanged, replaces the others,
    /// stops those of jails that no longer read a journal.
    pub fn reconcile(&mut self, specs: Vec<JournalSpec>) {
        let wanted: Vec<String> = specs.iter().map(|s| s.jail.clone()).collect();
        self.running.retain(|jail, _| {
            let keep = wanted.contains(jail);
            if !keep {
                tracing::info!("jail `{jail}`: no longer reading the journal");
            }
            keep
        });
        for mut spec in specs {
            let cursor = match self.running.get(&spec.jail) {
                Some(reader) if same_source(&reader.spec, &spec) => continue,
                Some(reader) => reader.cursor.clone(),
                None => None,
            };
            if cursor.is_some() {
                spec.after_cursor = cursor;
                spec.since = None;
            }
            self.spawn(spec);
        }
    }

    /// Starts (or replaces) the reader of `spec.jail`.
    fn spawn(&mut self, spec: JournalSpec) {
        let jail = spec.jail.clone();
        self.running.remove(&jail);
        let mut source = match JournalSource::spawn(&spec) {
            Ok(source) => source,
            Err(error) => {
                tracing::error!("{error}; the jail reads nothing");
                return;
            }
        };
        tracing::info!("jail `{jail}`: reading the journal");
        self.generation += 1;
        let generation = self.generation;
        let entries = self.entries.clone();
        let name = jail.clone();
        let task = tokio::spawn(async move {
            loop {
                match source.next().await {
                    Ok(Some(entry)) => {
                        if entries
                            .send((name.clone(), generation, entry))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(None) => {
                        tracing::warn!(
                            "jail `{name}`: journalctl ended; the jail reads nothing more"
                        );
                        return;
                    }
                    Err(error) => {
                        tracing::error!("{error}; the jail reads nothing more");
                        return;
                    }
                }
            }
        });
        self.running.insert(
            jail,
            Reader {
                spec,
                generation,
                task,
                cursor: None,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Encoding;

    fn spec(jail: &str, matches: &[&str]) -> JournalSpec {
        let lines: Vec<String> = matches.iter().map(|m| (*m).to_string()).collect();
        JournalSpec::from_jail(jail, &[], &lines, Encoding::Auto).unwrap()
    }

    #[test]
    fn where_a_reader_starts_does_not_make_its_source_another() {
        let a = spec("sshd", &["_SYSTEMD_UNIT=sshd.service"]);
        let resumed = JournalSpec {
            after_cursor: Some("s=1".into()),
            since: Some(5),
            ..a.clone()
        };
        assert!(same_source(&a, &resumed));
        assert!(!same_source(&a, &spec("sshd", &["_COMM=sshd"])));
        let elsewhere = JournalSpec {
            directory: Some("/var/log/journal/remote".into()),
            ..a.clone()
        };
        assert!(!same_source(&a, &elsewhere));
    }
}
