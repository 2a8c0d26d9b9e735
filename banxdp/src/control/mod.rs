//! The control socket: how `banxdp ban/unban/list/status/...` talk to `banxdp run`.
//!
//! A Unix socket (root only, or a configured group; peer credentials checked), one JSON
//! object per line each way. `proto` is the pure protocol (messages and their encoding),
//! `server` the daemon's end (tokio; it hands each request to the daemon, which owns all
//! state), `client` the command line's end (blocking std I/O, no runtime) with the clap
//! definitions of the client subcommands, and `render` the replies as people read them.

pub mod client;
pub mod compat;
pub mod proto;
pub mod render;
pub mod server;
