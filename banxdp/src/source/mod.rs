//! Log sources: where lines come from before a filter reads them. `bulk` reads a whole log
//! file on several cores (`banxdp regex`).

pub mod bulk;
