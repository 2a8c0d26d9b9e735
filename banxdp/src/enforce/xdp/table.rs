//! One view over the kernel maps that hold entries keyed by address: the hash maps and LPM
//! tries differ in aya's types but not in what banxdp does with them (look up, write, delete,
//! list keys, batch-write).

use std::{
    collections::HashSet,
    hash::Hash,
    os::fd::{AsFd as _, BorrowedFd},
};

use aya::{
    Pod,
    maps::{HashMap, IterableMap as _, LpmTrie, MapData, MapError, lpm_trie::Key},
};

/// A kernel map of `K → V` as banxdp uses it.
pub trait Table<K, V> {
    /// The value at `key`, or `None` when there is none.
    fn lookup(&self, key: &K) -> Result<Option<V>, MapError>;
    fn put(&mut self, key: &K, value: &V) -> Result<(), MapError>;
    /// Removes `key`; a key that is not there is not an error.
    fn delete(&mut self, key: &K) -> Result<(), MapError>;
    /// Every key, collected before returning so that callers may delete while they walk.
    fn all_keys(&self) -> Result<Vec<K>, MapError>;
    fn fd(&self) -> BorrowedFd<'_>;
}

fn absent<V>(result: Result<V, MapError>) -> Result<Option<V>, MapError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(MapError::KeyNotFound) => Ok(None),
        Err(error) => Err(error),
    }
}

impl<K: Pod, V: Pod> Table<K, V> for HashMap<MapData, K, V> {
    fn lookup(&self, key: &K) -> Result<Option<V>, MapError> {
        absent(self.get(key, 0))
    }
    fn put(&mut self, key: &K, value: &V) -> Result<(), MapError> {
        self.insert(key, value, 0)
    }
    fn delete(&mut self, key: &K) -> Result<(), MapError> {
        absent(self.remove(key)).map(drop)
    }
    fn all_keys(&self) -> Result<Vec<K>, MapError> {
        self.keys().collect()
    }
    fn fd(&self) -> BorrowedFd<'_> {
        self.map().fd().as_fd()
    }
}

/// An LPM trie with the set of its keys kept beside it: the kernel's lookup is a
/// longest-prefix match, which cannot tell "this /24 is stored" from "a /16 covering it is".
/// Tries hold few entries (CIDR bans, the allow list), so the set is small.
pub struct Trie<K, V> {
    map: LpmTrie<MapData, K, V>,
    present: HashSet<(u32, K)>,
}

impl<K: Pod + Eq + Hash, V: Pod> Trie<K, V> {
    pub fn new(map: LpmTrie<MapData, K, V>) -> Result<Self, MapError> {
        let present = map
            .keys()
            .map(|key| key.map(|key| (key.prefix_len(), key.data())))
            .collect::<Result<_, _>>()?;
        Ok(Self { map, present })
    }

    /// How many entries the trie holds.
    pub fn len(&self) -> usize {
        self.present.len()
    }
}

impl<K: Pod + Eq + Hash, V: Pod> Table<Key<K>, V> for Trie<K, V> {
    fn lookup(&self, key: &Key<K>) -> Result<Option<V>, MapError> {
        if !self.present.contains(&(key.prefix_len(), key.data())) {
            return Ok(None);
        }
        // The stored entry is the longest prefix that can match a key of its own length.
        absent(self.map.get(key, 0))
    }
    fn put(&mut self, key: &Key<K>, value: &V) -> Result<(), MapError> {
        self.map.insert(key, value, 0)?;
        self.present.insert((key.prefix_len(), key.data()));
        Ok(())
    }
    fn delete(&mut self, key: &Key<K>) -> Result<(), MapError> {
        absent(self.map.remove(key))?;
        self.present.remove(&(key.prefix_len(), key.data()));
        Ok(())
    }
    fn all_keys(&self) -> Result<Vec<Key<K>>, MapError> {
        Ok(self
            .present
            .iter()
            .map(|&(prefix, data)| Key::new(prefix, data))
            .collect())
    }
    fn fd(&self) -> BorrowedFd<'_> {
        self.map.map().fd().as_fd()
    }
}
