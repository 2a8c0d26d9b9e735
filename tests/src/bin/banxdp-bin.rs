//! The `banxdp` binary, built inside the test package so that tests can run it as a
//! separate process (`CARGO_BIN_EXE_banxdp`): the same one-line main as `banxdp/src/main.rs`.

fn main() -> std::process::ExitCode {
    banxdp::cli::main()
}
