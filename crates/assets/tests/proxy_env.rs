//! HTTPS_PROXY in the environment must not reroute asset fetches (asset-safety.md §6 line 7).
//! Alone in its own test binary because it mutates the process environment.

mod support;

use mediagate_assets::{AssetKind, Intake};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::asset_server::{AssetServer, Route};
use support::*;

async fn served(route: Route) -> (AssetServer, Intake) {
    let s = AssetServer::start().await;
    s.route("/a", route);
    let intake = Intake::new(config_for(&s)).unwrap();
    (s, intake)
}

#[tokio::test]
async fn https_proxy_in_the_environment_is_ignored() {
    // A fake proxy that counts connections; the fetch must go direct.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((_sock, _)) = proxy.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
        }
    });
    let p = format!("http://{proxy_addr}");
    // SAFETY: this binary holds this one test, so no other thread reads the environment.
    unsafe {
        std::env::set_var("HTTPS_PROXY", &p);
        std::env::set_var("https_proxy", &p);
        std::env::set_var("ALL_PROXY", &p);
    }
    let (s, intake) = served(Route::ok("image/png", png(10, 10))).await;
    intake.resolve(&s.url("/a"), &req(AssetKind::Image)).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the proxy was used");
    assert_eq!(s.request_lines(), ["HEAD /a", "GET /a"]);
    // Control: a default reqwest client does use it, so the test can tell the difference.
    let plain = reqwest::Client::builder().build().unwrap();
    let _ = plain.head(s.url("/a")).send().await;
    assert!(hits.load(Ordering::SeqCst) >= 1, "control client should have gone to the proxy");
    unsafe {
        std::env::remove_var("HTTPS_PROXY");
        std::env::remove_var("https_proxy");
        std::env::remove_var("ALL_PROXY");
    }
}
