//! Asset intake benchmark: `Intake::resolve` of a 16 MB PNG over loopback HTTPS against a plain
//! download of the same file with the same client (same resolver, TLS roots and settings), in
//! the same run, interleaved. Reports times, the ratio of medians (goal <= 1.5x) and the extra
//! memory each fetch needs (goal < limit + 1 MB), measured by a counting global allocator that
//! only counts allocations made on the client's thread (the server runs on another thread).
//!
//! Run: `cargo run --release -p mediagate-bench --bin asset_bench [-- REPS]`

#[path = "../../../testkit/src/asset_server.rs"]
#[allow(dead_code, missing_docs)]
mod asset_server;

use asset_server::{AssetServer, Route};
use mediagate_assets::{AssetKind, AssetRequest, Intake, IntakeConfig, NoStoredAssets};
use mediagate_core::ParamPath;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

struct Counting;

static CURRENT: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static TRACKED: Cell<bool> = const { Cell::new(false) };
}

fn tracked() -> bool {
    TRACKED.try_with(Cell::get).unwrap_or(false)
}

fn add(n: i64) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if tracked() {
            add(l.size() as i64);
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if tracked() {
            add(-(l.size() as i64));
        }
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if tracked() {
            add(new as i64 - l.size() as i64);
        }
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f`, returning its output, wall time and peak bytes above the level at the start.
async fn measured<T, F: std::future::Future<Output = T>>(f: F) -> (T, Duration, i64) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let t = Instant::now();
    let out = f.await;
    let took = t.elapsed();
    (out, took, PEAK.load(Ordering::Relaxed) - base)
}

/// A real, incompressible PNG just under `limit` bytes: noise pixels defeat deflate.
fn big_png(limit: usize) -> Vec<u8> {
    let mut side = 2400u32;
    loop {
        let mut img = image::RgbImage::new(side, side);
        let mut x: u32 = 0x9e37_79b9;
        for p in img.pixels_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *p = image::Rgb([x as u8, (x >> 8) as u8, (x >> 16) as u8]);
        }
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img).write_to(&mut out, image::ImageFormat::Png).expect("encode");
        let v = out.into_inner();
        if v.len() <= limit {
            return v;
        }
        side -= 20;
    }
}

fn stats(v: &mut [f64]) -> (f64, f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (v[0], p(0.5), p(0.9), mean)
}

fn main() {
    let reps: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let limit = IntakeConfig::default().url_image_max_bytes as usize;
    let body = big_png(limit);
    println!("asset: PNG, {} bytes (limit {limit})", body.len());

    // The server on its own thread and runtime, so its allocations are not counted.
    let (tx, rx) = std::sync::mpsc::channel();
    let body_for_server = body.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let s = AssetServer::start().await;
            s.route("/big.png", Route::ok("image/png", body_for_server));
            tx.send((s.url("/big.png"), s.host().to_string(), s.addr(), s.ca_file().to_path_buf())).unwrap();
            std::future::pending::<()>().await;
            drop(s);
        });
    });
    let (url, host, addr, ca) = rx.recv().unwrap();
    drop(body);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let mut config = IntakeConfig::default();
        config.resolve.insert(host, vec![addr.ip()]);
        config.allowed_networks = vec![format!("{}/32", addr.ip()).parse().unwrap()];
        config.extra_ca_certs = vec![ca];
        let intake = Intake::new(config).expect("intake");
        let stored = NoStoredAssets;
        let req = AssetRequest {
            kind: AssetKind::Image,
            param: ParamPath::key("inputImage"),
            aspect: None,
            account_id: 0,
            stored: &stored,
        };
        let client = intake.http_client().clone();
        // A plain download: one GET, body into a buffer sized by Content-Length.
        let plain = || async {
            let mut r = client.get(&url).header("accept-encoding", "identity").send().await.expect("send");
            let mut v = Vec::with_capacity(r.content_length().unwrap_or(0) as usize);
            while let Some(c) = r.chunk().await.expect("chunk") {
                v.extend_from_slice(&c);
            }
            v.len()
        };
        TRACKED.with(|t| t.set(true));
        // Warm-up (TLS session setup paths, allocator pools).
        for _ in 0..2 {
            plain().await;
            intake.resolve(&url, &req).await.expect("valid");
        }
        let (mut tp, mut ti) = (Vec::new(), Vec::new());
        let (mut mp, mut mi) = (0i64, 0i64);
        for i in 0..reps {
            // Alternate which goes first so neither always runs on a warmer cache.
            for which in [i % 2, 1 - i % 2] {
                if which == 0 {
                    let (n, d, m) = measured(plain()).await;
                    assert!(n > 15_000_000);
                    tp.push(d.as_secs_f64() * 1e3);
                    mp = mp.max(m);
                } else {
                    let (a, d, m) = measured(intake.resolve(&url, &req)).await;
                    assert!(a.expect("valid").bytes.len() > 15_000_000);
                    ti.push(d.as_secs_f64() * 1e3);
                    mi = mi.max(m);
                }
            }
        }
        TRACKED.with(|t| t.set(false));
        let (pmin, pmed, p90, pmean) = stats(&mut tp);
        let (imin, imed, i90, imean) = stats(&mut ti);
        println!("reps: {reps} each, interleaved");
        println!("plain GET      ms: min {pmin:7.2}  median {pmed:7.2}  p90 {p90:7.2}  mean {pmean:7.2}");
        println!("Intake::resolve ms: min {imin:7.2}  median {imed:7.2}  p90 {i90:7.2}  mean {imean:7.2}");
        let ratio = imed / pmed;
        println!(
            "ratio (median resolve / median plain): {ratio:.3}  goal <= 1.5  {}",
            if ratio <= 1.5 { "MET" } else { "NOT MET" }
        );
        let goal = limit as i64 + 1_000_000;
        println!("peak extra memory per fetch, plain: {mp} bytes");
        println!(
            "peak extra memory per fetch, resolve: {mi} bytes  goal < {goal} (limit + 1 MB)  {}",
            if mi < goal { "MET" } else { "NOT MET" }
        );
    });
}
