//! The connections a filter remembers by failure id, as fail2ban's failure-id cache keeps
//! them: each until it expires, and when the cache is full, the oldest go first.
//!
//! Entries live in slots that keep their place until removed (so a [`Slot`] stays valid
//! while its connection is remembered), found by id through a hash table of slots. Each id is
//! hashed once, when it is looked up or remembered; the table rehashes from the hashes kept.
//! The order of arrival is a queue of (order, slot): an entry whose slot has since been
//! emptied, or taken by a later connection, is stale, and told so without a lookup.

use std::collections::VecDeque;

use hashbrown::HashTable;

use crate::filter::pattern::Value;

/// Where a remembered connection is, until it is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot(u32);

#[derive(Clone, Debug)]
struct Entry<T> {
    id: Value,
    hash: u64,
    /// The place of the connection in the order connections were first seen.
    order: u64,
    expires: i64,
    value: T,
}

/// Remembered connections by id (see the module's text).
#[derive(Clone, Debug, Default)]
pub(super) struct Cache<T> {
    slots: Vec<Option<Entry<T>>>,
    /// Empty slots, to be filled before new ones are made.
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    arrivals: VecDeque<(u64, u32)>,
    /// The order the next new connection gets.
    order: u64,
    len: usize,
}

impl<T> Cache<T> {
    fn entry(&self, slot: u32) -> &Entry<T> {
        self.slots[slot as usize]
            .as_ref()
            .expect("a slot in the table is filled")
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Where the connection `id` is, if it is remembered (expired or not).
    pub(super) fn find(&self, id: &str) -> Option<Slot> {
        let hash = std::hash::BuildHasher::hash_one(&self.hasher, id);
        self.index
            .find(hash, |&slot| self.entry(slot).id == id)
            .map(|&slot| Slot(slot))
    }

    /// When the connection at `slot` expires.
    pub(super) fn expires(&self, slot: Slot) -> i64 {
        self.entry(slot.0).expires
    }

    pub(super) fn get_mut(&mut self, slot: Slot) -> &mut T {
        &mut self.slots[slot.0 as usize]
            .as_mut()
            .expect("a remembered connection")
            .value
    }

    /// Forgets the connection at `slot`; its value and when it would have expired.
    pub(super) fn remove(&mut self, slot: Slot) -> (T, i64) {
        let hash = self.entry(slot.0).hash;
        self.index
            .find_entry(hash, |&s| s == slot.0)
            .expect("a remembered connection is in the table")
            .remove();
        let entry = self.slots[slot.0 as usize]
            .take()
            .expect("a remembered connection");
        self.free.push(slot.0);
        self.len -= 1;
        (entry.value, entry.expires)
    }

    /// Forgets the connection remembered first; its value and when it would have expired.
    pub(super) fn pop_oldest(&mut self) -> Option<(T, i64)> {
        while let Some((order, slot)) = self.arrivals.pop_front() {
            if self.live(order, slot) {
                return Some(self.remove(Slot(slot)));
            }
        }
        None
    }

    /// Whether an arrival is still that of the connection in its slot.
    fn live(&self, order: u64, slot: u32) -> bool {
        self.slots[slot as usize]
            .as_ref()
            .is_some_and(|entry| entry.order == order)
    }

    /// Remembers a new connection `id` (not remembered now) until `expires`.
    pub(super) fn insert(&mut self, id: &str, value: T, expires: i64) -> Slot {
        let hash = std::hash::BuildHasher::hash_one(&self.hasher, id);
        let entry = Entry {
            id: Value::from(id),
            hash,
            order: self.order,
            expires,
            value,
        };
        let slot = if let Some(slot) = self.free.pop() {
            self.slots[slot as usize] = Some(entry);
            slot
        } else {
            self.slots.push(Some(entry));
            u32::try_from(self.slots.len() - 1).expect("a few hundred slots")
        };
        let slots = &self.slots;
        self.index.insert_unique(hash, slot, |&s| {
            slots[s as usize].as_ref().expect("filled").hash
        });
        self.arrivals.push_back((self.order, slot));
        self.order += 1;
        self.len += 1;
        // Stale arrivals are dropped now and then, so that the queue stays a few times the
        // size of the cache.
        if self.arrivals.len() > 4 * super::CONNECTIONS {
            let slots = &self.slots;
            self.arrivals.retain(|&(order, slot)| {
                slots[slot as usize]
                    .as_ref()
                    .is_some_and(|entry| entry.order == order)
            });
        }
        Slot(slot)
    }

    /// The order the next new connection gets: how many were remembered.
    #[cfg(test)]
    pub(super) fn arrived(&self) -> u64 {
        self.order
    }

    /// The length of the queue of arrivals, stale ones included.
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.arrivals.len()
    }

    /// Every remembered connection: its id and order.
    #[cfg(test)]
    pub(super) fn ids(&self) -> impl Iterator<Item = (&str, u64)> {
        self.slots
            .iter()
            .flatten()
            .map(|entry| (entry.id.as_str(), entry.order))
    }
}
