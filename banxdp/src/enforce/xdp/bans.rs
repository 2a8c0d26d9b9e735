//! What goes into which map: bans (exact addresses in hash maps, networks in LPM tries),
//! jails (mask bits, port scopes, shadow mode), the allow list, and expiry.
//!
//! Invariants kept here: a map value's `jails` mask is never empty (an entry whose last jail
//! goes is deleted); its `expires_ns` is the latest expiry among its jails (0 if any is
//! permanent); the `HAS_*` settings flags are set before a trie's first entry is written and
//! cleared after its last is removed, so the program never skips a non-empty trie.

use std::{
    collections::{HashMap as StdHashMap, HashSet},
    net::IpAddr,
};

use aya::maps::{HashMap, LpmTrie, MapData, lpm_trie::Key};
use banxdp_common::{
    Ban as BanValue, HAS_ALLOW_V4, HAS_ALLOW_V6, HAS_CIDR_V4, HAS_CIDR_V6, JAIL_NAME_LEN, JailSlot,
    MAP_ALLOW_V4, MAP_ALLOW_V6, MAP_BANS_V4, MAP_BANS_V6, MAP_CIDR_V4, MAP_CIDR_V6, MAP_JAILS,
    MAP_PORT_JAILS, MAP_SETTINGS, MAP_SETTINGS_NOW, MAX_JAILS, PortKey,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{
    Maps, XdpEnforcer, XdpError, map_err,
    sys::{self, Clocks},
    table::Table,
};
use crate::enforce::{ActiveBan, Ban, Enforcer, Error, Expiry, JailScope, PortScope};

/// Where a target lives in the maps.
#[derive(Clone, Copy)]
enum Place {
    V4([u8; 4]),
    V6([u8; 16]),
    CidrV4(u32, [u8; 4]),
    CidrV6(u32, [u8; 16]),
}

/// How every backend normalises a target (host bits cleared, IPv4-mapped IPv6 as IPv4).
pub use crate::enforce::book::normalize;

fn place(net: IpNet) -> Place {
    match normalize(net) {
        IpNet::V4(n) if n.prefix_len() == 32 => Place::V4(n.addr().octets()),
        IpNet::V4(n) => Place::CidrV4(u32::from(n.prefix_len()), n.addr().octets()),
        IpNet::V6(n) if n.prefix_len() == 128 => Place::V6(n.addr().octets()),
        IpNet::V6(n) => Place::CidrV6(u32::from(n.prefix_len()), n.addr().octets()),
    }
}

fn net_of(addr: IpAddr, prefix: u32) -> IpNet {
    let prefix = u8::try_from(prefix).unwrap_or(u8::MAX);
    match addr {
        IpAddr::V4(a) => IpNet::V4(Ipv4Net::new(a, prefix.min(32)).expect("clamped")),
        IpAddr::V6(a) => IpNet::V6(Ipv6Net::new(a, prefix.min(128)).expect("clamped")),
    }
}

fn expiry_ns(expiry: Expiry, clocks: &Clocks) -> u64 {
    match expiry {
        Expiry::Never => 0,
        Expiry::At(at) => clocks.boot_ns(at),
    }
}

/// The later of two expiries, where 0 (permanent) is the latest.
fn later(a: u64, b: u64) -> u64 {
    if a == 0 || b == 0 { 0 } else { a.max(b) }
}

/// Runs `$body` with `$table` bound to the map of `$place` and `$key` to its key there.
macro_rules! with_table {
    ($maps:expr, $place:expr, |$table:ident, $key:ident, $name:ident| $body:expr) => {
        match $place {
            Place::V4(k) => {
                let ($table, $key, $name) = (&mut $maps.bans_v4, k, MAP_BANS_V4);
                $body
            }
            Place::V6(k) => {
                let ($table, $key, $name) = (&mut $maps.bans_v6, k, MAP_BANS_V6);
                $body
            }
            Place::CidrV4(p, k) => {
                let ($table, $key, $name) = (&mut $maps.cidr_v4, Key::new(p, k), MAP_CIDR_V4);
                $body
            }
            Place::CidrV6(p, k) => {
                let ($table, $key, $name) = (&mut $maps.cidr_v6, Key::new(p, k), MAP_CIDR_V6);
                $body
            }
        }
    };
}

impl XdpEnforcer {
    fn slot_of(&self, jail: &str) -> Result<u8, Error> {
        self.jails
            .iter()
            .position(|name| name.as_deref() == Some(jail))
            .map(|slot| u8::try_from(slot).expect("64 slots"))
            .ok_or_else(|| Error::UnknownJail(jail.to_string()))
    }

    fn jail_names(&self, mask: u64) -> Vec<String> {
        (0..MAX_JAILS)
            .filter(|bit| mask & (1 << bit) != 0)
            .map(|bit| {
                self.jails[bit as usize]
                    .clone()
                    .unwrap_or_else(|| format!("#{bit}"))
            })
            .collect()
    }

    /// Writes the settings to the `SETTINGS` map (user space's record, and what a program
    /// from before `SETTINGS_NOW` reads), then to the global the program reads.
    fn store_settings(&mut self) -> Result<(), XdpError> {
        self.maps
            .settings
            .set(0, self.settings, 0)
            .map_err(map_err(MAP_SETTINGS))?;
        self.publish_settings()
    }

    /// Writes the settings to the program's `SETTINGS_NOW` (nothing for an older object).
    pub(super) fn publish_settings(&mut self) -> Result<(), XdpError> {
        let settings = self.settings;
        match &mut self.maps.settings_now {
            Some(now) => now.set(0, settings, 0).map_err(map_err(MAP_SETTINGS_NOW)),
            None => Ok(()),
        }
    }

    /// Sets or clears a `HAS_*` flag, writing the settings only when it changes.
    fn set_flag(&mut self, flag: u32, on: bool) -> Result<(), XdpError> {
        let flags = if on {
            self.settings.flags | flag
        } else {
            self.settings.flags & !flag
        };
        if flags != self.settings.flags {
            self.settings.flags = flags;
            self.store_settings()?;
        }
        Ok(())
    }

    /// The value `slot` makes of `old` when it bans `target` until `ns`.
    fn merge(&mut self, target: IpNet, old: Option<BanValue>, slot: u8, ns: u64) -> BanValue {
        let bit = 1u64 << slot;
        let Some(old) = old else {
            self.shared.remove(&target);
            return BanValue {
                expires_ns: ns,
                jails: bit,
                ..BanValue::default()
            };
        };
        if old.jails & !bit == 0 {
            // Only this jail bans it: a new ban sets a new expiry (bantime.increment may
            // have lengthened it).
            self.shared.remove(&target);
            return BanValue {
                expires_ns: ns,
                jails: bit,
                ..old
            };
        }
        let others = self.shared.entry(target).or_insert_with(|| {
            (0..64u8)
                .filter(|b| old.jails & (1 << b) != 0)
                .map(|b| (b, old.expires_ns))
                .collect()
        });
        others.retain(|(b, _)| *b != slot);
        others.push((slot, ns));
        let expires_ns = others.iter().fold(1, |acc, (_, e)| later(acc, *e));
        BanValue {
            expires_ns,
            jails: old.jails | bit,
            ..old
        }
    }

    /// Removes `bit`'s ban from the value at `target`, deleting the entry with its last jail.
    fn lift(&mut self, target: IpNet, bit: u64) -> Result<(), XdpError> {
        let place = place(target);
        let old = with_table!(self.maps, place, |table, key, name| table
            .lookup(&key)
            .map_err(map_err(name))?);
        let Some(old) = old else { return Ok(()) };
        if old.jails & bit == 0 {
            return Ok(());
        }
        let jails = old.jails & !bit;
        if jails == 0 {
            self.shared.remove(&target);
            with_table!(self.maps, place, |table, key, name| table
                .delete(&key)
                .map_err(map_err(name))?);
            return self.update_trie_flags();
        }
        let mut expires_ns = old.expires_ns;
        if let Some(others) = self.shared.get_mut(&target) {
            others.retain(|(b, _)| bit & (1 << b) == 0);
            expires_ns = others.iter().fold(1, |acc, (_, e)| later(acc, *e));
            if others.len() <= 1 {
                self.shared.remove(&target);
            }
        }
        let value = BanValue {
            expires_ns,
            jails,
            ..old
        };
        with_table!(self.maps, place, |table, key, name| table
            .put(&key, &value)
            .map_err(map_err(name)))
    }

    fn update_trie_flags(&mut self) -> Result<(), XdpError> {
        let (v4, v6) = (self.maps.cidr_v4.len() > 0, self.maps.cidr_v6.len() > 0);
        self.set_flag(HAS_CIDR_V4, v4)?;
        self.set_flag(HAS_CIDR_V6, v6)
    }

    /// Every entry of one ban map as `(target, value)`.
    fn entries<K, T: Table<K, BanValue>>(
        table: &T,
        name: &'static str,
        target: impl Fn(&K) -> IpNet,
    ) -> Result<Vec<(IpNet, BanValue)>, XdpError> {
        let mut out = Vec::new();
        for key in table.all_keys().map_err(map_err(name))? {
            if let Some(value) = table.lookup(&key).map_err(map_err(name))? {
                out.push((target(&key), value));
            }
        }
        Ok(out)
    }

    /// Every entry of an exact-address map, read in batches.
    fn exact_entries<K: aya::Pod + Copy + Default>(
        table: &HashMap<MapData, K, BanValue>,
        target: impl Fn(K) -> IpNet,
        each: &mut dyn FnMut(IpNet, BanValue),
    ) -> Result<(), XdpError> {
        sys::lookup_batch::<K, BanValue>(table.fd(), 4096, |keys, values| {
            for (key, value) in keys.iter().zip(values) {
                each(target(*key), *value);
            }
        })
        .map_err(|source| XdpError::Syscall {
            call: "BPF_MAP_LOOKUP_BATCH",
            source,
        })
    }

    /// Every entry of the ban maps, handed to `each` as read (exact maps in batches).
    fn each_entry(&self, each: &mut dyn FnMut(IpNet, BanValue)) -> Result<(), XdpError> {
        let m = &self.maps;
        Self::exact_entries(&m.bans_v4, |k: [u8; 4]| net_of(k.into(), 32), each)?;
        Self::exact_entries(&m.bans_v6, |k: [u8; 16]| net_of(k.into(), 128), each)?;
        let mut tries = Self::entries(&m.cidr_v4, MAP_CIDR_V4, |k| {
            net_of(k.data().into(), k.prefix_len())
        })?;
        tries.extend(Self::entries(&m.cidr_v6, MAP_CIDR_V6, |k| {
            net_of(k.data().into(), k.prefix_len())
        })?);
        for (target, value) in tries {
            each(target, value);
        }
        Ok(())
    }

    /// A map value as an [`ActiveBan`].
    fn active_ban(&self, target: IpNet, value: BanValue, clocks: &Clocks) -> ActiveBan {
        ActiveBan {
            target,
            jails: self.jail_names(value.jails),
            expiry: match value.expires_ns {
                0 => Expiry::Never,
                ns => Expiry::At(clocks.wall_time(ns)),
            },
            drops: Some(value.drops),
            shadow_hits: Some(value.shadow_hits),
        }
    }

    fn all_entries(&self) -> Result<Vec<(IpNet, BanValue)>, XdpError> {
        let m = &self.maps;
        let mut all = Vec::new();
        let mut push = |target, value| all.push((target, value));
        Self::exact_entries(&m.bans_v4, |k: [u8; 4]| net_of(k.into(), 32), &mut push)?;
        Self::exact_entries(&m.bans_v6, |k: [u8; 16]| net_of(k.into(), 128), &mut push)?;
        all.extend(Self::entries(&m.cidr_v4, MAP_CIDR_V4, |k| {
            net_of(k.data().into(), k.prefix_len())
        })?);
        all.extend(Self::entries(&m.cidr_v6, MAP_CIDR_V6, |k| {
            net_of(k.data().into(), k.prefix_len())
        })?);
        Ok(all)
    }

    /// Sets `bit` in the port map for exactly the keys in `wanted`, clearing it elsewhere.
    fn set_port_bits(&mut self, bit: u64, wanted: &HashSet<PortKey>) -> Result<(), XdpError> {
        let table = &mut self.maps.port_jails;
        let mut present = HashSet::new();
        for key in table.all_keys().map_err(map_err(MAP_PORT_JAILS))? {
            let Some(mask) = table.lookup(&key).map_err(map_err(MAP_PORT_JAILS))? else {
                continue;
            };
            present.insert(key);
            let want = wanted.contains(&key);
            let mask_now = if want { mask | bit } else { mask & !bit };
            if mask_now == mask {
                continue;
            }
            if mask_now == 0 {
                table.delete(&key).map_err(map_err(MAP_PORT_JAILS))?;
            } else {
                table
                    .put(&key, &mask_now)
                    .map_err(map_err(MAP_PORT_JAILS))?;
            }
        }
        let new: Vec<PortKey> = wanted.difference(&present).copied().collect();
        let values = vec![bit; new.len()];
        sys::update_batch(table.fd(), &new, &values).map_err(|stop| XdpError::Syscall {
            call: "BPF_MAP_UPDATE_BATCH",
            source: stop.source,
        })
    }

    fn write_jail_slot(&mut self, slot: u8, name: Option<&str>) -> Result<(), XdpError> {
        let mut entry = JailSlot::default();
        if let Some(name) = name {
            entry.used = 1;
            entry.name_len = u32::try_from(name.len()).expect("checked length");
            entry.name[..name.len()].copy_from_slice(name.as_bytes());
        }
        self.maps
            .jails
            .set(u32::from(slot), entry, 0)
            .map_err(map_err(MAP_JAILS))
    }

    /// Writes the bans of one exact-address map: merged values, in one batch. The current
    /// value of each key is looked up so that other jails' bans and the counters survive,
    /// except when the caller knows the keys are absent (`absent`, the start-up restore) or
    /// the map is empty, when there is none to find.
    fn ban_exact<K: Copy + Eq + std::hash::Hash + aya::Pod>(
        &mut self,
        pending: &[(K, IpNet, u8, u64)],
        select: fn(&mut Maps) -> &mut HashMap<MapData, K, BanValue>,
        name: &'static str,
        absent: bool,
    ) -> Result<(), XdpError> {
        if pending.is_empty() {
            return Ok(());
        }
        let empty = absent || select(&mut self.maps).keys().next().is_none();
        let mut merged: StdHashMap<K, BanValue> = StdHashMap::with_capacity(pending.len());
        let mut order = Vec::with_capacity(pending.len());
        for &(key, target, slot, ns) in pending {
            let old = match merged.get(&key) {
                Some(value) => Some(*value),
                None if empty => None,
                None => select(&mut self.maps).lookup(&key).map_err(map_err(name))?,
            };
            let value = self.merge(target, old, slot, ns);
            if merged.insert(key, value).is_none() {
                order.push(key);
            }
        }
        let values: Vec<BanValue> = order.iter().map(|k| merged[k]).collect();
        let table = select(&mut self.maps);
        sys::update_batch(table.fd(), &order, &values).map_err(|stop| XdpError::Syscall {
            call: "BPF_MAP_UPDATE_BATCH",
            source: stop.source,
        })
    }

    /// `ban_many` (`absent`: `ban_many_new`, whose exact targets are not looked up).
    fn ban_batch(&mut self, bans: &[Ban], absent: bool) -> Result<(), Error> {
        self.set_clock()?;
        let clocks = Clocks::now();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for ban in bans {
            let slot = self.slot_of(&ban.jail)?;
            let target = normalize(ban.target);
            let ns = expiry_ns(ban.expiry, &clocks);
            match place(target) {
                Place::V4(k) => v4.push((k, target, slot, ns)),
                Place::V6(k) => v6.push((k, target, slot, ns)),
                cidr @ (Place::CidrV4(..) | Place::CidrV6(..)) => {
                    // Networks are few; one update each, flag first.
                    if matches!(cidr, Place::CidrV4(..)) {
                        self.set_flag(HAS_CIDR_V4, true)?;
                    } else {
                        self.set_flag(HAS_CIDR_V6, true)?;
                    }
                    let old =
                        with_table!(self.maps, cidr, |table, key, name| table
                            .lookup(&key)
                            .map_err(map_err(name))?);
                    let value = self.merge(target, old, slot, ns);
                    with_table!(self.maps, cidr, |table, key, name| table
                        .put(&key, &value)
                        .map_err(map_err(name))?);
                }
            }
        }
        self.ban_exact(&v4, |m| &mut m.bans_v4, MAP_BANS_V4, absent)?;
        self.ban_exact(&v6, |m| &mut m.bans_v6, MAP_BANS_V6, absent)?;
        Ok(())
    }
}

impl Enforcer for XdpEnforcer {
    fn name(&self) -> &'static str {
        "xdp"
    }

    fn describe(&self) -> String {
        let on: Vec<String> = self
            .attachments()
            .iter()
            .map(|a| format!("{} on {}", a.mode.as_str(), a.interface))
            .collect();
        format!("xdp: {}", on.join(", "))
    }

    fn counters(&self) -> Result<Vec<super::InterfaceCounters>, Error> {
        Ok(XdpEnforcer::counters(self)?)
    }

    fn detach(self: Box<Self>) -> Result<(), Error> {
        Ok(XdpEnforcer::detach(*self)?)
    }

    fn take_over(&mut self) -> Result<(), Error> {
        Ok(XdpEnforcer::take_over(self)?)
    }

    fn tidy(&mut self) -> Result<(), Error> {
        Ok(self.set_clock()?)
    }

    fn add_jail(&mut self, jail: &JailScope) -> Result<(), Error> {
        if jail.name.len() > JAIL_NAME_LEN {
            return Err(Error::JailNameTooLong {
                name: jail.name.clone(),
                max: JAIL_NAME_LEN,
            });
        }
        let slot =
            if let Ok(slot) = self.slot_of(&jail.name) {
                slot
            } else {
                let free = self.jails.iter().position(Option::is_none).ok_or_else(|| {
                    Error::TooManyJails {
                        name: jail.name.clone(),
                        max: MAX_JAILS,
                    }
                })?;
                let slot = u8::try_from(free).expect("64 slots");
                self.write_jail_slot(slot, Some(&jail.name))?;
                self.jails[free] = Some(jail.name.clone());
                slot
            };
        let bit = 1u64 << slot;
        let wanted: HashSet<PortKey> = match &jail.ports {
            PortScope::All => HashSet::new(),
            scope if scope.is_empty() => {
                return Err(Error::EmptyPortScope {
                    jail: jail.name.clone(),
                });
            }
            scope => scope
                .per_protocol()
                .unwrap_or_default()
                .into_iter()
                .flat_map(|p| {
                    p.ranges
                        .into_iter()
                        .flat_map(move |r| r.map(move |port| PortKey::new(p.protocol, port)))
                })
                .collect(),
        };
        self.set_port_bits(bit, &wanted)?;
        let mut settings = self.settings;
        settings.allports = if matches!(jail.ports, PortScope::All) {
            settings.allports | bit
        } else {
            settings.allports & !bit
        };
        settings.shadow = if jail.shadow {
            settings.shadow | bit
        } else {
            settings.shadow & !bit
        };
        if settings != self.settings {
            self.settings = settings;
            self.store_settings()?;
        }
        Ok(())
    }

    fn remove_jail(&mut self, name: &str) -> Result<(), Error> {
        let slot = self.slot_of(name)?;
        let bit = 1u64 << slot;
        for (target, value) in self.all_entries()? {
            if value.jails & bit != 0 {
                self.lift(target, bit)?;
            }
        }
        self.set_port_bits(bit, &HashSet::new())?;
        self.settings.allports &= !bit;
        self.settings.shadow &= !bit;
        self.store_settings()?;
        self.write_jail_slot(slot, None)?;
        self.jails[usize::from(slot)] = None;
        Ok(())
    }

    fn ban_many(&mut self, bans: &[Ban]) -> Result<(), Error> {
        self.ban_batch(bans, false)
    }

    fn ban_many_new(&mut self, bans: &[Ban]) -> Result<(), Error> {
        self.ban_batch(bans, true)
    }

    fn unban(&mut self, jail: &str, target: IpNet) -> Result<(), Error> {
        self.set_clock()?;
        let slot = self.slot_of(jail)?;
        Ok(self.lift(normalize(target), 1 << slot)?)
    }

    fn set_allowed(&mut self, nets: &[IpNet]) -> Result<(), Error> {
        let mut want_v4 = HashSet::new();
        let mut want_v6 = HashSet::new();
        for net in nets {
            match normalize(*net) {
                IpNet::V4(n) => want_v4.insert((u32::from(n.prefix_len()), n.addr().octets())),
                IpNet::V6(n) => want_v6.insert((u32::from(n.prefix_len()), n.addr().octets())),
            };
        }
        sync_allow(
            self,
            &want_v4,
            HAS_ALLOW_V4,
            |m| &mut m.allow_v4,
            MAP_ALLOW_V4,
        )?;
        sync_allow(
            self,
            &want_v6,
            HAS_ALLOW_V6,
            |m| &mut m.allow_v6,
            MAP_ALLOW_V6,
        )?;
        Ok(())
    }

    fn active(&self) -> Result<Vec<ActiveBan>, Error> {
        let clocks = Clocks::now();
        Ok(self
            .all_entries()?
            .into_iter()
            .map(|(target, value)| self.active_ban(target, value, &clocks))
            .collect())
    }

    fn each_active(&self, each: &mut dyn FnMut(ActiveBan)) -> Result<(), Error> {
        let clocks = Clocks::now();
        Ok(self.each_entry(&mut |target, value| {
            each(self.active_ban(target, value, &clocks));
        })?)
    }

    fn remove_expired(&mut self) -> Result<usize, Error> {
        self.set_clock()?;
        let now = u64::try_from(sys::boottime().as_nanos()).unwrap_or(u64::MAX);
        let mut removed = 0;
        // Jails whose part of a shared ban has ended, while others still ban the target.
        let ended: Vec<(IpNet, u64)> = self
            .shared
            .iter()
            .flat_map(|(target, jails)| {
                jails
                    .iter()
                    .filter(|(_, e)| *e != 0 && *e <= now)
                    .map(|(slot, _)| (*target, 1u64 << slot))
            })
            .collect();
        for (target, bit) in ended {
            self.lift(target, bit)?;
        }
        for (target, value) in self.all_entries()? {
            if value.expires_ns != 0 && value.expires_ns <= now {
                self.shared.remove(&target);
                with_table!(self.maps, place(target), |table, key, name| table
                    .delete(&key)
                    .map_err(map_err(name))?);
                removed += 1;
            }
        }
        self.update_trie_flags()?;
        Ok(removed)
    }
}

