//! `cargo xtask build-ebpf` and `cargo xtask check-ebpf`.
//!
//! The XDP object is committed (`banxdp/bpf/banxdp.bpf.o`) so that banxdp builds on stable
//! Rust with no LLVM. Beside it, `banxdp.bpf.o.record` says which toolchain built it and
//! hashes every input (the eBPF and common crates' sources, manifests and lock file, and the
//! build flags) and the object itself. `check-ebpf` always checks the input hash, so an edited
//! source with a stale object fails even on a machine without nightly, and rebuilds and
//! compares byte for byte when the recorded toolchain is the one present.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use sha2::{Digest as _, Sha256};

use crate::setup::{nightly_version, output, run_cmd};

const TARGET: &str = "bpfel-unknown-none";
const OBJECT: &str = "banxdp/bpf/banxdp.bpf.o";
const RECORD: &str = "banxdp/bpf/banxdp.bpf.o.record";
/// Inputs of the object: files, or directories taken whole (sorted, recursively).
const INPUTS: [&str; 5] = [
    "banxdp-common/Cargo.toml",
    "banxdp-common/src",
    "banxdp-ebpf/Cargo.toml",
    "banxdp-ebpf/Cargo.lock",
    "banxdp-ebpf/src",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The flags of the build, part of the input hash. Paths are remapped so that the object
/// does not depend on where the checkout or cargo's registry live. Misaligned access lets a
/// 2- or 4-byte packet field (`read_unaligned`) be one load instead of bytes shifted together:
/// the kernel allows misaligned packet reads on every CPU with efficient unaligned access
/// (x86-64, arm64), and checks the alignment of stack and atomic accesses when it loads the
/// program.
fn rustflags(root: &Path) -> String {
    let cargo_home = std::env::var("CARGO_HOME")
        .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
    format!(
        "--remap-path-prefix={}=/banxdp --remap-path-prefix={cargo_home}=/cargo \
         -C target-feature=+allows-misaligned-mem-access",
        root.display()
    )
}

const BUILD_ARGS: [&str; 7] = [
    "+nightly",
    "build",
    "--release",
    "--target",
    TARGET,
    "-Z",
    "build-std=core",
];

/// Builds the object into `target_dir` and returns its bytes.
fn compile(root: &Path, target_dir: &Path) -> Result<Vec<u8>> {
    run_cmd(
        Command::new("cargo")
            .current_dir(root.join("banxdp-ebpf"))
            .env("RUSTFLAGS", rustflags(root))
            .env("CARGO_TARGET_DIR", target_dir)
            // Make the nightly toolchain's own cargo run, whatever the caller's toolchain is.
            .env_remove("RUSTC")
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            .args(BUILD_ARGS),
    )?;
    let built = target_dir.join(TARGET).join("release").join("banxdp");
    fs::read(&built).with_context(|| format!("reading {}", built.display()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if path.is_dir() {
        let mut entries = fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()?;
        entries.sort();
        for entry in entries {
            collect(&entry, out)?;
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Hash of every input: each file's path relative to the root, its length and its bytes.
fn inputs_hash(root: &Path) -> Result<String> {
    let mut files = Vec::new();
    for input in INPUTS {
        collect(&root.join(input), &mut files)?;
    }
    let mut hasher = Sha256::new();
    hasher.update(BUILD_ARGS.join(" "));
    for file in files {
        let rel = file.strip_prefix(root).unwrap_or(&file);
        let bytes = fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(sha256_hex(&hasher.finalize()))
}

/// The record committed beside the object.
struct Record {
    toolchain: String,
    inputs: String,
    object: String,
}

impl Record {
    fn render(&self) -> String {
        format!(
            "# Written by `cargo xtask build-ebpf`; checked by `cargo xtask check-ebpf`.\n\
             toolchain = {}\ninputs = {}\nobject = {}\n",
            self.toolchain, self.inputs, self.object
        )
    }

    fn parse(text: &str) -> Result<Self> {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim_start().strip_prefix('='))
                .map(|v| v.trim().to_string())
                .with_context(|| format!("{RECORD}: no `{name}` line"))
        };
        Ok(Self {
            toolchain: field("toolchain")?,
            inputs: field("inputs")?,
            object: field("object")?,
        })
    }
}

/// One line naming the toolchain: rustc's version line and its LLVM, plus bpf-linker's.
fn toolchain_id() -> Result<String> {
    let rustc = nightly_version()?;
    let first = rustc.lines().next().unwrap_or_default();
    let llvm = rustc
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .unwrap_or("unknown");
    let linker = output(Command::new("bpf-linker").arg("--version")).map_or_else(
        |_| "bpf-linker missing".to_string(),
        |v| v.trim().to_string(),
    );
    Ok(format!("{first}; LLVM {llvm}; {linker}"))
}

pub fn build() -> Result<()> {
    let root = root();
    let target_dir = root.join("banxdp-ebpf/target");
    let object = compile(&root, &target_dir)?;
    let record = Record {
        toolchain: toolchain_id()?,
        inputs: inputs_hash(&root)?,
        object: sha256_hex(&object),
    };
    fs::create_dir_all(root.join("banxdp/bpf"))?;
    fs::write(root.join(OBJECT), &object)?;
    fs::write(root.join(RECORD), record.render())?;
    println!("wrote {OBJECT} ({} bytes) and {RECORD}", object.len());
    Ok(())
}

pub fn check() -> Result<()> {
    let root = root();
    let record_text = fs::read_to_string(root.join(RECORD))
        .with_context(|| format!("reading {RECORD}: run `cargo xtask build-ebpf`"))?;
    let record = Record::parse(&record_text)?;
    let committed = fs::read(root.join(OBJECT)).with_context(|| format!("reading {OBJECT}"))?;
    if sha256_hex(&committed) != record.object {
        bail!("{OBJECT} is not the object its record describes: run `cargo xtask build-ebpf`");
    }
    let inputs = inputs_hash(&root)?;
    if inputs != record.inputs {
        bail!(
            "{OBJECT} is stale: the eBPF or common sources changed since it was built \
             (inputs {inputs}, recorded {}): run `cargo xtask build-ebpf` and commit the result",
            record.inputs
        );
    }
    println!("check-ebpf: inputs match the record");

    let present = match toolchain_id() {
        Ok(id) => id,
        Err(error) => {
            println!("check-ebpf: no nightly here ({error:#}); byte comparison skipped");
            return Ok(());
        }
    };
    if present != record.toolchain {
        println!(
            "check-ebpf: recorded toolchain `{}` is not the present `{present}`; \
             byte comparison skipped",
            record.toolchain
        );
        return Ok(());
    }
    let scratch = tempfile::tempdir()?;
    let rebuilt = compile(&root, scratch.path())?;
    if rebuilt != committed {
        bail!(
            "{OBJECT} differs from a rebuild with the recorded toolchain ({} vs {} bytes): \
             run `cargo xtask build-ebpf` and commit the result",
            committed.len(),
            rebuilt.len()
        );
    }
    println!("check-ebpf: a rebuild is byte-for-byte the committed object");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        let record = Record {
            toolchain: "rustc 1.97.0-nightly; LLVM 22.1.4; bpf-linker 0.13.0".into(),
            inputs: "ab".into(),
            object: "cd".into(),
        };
        let parsed = Record::parse(&record.render()).unwrap();
        assert_eq!(parsed.toolchain, record.toolchain);
        assert_eq!(parsed.inputs, "ab");
        assert_eq!(parsed.object, "cd");
        assert!(Record::parse("toolchain = x\n").is_err());
    }

    #[test]
    fn inputs_hash_sees_a_changed_source() {
        let dir = tempfile::tempdir().unwrap();
        for input in INPUTS {
            let path = dir.path().join(input);
            if input.ends_with("src") {
                fs::create_dir_all(&path).unwrap();
                fs::write(path.join("lib.rs"), "a").unwrap();
            } else {
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(&path, "x").unwrap();
            }
        }
        let before = inputs_hash(dir.path()).unwrap();
        assert_eq!(before, inputs_hash(dir.path()).unwrap());
        fs::write(dir.path().join("banxdp-ebpf/src/lib.rs"), "b").unwrap();
        assert_ne!(before, inputs_hash(dir.path()).unwrap());
    }
}
