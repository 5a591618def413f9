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

/// Serves `app` on `listener` in a background task until the returned sender is dropped (or
/// sent to): the life of every mock server here.
pub fn serve_until_dropped(
    listener: tokio::net::TcpListener,
    app: axum::Router,
) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    stop
}

/// A fresh random task UUID, as clients generate them.
pub fn task_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
