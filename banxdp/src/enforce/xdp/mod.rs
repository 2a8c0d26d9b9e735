//! The XDP backend: owns the loaded program, its maps and its attachments.
//!
//! [`XdpEnforcer::load`] carries out an [`XdpPlan`]: it mounts bpffs where needed, adopts the
//! maps a previous process pinned (so bans hold across restarts with no gap and nothing
//! duplicated), loads the program, and attaches it to each interface, natively where the
//! driver can and generically otherwise, replacing the program of a pinned link atomically
//! when there is one. [`XdpEnforcer::load_staged`] leaves the pinned links on the earlier
//! program until [`XdpEnforcer::take_over`]: a map that could not be adopted (an upgrade that
//! changed its layout) starts empty, and the daemon fills it from its store before the new
//! program sees a packet, so a restart never lets a banned source through. The ban logic
//! (what goes into which map) is in `bans.rs`; the raw kernel calls aya lacks are in
//! `sys.rs`. This is the only module that holds aya handles.
//!
//! With a pin directory, enforcement outlives the process on purpose: dropping the enforcer
//! closes its handles and the pinned links keep filtering; [`XdpEnforcer::detach`] removes
//! them. Without one, dropping the enforcer detaches everything.

mod bans;
pub mod clock;
pub mod plan;
pub mod sys;
mod table;
pub mod trace;

use std::{
    borrow::Cow,
    collections::HashMap as StdHashMap,
    ffi::CString,
    fs, io,
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, HashMap, LpmTrie, Map, MapData, MapError, MapInfo, PerCpuArray},
    programs::{
        ProgramError, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::XdpLink,
    },
};
use banxdp_common::{
    Ban, COUNTER_SLOTS, Counters, GLOBAL_COARSE_CLOCK, GLOBAL_JIFFY_CLOCK, GLOBAL_SETTINGS_NOW,
    JailSlot, MAP_ALLOW_V4, MAP_ALLOW_V6, MAP_BANS_V4, MAP_BANS_V6, MAP_CIDR_V4, MAP_CIDR_V6,
    MAP_CLOCK, MAP_COUNTERS, MAP_JAILS, MAP_NAMES, MAP_PORT_JAILS, MAP_SETTINGS, MAP_SETTINGS_NOW,
    MAX_JAILS, PROGRAM_NAME, PortKey, Settings, counter, pin_file,
};
use ipnet::IpNet;

pub use plan::{AttachMode, Capacities, ExpiryClock, ObjectSource, XdpPlan};
use table::Trie;

/// The object `cargo xtask build-ebpf` wrote; committed, so building needs no eBPF toolchain.
static EMBEDDED: &[u8] = aya::include_bytes_aligned!("../../../bpf/banxdp.bpf.o");

/// The mode an interface ended up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    Native,
    Generic,
}

impl AttachedMode {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Generic => "generic",
        }
    }
}

/// One interface the program is attached to.
#[derive(Debug)]
pub struct Attachment {
    pub interface: String,
    pub ifindex: u32,
    pub mode: AttachedMode,
    /// Why native mode was not used, when `mode` is generic under `AttachMode::Auto`.
    pub fallback: Option<String>,
    /// Whether a pinned link from an earlier process was taken over (or is staged to be).
    pub adopted: bool,
    /// The mode asked for, should a staged link turn out unusable and need attaching anew.
    requested: AttachMode,
    link: LinkHold,
}

#[derive(Debug)]
enum LinkHold {
    /// Pinned at `path`: stays attached after this process ends.
    Pinned { path: PathBuf, _link: FdLink },
    /// Pinned at `path` by an earlier process and still running that process's program, until
    /// [`XdpEnforcer::take_over`] points it at this one.
    Staged { path: PathBuf, link: XdpLink },
    /// Owned by the program: detached when the enforcer is dropped.
    Owned,
}

/// Packet counts of one interface, summed over CPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceCounters {
    pub interface: String,
    pub ifindex: u32,
    pub packets: [u64; counter::COUNT],
}

impl InterfaceCounters {
    /// Packets passed, whatever the reason.
    #[must_use]
    pub fn passed(&self) -> u64 {
        self.packets[counter::PASS_CLEAN..counter::FIRST_DROP]
            .iter()
            .sum()
    }

    /// Packets dropped, whatever the reason.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.packets[counter::FIRST_DROP..].iter().sum()
    }
}

