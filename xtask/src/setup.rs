//! `cargo xtask setup`: nightly with rust-src, and bpf-linker linked against the nightly
//! toolchain's own libLLVM (Debian's LLVMs are older than nightly's; bpf-linker must match
//! the LLVM major of the rustc that produces the bitcode).
//!
//! Idempotent: a stamp beside the LLVM prefix records which libLLVM the installed bpf-linker
//! was built against, and nothing is rebuilt while it still matches.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

/// The bpf-linker line we build; its features name the LLVM majors it can link against.
const BPF_LINKER_VERSION: &str = "^0.13";
const SUPPORTED_LLVM: [u32; 3] = [21, 22, 23];

pub fn run() -> Result<()> {
    ensure_nightly()?;
    ensure_bpf_linker()
}

/// Runs a command, failing with its name when it cannot start or exits non-zero.
pub fn run_cmd(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run `{cmd:?}`"))?;
    if !status.success() {
        bail!("`{cmd:?}` failed: {status}");
    }
    Ok(())
}

/// Runs a command and returns its standard output.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run `{cmd:?}`"))?;
    if !out.status.success() {
        bail!(
            "`{cmd:?}` failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn ensure_nightly() -> Result<()> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"]))?;
    if toolchains.lines().any(|l| l.starts_with("nightly-")) {
        run_cmd(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "clippy",
            "--toolchain",
            "nightly",
        ]))
    } else {
        run_cmd(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
            "--component",
            "clippy",
        ]))
    }
}

/// `rustc +nightly -vV`, the toolchain identity recorded beside the object.
pub fn nightly_version() -> Result<String> {
    output(Command::new("rustc").args(["+nightly", "-vV"]))
}

fn llvm_major(version: &str) -> Result<u32> {
    let line = version
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .context("`rustc +nightly -vV` reports no LLVM version")?;
    let major = line.split('.').next().unwrap_or_default();
    major
        .parse()
        .with_context(|| format!("cannot read the LLVM major from `{line}`"))
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"),
        PathBuf::from,
    )
}

fn ensure_bpf_linker() -> Result<()> {
    let version = nightly_version()?;
    let major = llvm_major(&version)?;
    if !SUPPORTED_LLVM.contains(&major) {
        bail!(
            "nightly uses LLVM {major}, and bpf-linker {BPF_LINKER_VERSION} links against LLVM \
             {SUPPORTED_LLVM:?} only: install a matching nightly or raise BPF_LINKER_VERSION"
        );
    }
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let lib_dir = Path::new(sysroot.trim()).join("lib");
    let lib = find_libllvm(&lib_dir)?;

    // A lasting prefix, since the linker's rpath points into it.
    let prefix = cargo_home().join("banxdp-llvm");
    let stamp = prefix.join("stamp");
    let wanted = format!("{}\n", lib_dir.join(&lib).display());
    let linker_ok = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if linker_ok && fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        println!("bpf-linker: up to date (LLVM {major}, {lib})");
        return Ok(());
    }

    let prefix_lib = prefix.join("lib");
    if prefix.exists() {
        fs::remove_dir_all(&prefix).with_context(|| format!("removing {}", prefix.display()))?;
    }
    fs::create_dir_all(&prefix_lib)?;
    let target = lib_dir.join(&lib);
    std::os::unix::fs::symlink(&target, prefix_lib.join("libLLVM.so"))?;
    std::os::unix::fs::symlink(&target, prefix_lib.join(&lib))?;
    println!("bpf-linker: building against LLVM {major} ({lib}); about a minute");
    run_cmd(
        Command::new("cargo")
            .env("LLVM_PREFIX", &prefix)
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--force",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
                "--features",
            ])
            .arg(format!("llvm-{major}")),
    )?;
    fs::write(&stamp, wanted)?;
    Ok(())
}

/// The versioned libLLVM that the nightly toolchain ships (`libLLVM.so.22.1-rust-…`).
fn find_libllvm(lib_dir: &Path) -> Result<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir(lib_dir).with_context(|| format!("reading {}", lib_dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        // Only the versioned name, `libLLVM.so.22.1-rust-…`: the file the linker links to.
        if name.starts_with("libLLVM.so.") {
            found.push(name);
        }
    }
    found.sort();
    found
        .into_iter()
        .next()
        .with_context(|| format!("no libLLVM in {}", lib_dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_llvm_major_from_rustc_version() {
        let v = "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)\nhost: x86_64\nLLVM version: 22.1.4\n";
        assert_eq!(llvm_major(v).unwrap(), 22);
        assert!(llvm_major("rustc 1.0\n").is_err());
    }
}
