//! Test support for mediagate: a real server on a loopback port, fixtures and mock peers.
//! Used only as a dev-dependency.

#![warn(missing_docs)]

pub mod asset_server;
pub mod chat_mock;
pub mod comfy_mock;
pub mod flaky_proxy;
pub mod images;
pub mod mock_upstream;
pub mod otlp_receiver;
pub mod server;
pub mod services;
pub mod tcp_proxy;

pub use server::TestServer;

/// A fresh random task UUID, as clients generate them.
pub fn task_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
