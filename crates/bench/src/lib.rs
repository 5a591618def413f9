//! Pieces shared by the benchmark binaries (not published).

#![warn(missing_docs)]

pub mod server;