/// Makes an allow trie hold exactly `want`.
fn sync_allow<K: aya::Pod + Eq + std::hash::Hash>(
    enforcer: &mut XdpEnforcer,
    want: &HashSet<(u32, K)>,
    flag: u32,
    select: fn(&mut Maps) -> &mut super::Trie<K, u32>,
    name: &'static str,
) -> Result<(), XdpError> {
    if !want.is_empty() {
        enforcer.set_flag(flag, true)?;
    }
    let trie = select(&mut enforcer.maps);
    for key in trie.all_keys().map_err(map_err(name))? {
        if !want.contains(&(key.prefix_len(), key.data())) {
            trie.delete(&key).map_err(map_err(name))?;
        }
    }
    for &(prefix, data) in want {
        trie.put(&Key::new(prefix, data), &1)
            .map_err(map_err(name))?;
    }
    if want.is_empty() {
        enforcer.set_flag(flag, false)?;
    }
    Ok(())
}

/// Copies the entries of a pinned map whose capacity changed into its new map.
pub(super) fn copy_entries(
    maps: &mut Maps,
    name: &'static str,
    old: MapData,
) -> Result<(), XdpError> {
    fn hash<K: aya::Pod, V: aya::Pod>(
        old: MapData,
        new: &mut impl Table<K, V>,
        name: &'static str,
    ) -> Result<(), XdpError> {
        let old = HashMap::<MapData, K, V>::try_from(aya::maps::Map::HashMap(old))
            .map_err(map_err(name))?;
        for entry in &old {
            let (key, value) = entry.map_err(map_err(name))?;
            new.put(&key, &value).map_err(map_err(name))?;
        }
        Ok(())
    }
    fn trie<K: aya::Pod, V: aya::Pod>(
        old: MapData,
        new: &mut impl Table<Key<K>, V>,
        name: &'static str,
    ) -> Result<(), XdpError> {
        let old = LpmTrie::<MapData, K, V>::try_from(aya::maps::Map::LpmTrie(old))
            .map_err(map_err(name))?;
        for key in old.keys() {
            let key = key.map_err(map_err(name))?;
            if let Ok(value) = old.get(&key, 0) {
                new.put(&key, &value).map_err(map_err(name))?;
            }
        }
        Ok(())
    }
    match name {
        MAP_BANS_V4 => hash(old, &mut maps.bans_v4, name),
        MAP_BANS_V6 => hash(old, &mut maps.bans_v6, name),
        MAP_CIDR_V4 => trie(old, &mut maps.cidr_v4, name),
        MAP_CIDR_V6 => trie(old, &mut maps.cidr_v6, name),
        MAP_ALLOW_V4 => trie(old, &mut maps.allow_v4, name),
        MAP_ALLOW_V6 => trie(old, &mut maps.allow_v6, name),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_clears_host_bits_and_unmaps_ipv4() {
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        assert_eq!(normalize(n("10.1.2.3/24")), n("10.1.2.0/24"));
        assert_eq!(normalize(n("::ffff:192.0.2.7/128")), n("192.0.2.7/32"));
        assert_eq!(normalize(n("::ffff:192.0.2.0/120")), n("192.0.2.0/24"));
        assert_eq!(normalize(n("2001:db8::1/64")), n("2001:db8::/64"));
    }

    #[test]
    fn later_treats_zero_as_permanent() {
        assert_eq!(later(5, 7), 7);
        assert_eq!(later(0, 7), 0);
        assert_eq!(later(9, 0), 0);
    }
}
