//! placeholder
pub mod asset_server;
