//! The `banxdp` binary; everything is in the library (`banxdp::cli`).

fn main() -> std::process::ExitCode {
    banxdp::cli::main()
}