/// Errors of the XDP backend.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("cannot read the XDP object `{path}`")]
    ReadObject {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot load the XDP object")]
    Load(#[source] EbpfError),
    #[error("the XDP object has no map `{0}`")]
    MissingMap(&'static str),
    #[error("the XDP object has no XDP program `{PROGRAM_NAME}`")]
    MissingProgram,
    #[error("map `{map}`")]
    Map {
        map: &'static str,
        #[source]
        source: MapError,
    },
    #[error("the kernel refused the XDP program")]
    Program(#[source] ProgramError),
    #[error("no interface `{0}`")]
    UnknownInterface(String),
    #[error("cannot attach to `{interface}` in {mode} mode")]
    Attach {
        interface: String,
        mode: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("cannot pin `{}`", path.display())]
    Pin {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot mount bpffs at `{}`", path.display())]
    Bpffs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{call}` failed")]
    Syscall {
        call: &'static str,
        #[source]
        source: io::Error,
    },
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> XdpError {
    move |source| XdpError::Map { map, source }
}

/// The program's maps, typed.
struct Maps {
    bans_v4: HashMap<MapData, [u8; 4], Ban>,
    bans_v6: HashMap<MapData, [u8; 16], Ban>,
    cidr_v4: Trie<[u8; 4], Ban>,
    cidr_v6: Trie<[u8; 16], Ban>,
    allow_v4: Trie<[u8; 4], u32>,
    allow_v6: Trie<[u8; 16], u32>,
    port_jails: HashMap<MapData, PortKey, u64>,
    settings: Array<MapData, Settings>,
    /// The program's `SETTINGS_NOW` global; `None` for an object from before it.
    settings_now: Option<Array<MapData, Settings>>,
    counters: PerCpuArray<MapData, Counters>,
    jails: Array<MapData, JailSlot>,
}

impl Maps {
    fn take(ebpf: &mut Ebpf) -> Result<Self, XdpError> {
        fn take<T: TryFrom<Map, Error = MapError>>(
            ebpf: &mut Ebpf,
            name: &'static str,
        ) -> Result<T, XdpError> {
            let map = ebpf.take_map(name).ok_or(XdpError::MissingMap(name))?;
            T::try_from(map).map_err(map_err(name))
        }
        fn trie<K: aya::Pod + Eq + std::hash::Hash, V: aya::Pod>(
            ebpf: &mut Ebpf,
            name: &'static str,
        ) -> Result<Trie<K, V>, XdpError> {
            Trie::new(take::<LpmTrie<MapData, K, V>>(ebpf, name)?).map_err(map_err(name))
        }
        Ok(Self {
            bans_v4: take(ebpf, MAP_BANS_V4)?,
            bans_v6: take(ebpf, MAP_BANS_V6)?,
            cidr_v4: trie(ebpf, MAP_CIDR_V4)?,
            cidr_v6: trie(ebpf, MAP_CIDR_V6)?,
            allow_v4: trie(ebpf, MAP_ALLOW_V4)?,
            allow_v6: trie(ebpf, MAP_ALLOW_V6)?,
            port_jails: take(ebpf, MAP_PORT_JAILS)?,
            settings: take(ebpf, MAP_SETTINGS)?,
            settings_now: ebpf
                .take_map(MAP_SETTINGS_NOW)
                .map(|map| Array::try_from(map).map_err(map_err(MAP_SETTINGS_NOW)))
                .transpose()?,
            counters: take(ebpf, MAP_COUNTERS)?,
            jails: take(ebpf, MAP_JAILS)?,
        })
    }
}

/// The XDP enforcement backend.
pub struct XdpEnforcer {
    ebpf: Ebpf,
    maps: Maps,
    attachments: Vec<Attachment>,
    /// Jail names by slot (bit of the masks).
    jails: Vec<Option<String>>,
    settings: Settings,
    /// Per-jail expiries (`CLOCK_BOOTTIME` ns) of the targets that several jails ban: the map
    /// value holds only the latest, so the others are kept here to be lifted on time.
    shared: StdHashMap<IpNet, Vec<(u8, u64)>>,
    pin_dir: Option<PathBuf>,
    adopted_maps: bool,
    /// Until the daemon takes it (`take_tracer`); `None` also when the object cannot trace.
    tracer: Option<trace::Tracer>,
    /// The program's clock global and the jiffies line that fills it.
    clock: clock::ProgramClock,
}

impl XdpEnforcer {
    /// Loads the program and its maps and attaches to the plan's interfaces, taking over
    /// the links an earlier process pinned at once.
    pub fn load(plan: &XdpPlan) -> Result<Self, XdpError> {
        let mut enforcer = Self::load_staged(plan)?;
        enforcer.take_over()?;
        Ok(enforcer)
    }

    /// Loads the program and its maps and attaches to the plan's interfaces where nothing
    /// runs yet; a link an earlier process pinned is opened and checked but keeps running
    /// that process's program (and its maps) until [`XdpEnforcer::take_over`]. Between the
    /// two, fill the maps: those not adopted from the pins start empty.
    pub fn load_staged(plan: &XdpPlan) -> Result<Self, XdpError> {
        let object: Cow<'_, [u8]> = match &plan.object {
            ObjectSource::Embedded => Cow::Borrowed(EMBEDDED),
            ObjectSource::File(path) => {
                Cow::Owned(fs::read(path).map_err(|source| XdpError::ReadObject {
                    path: path.clone(),
                    source,
                })?)
            }
        };
        let mut loader = EbpfLoader::new();
        for (name, size) in plan.capacities.by_map() {
            loader.map_max_entries(name, size);
        }
        // Not required: an object from before a clock has no such constant.
        let coarse_clock = plan.clock != ExpiryClock::Exact && sys::has_coarse_clock();
        let probe = (plan.clock == ExpiryClock::Jiffies)
            .then(clock::ProgramClock::probe)
            .flatten();
        let (coarse_flag, jiffy_flag) = (u32::from(coarse_clock), u32::from(probe.is_some()));
        loader.override_global(GLOBAL_COARSE_CLOCK, &coarse_flag, false);
        loader.override_global(GLOBAL_JIFFY_CLOCK, &jiffy_flag, false);
        let mut resized = Vec::new();
        let mut adopted_maps = false;
        let pin_paths: Vec<(&str, PathBuf)> = match &plan.pin_dir {
            Some(dir) => {
                prepare_pin_dir(dir)?;
                MAP_NAMES
                    .iter()
                    .map(|name| (*name, dir.join(pin_file(name))))
                    .collect()
            }
            None => Vec::new(),
        };
        for (name, path) in &pin_paths {
            match check_pinned(name, path, &plan.capacities)? {
                Pinned::Absent => {}
                Pinned::Compatible => adopted_maps = true,
                Pinned::Resized(old) => {
                    tracing::info!(
                        "xdp: map `{name}` changes capacity; copying its entries into a new one"
                    );
                    resized.push((*name, old));
                    remove_pin(path)?;
                }
                Pinned::Incompatible(why) => {
                    tracing::warn!(
                        "xdp: pinned map `{}` is from an incompatible build ({why}); \
                         starting it empty (the ban store restores bans)",
                        path.display()
                    );
                    remove_pin(path)?;
                }
            }
            loader.map_pin_path(name, path.as_path());
        }
        // Loading writes the section's value into the global's map, adopted from its pin
        // when there is one and read meanwhile by the program still attached: the value
        // it holds already, so that the write changes nothing.
        // Required of the embedded object, which has the global: without it aya would write
        // the zeroes it was compiled with under the program still attached.
        let settings_now = pinned_settings(&pin_paths)?;
        let must_exist = matches!(plan.object, ObjectSource::Embedded);
        loader.override_global(GLOBAL_SETTINGS_NOW, &settings_now, must_exist);
        let mut ebpf = loader.load(&object).map_err(XdpError::Load)?;
        let mut maps = Maps::take(&mut ebpf)?;
        // Before the program loads: the log ring buffer's reader must be alive then.
        let tracer = trace::Tracer::take(&mut ebpf, aya::maps::IterableMap::map(&maps.jails))
            .inspect_err(|e| tracing::warn!("xdp: `banxdp trace` is unavailable: {}", chain(e)))
            .ok();
        for (name, old) in resized {
            bans::copy_entries(&mut maps, name, old)?;
        }
        let clock = clock::ProgramClock::new(ebpf.take_map(MAP_CLOCK), probe, coarse_clock)?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or(XdpError::MissingProgram)?
            .try_into()
            .map_err(|_| XdpError::MissingProgram)?;
        program.load().map_err(XdpError::Program)?;

        let settings = maps.settings.get(&0, 0).map_err(map_err(MAP_SETTINGS))?;
        let mut jails = vec![None; MAX_JAILS as usize];
        for (slot, entry) in jails.iter_mut().enumerate() {
            let index = u32::try_from(slot).expect("64 slots");
            let stored = maps.jails.get(&index, 0).map_err(map_err(MAP_JAILS))?;
            if stored.used != 0 {
                let len = (stored.name_len as usize).min(stored.name.len());
                *entry = Some(String::from_utf8_lossy(&stored.name[..len]).into_owned());
            }
        }
        let mut enforcer = Self {
            ebpf,
            maps,
            attachments: Vec::new(),
            jails,
            settings,
            shared: StdHashMap::new(),
            pin_dir: plan.pin_dir.clone(),
            adopted_maps,
            tracer,
            clock,
        };
        // Before the program sees a packet (an adopted record may hold settings the global
        // of a new pin lacks):
        enforcer.publish_settings()?;
        // Also before: until then it has no cheap bound of the boot
        // clock but the coarse monotonic clock, and reads the exact clock near every end.
        enforcer.set_clock()?;
        for interface in &plan.interfaces {
            enforcer.stage(interface, plan.mode)?;
        }
        Ok(enforcer)
    }

    /// The program's trace switch, filters and log reader, once (`banxdp trace`); `None`
    /// when taken already or when the object cannot trace. Keep it while the program runs.
    pub fn take_tracer(&mut self) -> Option<trace::Tracer> {
        self.tracer.take()
    }

    /// Whether the maps were taken over from an earlier process.
    #[must_use]
    pub fn adopted_maps(&self) -> bool {
        self.adopted_maps
    }

    /// The interfaces the program is attached to.
    #[must_use]
    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    fn program(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(PROGRAM_NAME)
            .and_then(|p| p.try_into().ok())
            .expect("checked at load")
    }

    fn link_path(&self, interface: &str, mode: AttachedMode) -> Option<PathBuf> {
        self.pin_dir
            .as_ref()
            .map(|dir| dir.join(format!("link-{}-{interface}", mode.as_str())))
    }

    /// Attaches to `interface`, taking over a link pinned there by an earlier process.
    pub fn attach(&mut self, interface: &str, mode: AttachMode) -> Result<(), XdpError> {
        self.stage(interface, mode)?;
        self.take_over()
    }

    /// Attaches to `interface` unless a usable link is pinned there, which is staged.
    fn stage(&mut self, interface: &str, mode: AttachMode) -> Result<(), XdpError> {
        let ifindex = ifindex(interface)?;
        if self.stage_pinned_link(interface, ifindex, mode)? {
            return Ok(());
        }
        let attachment = self.attach_anew(interface, ifindex, mode)?;
        self.attachments.push(attachment);
        Ok(())
    }

    /// Points every staged link at this process's program, each in one atomic
    /// `bpf_link_update`; a link that refuses is removed and the interface attached anew.
    pub fn take_over(&mut self) -> Result<(), XdpError> {
        for index in 0..self.attachments.len() {
            let attachment = &mut self.attachments[index];
            if !matches!(attachment.link, LinkHold::Staged { .. }) {
                continue;
            }
            let LinkHold::Staged { path, link } =
                std::mem::replace(&mut attachment.link, LinkHold::Owned)
            else {
                unreachable!("matched above")
            };
            let (interface, ifindex, mode, requested) = (
                attachment.interface.clone(),
                attachment.ifindex,
                attachment.mode,
                attachment.requested,
            );
            match self.update_link(&path, link) {
                Ok(link) => {
                    tracing::info!(
                        "xdp: `{interface}`: took over the pinned {} link",
                        mode.as_str()
                    );
                    self.attachments[index].link = LinkHold::Pinned { path, _link: link };
                }
                Err(error) => {
                    tracing::warn!(
                        "xdp: `{interface}`: pinned link `{}` refused the program ({}); \
                         attaching anew",
                        path.display(),
                        chain(&error)
                    );
                    remove_pin(&path)?;
                    self.attachments[index] = self.attach_anew(&interface, ifindex, requested)?;
                }
            }
        }
        Ok(())
    }

    /// Attaches the program to `interface` with a new link (pinned when there is a pin
    /// directory).
    fn attach_anew(
        &mut self,
        interface: &str,
        ifindex: u32,
        mode: AttachMode,
    ) -> Result<Attachment, XdpError> {
        let attempt = |program: &mut Xdp, m: AttachedMode| {
            let flags = match m {
                AttachedMode::Native => XdpMode::Driver,
                AttachedMode::Generic => XdpMode::Skb,
            };
            program
                .attach_to_if_index(ifindex, flags)
                .map_err(|source| XdpError::Attach {
                    interface: interface.to_string(),
                    mode: m.as_str(),
                    source,
                })
        };
        let program = self.program();
        let (id, attached, fallback) = match mode {
            AttachMode::Native => (
                attempt(program, AttachedMode::Native)?,
                AttachedMode::Native,
                None,
            ),
            AttachMode::Generic => (
                attempt(program, AttachedMode::Generic)?,
                AttachedMode::Generic,
                None,
            ),
            AttachMode::Auto => match attempt(program, AttachedMode::Native) {
                Ok(id) => (id, AttachedMode::Native, None),
                Err(native) => {
                    let reason = chain(&native);
                    tracing::warn!(
                        "xdp: `{interface}`: native mode failed ({reason}); using generic mode"
                    );
                    (
                        attempt(program, AttachedMode::Generic)?,
                        AttachedMode::Generic,
                        Some(reason),
                    )
                }
            },
        };
        let link = match self.link_path(interface, attached) {
            Some(path) => {
                let link = self.program().take_link(id).map_err(XdpError::Program)?;
                let fd_link = FdLink::try_from(link).map_err(|e| XdpError::Pin {
                    path: path.clone(),
                    source: io::Error::other(e),
                })?;
                let pinned = fd_link.pin(&path).map_err(|e| XdpError::Pin {
                    path: path.clone(),
                    source: io::Error::other(e),
                })?;
                LinkHold::Pinned {
                    path,
                    _link: FdLink::from(pinned),
                }
            }
            None => LinkHold::Owned,
        };
        tracing::info!(
            "xdp: attached to `{interface}` (ifindex {ifindex}) in {} mode",
            attached.as_str()
        );
        Ok(Attachment {
            interface: interface.to_string(),
            ifindex,
            mode: attached,
            fallback,
            adopted: false,
            requested: mode,
            link,
        })
    }

    /// Stages a link pinned for `interface` by an earlier process, if there is a usable
    /// one; an unusable pin (not an XDP link) is removed. A link whose interface went away
    /// opens but refuses the update, and is replaced in [`XdpEnforcer::take_over`].
    fn stage_pinned_link(
        &mut self,
        interface: &str,
        ifindex: u32,
        requested: AttachMode,
    ) -> Result<bool, XdpError> {
        for candidate in [AttachedMode::Native, AttachedMode::Generic] {
            let Some(path) = self.link_path(interface, candidate) else {
                break;
            };
            if !path.exists() {
                continue;
            }
            match open_link(&path) {
                Ok(link) => {
                    self.attachments.push(Attachment {
                        interface: interface.to_string(),
                        ifindex,
                        mode: candidate,
                        fallback: None,
                        adopted: true,
                        requested,
                        link: LinkHold::Staged { path, link },
                    });
                    return Ok(true);
                }
                Err(error) => {
                    tracing::warn!(
                        "xdp: `{interface}`: pinned link `{}` is unusable ({}); attaching anew",
                        path.display(),
                        chain(&error)
                    );
                    remove_pin(&path)?;
                }
            }
        }
        Ok(false)
    }

    /// Points a pinned link at this process's program (one atomic `bpf_link_update`).
    fn update_link(&mut self, path: &Path, link: XdpLink) -> Result<FdLink, XdpError> {
        let program = self.program();
        let id = program.attach_to_link(link).map_err(XdpError::Program)?;
        let link = program.take_link(id).map_err(XdpError::Program)?;
        FdLink::try_from(link).map_err(|e| pin_error(path, &e))
    }

    /// Detaches from every interface and removes every pin: enforcement stops.
    pub fn detach(mut self) -> Result<(), XdpError> {
        for attachment in self.attachments.drain(..) {
            if let LinkHold::Pinned { path, .. } | LinkHold::Staged { path, .. } = &attachment.link
            {
                remove_pin(path)?;
            }
        }
        if let Some(dir) = self.pin_dir.take() {
            for name in MAP_NAMES {
                remove_pin(&dir.join(pin_file(name)))?;
            }
            match fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(XdpError::Pin { path: dir, source }),
            }
        }
        Ok(())
    }

    /// Writes the program's clock global: what the boot clock is ahead of the monotonic one
    /// (it grows only when the host suspends) and the jiffies line, checked against the
    /// kernel's clocks at most once a second. Called whenever bans are written, so the
    /// program's expiry bound stays tight while the daemon runs.
    fn set_clock(&mut self) -> Result<(), XdpError> {
        self.clock.refresh()
    }

    /// Makes the program's lower bound of the boot clock lag behind it by `lag` from now on,
    /// as it does on a host that suspended while no daemon ran to write the offset: near a
    /// ban's end the exact clock must then decide. For tests of that path.
    pub fn lag_clock(&mut self, lag: std::time::Duration) -> Result<(), XdpError> {
        self.clock.lag(lag)
    }

    /// Makes the program's jiffies line run ahead of the boot clock by `lead` from now on, as
    /// a wrongly calibrated one would: far from a ban's end the program then finds it expired
    /// early, which shows that it reads the line. For tests of that path.
    pub fn lead_jiffies(&mut self, lead: std::time::Duration) -> Result<(), XdpError> {
        self.clock.lead_jiffies(lead)
    }

    /// The bound of the boot clock the program checks expiries on far from a ban's end.
    #[must_use]
    pub fn expiry_clock(&self) -> ExpiryClock {
        self.clock.in_use()
    }

    /// Runs the program once on `frame` as if it had arrived on `ifindex` (`BPF_PROG_TEST_RUN`):
    /// the verdict, with the maps and counters updated as for a real packet.
    pub fn test_run(&mut self, frame: &[u8], ifindex: u32) -> Result<u32, XdpError> {
        self.test_run_repeat(frame, ifindex, 1)
            .map(|run| run.action)
    }

    /// Runs the program `repeat` times on `frame` (`BPF_PROG_TEST_RUN`): the verdict, and the
    /// kernel's average time per run in ns (what `cargo xtask bench-prog` compares).
    pub fn test_run_repeat(
        &mut self,
        frame: &[u8],
        ifindex: u32,
        repeat: u32,
    ) -> Result<sys::TestRun, XdpError> {
        let program = self.program();
        let fd = program.fd().map_err(XdpError::Program)?;
        sys::test_run(fd.as_fd(), frame, ifindex, repeat, false, 0).map_err(|source| {
            XdpError::Syscall {
                call: "BPF_PROG_TEST_RUN",
                source,
            }
        })
    }

    /// Counters of the counting slot of `ifindex`, summed over CPUs.
    pub fn counters_of(&self, ifindex: u32) -> Result<[u64; counter::COUNT], XdpError> {
        let per_cpu = self
            .maps
            .counters
            .get(&(ifindex % COUNTER_SLOTS), 0)
            .map_err(map_err(MAP_COUNTERS))?;
        let mut sum = [0u64; counter::COUNT];
        for cpu in per_cpu.iter() {
            for (total, value) in sum.iter_mut().zip(cpu.packets) {
                *total += value;
            }
        }
        // The program counts each packet once, under its reason; `seen` is their sum (a
        // program from before that also counted `seen` itself counted the reason as well).
        sum[counter::SEEN] = sum[counter::SEEN + 1..].iter().sum();
        Ok(sum)
    }

    /// Counters of every attached interface.
    pub fn counters(&self) -> Result<Vec<InterfaceCounters>, XdpError> {
        self.attachments
            .iter()
            .map(|a| {
                Ok(InterfaceCounters {
                    interface: a.interface.clone(),
                    ifindex: a.ifindex,
                    packets: self.counters_of(a.ifindex)?,
                })
            })
            .collect()
    }
}

fn pin_error(path: &Path, error: &dyn std::fmt::Display) -> XdpError {
    XdpError::Pin {
        path: path.to_path_buf(),
        source: io::Error::other(error.to_string()),
    }
}

/// The XDP link pinned at `path`.
fn open_link(path: &Path) -> Result<XdpLink, XdpError> {
    let pinned = PinnedLink::from_pin(path).map_err(|e| pin_error(path, &e))?;
    XdpLink::try_from(FdLink::from(pinned)).map_err(|e| pin_error(path, &e))
}

/// What lies at a map's pin path.
enum Pinned {
    Absent,
    Compatible,
    /// Same layout, other capacity: copy the entries from this map.
    Resized(MapData),
    Incompatible(String),
}

/// The settings the program's global should start with: what the pinned global holds, else
/// the pinned record, else none (the pins left are those `check_pinned` found compatible).
/// The global comes first because it is what a program still attached reads now; should it
/// be stale (left by a build that wrote only the record), no attached program reads it, and
/// `publish_settings` replaces it from the record before this program sees a packet.
fn pinned_settings(pin_paths: &[(&str, PathBuf)]) -> Result<Settings, XdpError> {
    for wanted in [MAP_SETTINGS_NOW, MAP_SETTINGS] {
        let Some((_, path)) = pin_paths.iter().find(|(name, _)| *name == wanted) else {
            continue;
        };
        if !path.exists() {
            continue;
        }
        let map = MapData::from_pin(path).map_err(map_err(wanted))?;
        let array: Array<MapData, Settings> =
            Array::try_from(Map::Array(map)).map_err(map_err(wanted))?;
        return array.get(&0, 0).map_err(map_err(wanted));
    }
    Ok(Settings::default())
}

/// `(key size, value size, max_entries)` the current program expects of a map.
fn expected_layout(name: &str, caps: &Capacities) -> (u32, u32, u32) {
    use std::mem::size_of;
    let size = |n: usize| u32::try_from(n).expect("small types");
    let ban = size(size_of::<Ban>());
    match name {
        MAP_BANS_V4 => (4, ban, caps.bans_v4),
        MAP_BANS_V6 => (16, ban, caps.bans_v6),
        MAP_CIDR_V4 => (8, ban, caps.cidr_v4),
        MAP_CIDR_V6 => (20, ban, caps.cidr_v6),
        MAP_ALLOW_V4 => (8, 4, caps.allow_v4),
        MAP_ALLOW_V6 => (20, 4, caps.allow_v6),
        MAP_PORT_JAILS => (
            size(size_of::<PortKey>()),
            8,
            banxdp_common::PORT_JAILS_ENTRIES,
        ),
        MAP_SETTINGS | MAP_SETTINGS_NOW => (4, size(size_of::<Settings>()), 1),
        MAP_COUNTERS => (4, size(size_of::<Counters>()), COUNTER_SLOTS),
        MAP_JAILS => (4, size(size_of::<JailSlot>()), MAX_JAILS),
        _ => unreachable!("every map name is listed"),
    }
}

fn check_pinned(name: &str, path: &Path, caps: &Capacities) -> Result<Pinned, XdpError> {
    if !path.exists() {
        return Ok(Pinned::Absent);
    }
    let info = MapInfo::from_pin(path).map_err(|source| XdpError::Map {
        map: MAP_NAMES
            .iter()
            .find(|n| **n == name)
            .copied()
            .unwrap_or("?"),
        source,
    })?;
    let (key, value, max) = expected_layout(name, caps);
    if info.key_size() != key || info.value_size() != value {
        return Ok(Pinned::Incompatible(format!(
            "key/value size {}/{}, expected {key}/{value}",
            info.key_size(),
            info.value_size()
        )));
    }
    if info.max_entries() == max {
        return Ok(Pinned::Compatible);
    }
    let old = MapData::from_pin(path).map_err(|source| XdpError::Map {
        map: "pinned",
        source,
    })?;
    Ok(Pinned::Resized(old))
}

/// Mounts bpffs under /sys/fs/bpf when absent and creates the pin directory.
fn prepare_pin_dir(dir: &Path) -> Result<(), XdpError> {
    let root = Path::new("/sys/fs/bpf");
    if dir.starts_with(root) {
        match sys::ensure_bpffs(root) {
            Ok(true) => tracing::info!("xdp: mounted bpffs at {}", root.display()),
            Ok(false) => {}
            Err(source) => {
                return Err(XdpError::Bpffs {
                    path: root.to_path_buf(),
                    source,
                });
            }
        }
    }
    fs::create_dir_all(dir).map_err(|source| XdpError::Pin {
        path: dir.to_path_buf(),
        source,
    })
}

fn remove_pin(path: &Path) -> Result<(), XdpError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(XdpError::Pin {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The index of an interface in the current network namespace.
pub fn ifindex(interface: &str) -> Result<u32, XdpError> {
    let name =
        CString::new(interface).map_err(|_| XdpError::UnknownInterface(interface.to_string()))?;
    // SAFETY: a valid C string.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(XdpError::UnknownInterface(interface.to_string())),
        index => Ok(index),
    }
}

/// An error with its sources, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
