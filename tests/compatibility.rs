//! docs/compatibility.md against the official Runware SDKs, the task-type registry and the SDK
//! scripts, so the page cannot drift from what is served and tested.

mod common;

use mediagate_core::task::TaskType;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

struct Row {
    methods: Vec<String>,
    task_type: String,
    status: String,
    test: String,
}

/// The backticked words of a table cell.
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// The rows of the section headed `heading`, and its "Served: N of M" line.
fn section(doc: &str, heading: &str) -> (Vec<Row>, String) {
    let body = doc.split(heading).nth(1).unwrap_or_else(|| panic!("no section {heading}"));
    let body = body.split("\n## ").next().unwrap();
    let served = body.lines().find(|l| l.starts_with("Served: ")).expect("a Served line").to_string();
    let rows = body
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            Row {
                methods: ticked(cells[0]),
                task_type: ticked(cells[1]).into_iter().next().expect("a taskType"),
                status: cells[2].to_string(),
                test: ticked(cells[4]).into_iter().next().unwrap_or_default(),
            }
        })
        .collect();
    (rows, served)
}

fn served(task_type: &str) -> bool {
    TaskType::parse(task_type).is_some() || mediagate_server::RUNWARE_OWN_TASK_TYPES.contains(&task_type)
}

fn check(rows: &[Row], served_line: &str, scripts: &Path) {
    for r in rows {
        let m = r.methods.join(" / ");
        match r.status.as_str() {
            "yes" | "partial" => {
                assert!(served(&r.task_type), "{m}: says {} but {} is not served", r.status, r.task_type);
                assert!(!r.test.is_empty(), "{m}: served but no SDK test named");
                let script = std::fs::read_to_string(scripts.join(&r.test)).expect("the named script");
                assert!(
                    r.methods.iter().any(|name| script.contains(&format!(".{name}("))),
                    "{m}: {} does not call it",
                    r.test
                );
            }
            "no (form)" => assert!(served(&r.task_type), "{m}: {} is not served at all: say no", r.task_type),
            "no" => assert!(!served(&r.task_type), "{m}: {} is served now: update the row", r.task_type),
            other => panic!("{m}: unknown status {other}"),
        }
    }
    let n = rows.iter().filter(|r| matches!(r.status.as_str(), "yes" | "partial")).count();
    assert!(
        served_line.starts_with(&format!("Served: {n} of {} methods", rows.len())),
        "the count says {served_line:?}; the rows say {n} of {}",
        rows.len()
    );
}

fn listed(rows: &[Row]) -> BTreeSet<String> {
    rows.iter().flat_map(|r| r.methods.iter().cloned()).collect()
}

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/compatibility.md")).unwrap()
}

fn scripts() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

#[test]
fn the_python_sdk_rows_are_every_method_and_match_what_is_served_and_tested() {
    let (rows, served_line) = section(&doc(), "## `runware` 0.5.24 (Python)");
    check(&rows, &served_line, &scripts());
    let out = Command::new("python3")
        .args([
            "-c",
            "import inspect, runware\n\
             print('\\n'.join(n for n, f in inspect.getmembers(runware.Runware)\n\
                   if not n.startswith('_') and inspect.iscoroutinefunction(f)))",
        ])
        .output();
    let Ok(out) = out.as_ref().map(|o| (o.status.success(), String::from_utf8_lossy(&o.stdout).to_string()))
    else {
        return common::skip_or_fail("python3 is not installed");
    };
    if !out.0 {
        return common::skip_or_fail("the runware Python SDK is not installed (pip install runware==0.5.24)");
    }
    // The connection's plumbing, not API methods.
    let plumbing =
        ["connect", "disconnect", "ensureConnection", "getSimililarImage", "handleClose", "heartBeat"];
    let plumbing = [&plumbing[..], &["listenToImages", "on_message", "send"]].concat();
    let sdk: BTreeSet<String> = out.1.lines().filter(|n| !plumbing.contains(n)).map(str::to_string).collect();
    assert_eq!(listed(&rows), sdk, "docs/compatibility.md's Python rows and the SDK's methods differ");
}

#[test]
fn the_js_sdk_rows_are_every_method_and_match_what_is_served_and_tested() {
    let (rows, served_line) = section(&doc(), "## `@runware/sdk-js` 1.3.2");
    check(&rows, &served_line, &scripts());
    let types = scripts().join("node_modules/@runware/sdk-js/dist/index.d.ts");
    let Ok(types) = std::fs::read_to_string(&types) else {
        return common::skip_or_fail("@runware/sdk-js is not installed (run `npm ci` in tests/sdk)");
    };
    // The public members of the SDK's client class that are functions.
    let class = types.split("declare class RunwareBase").nth(1).expect("class RunwareBase");
    let class = class.split("\n}\n").next().unwrap();
    let plumbing = ["constructor", "lis", "destroy", "ensureConnection", "disconnect"];
    let sdk: BTreeSet<String> = class
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with("private") && !l.starts_with("protected"))
        .filter_map(|l| {
            let end = l.find(|c: char| !c.is_ascii_alphanumeric())?;
            let (name, rest) = l.split_at(end);
            let is_fn = rest.starts_with('(') || rest.starts_with(": (") || rest.starts_with(": <");
            (is_fn && !name.is_empty() && !plumbing.contains(&name)).then(|| name.to_string())
        })
        .collect();
    assert_eq!(listed(&rows), sdk, "docs/compatibility.md's JavaScript rows and the SDK's methods differ");
}
