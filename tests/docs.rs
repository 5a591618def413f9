//! Documentation that must not drift from the code: the configuration reference and the served
//! error page (docs/errors.md is checked by mediagate-core's own test).

use mediagate_engine::config::Config;
use mediagate_testkit::TestServer;

fn keys(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
    if let toml::Value::Table(t) = v {
        for (k, v) in t {
            match v {
                // Tables are sections, checked by name below; their keys are the leaves.
                toml::Value::Table(_) if k != "resolve" => keys(&format!("{prefix}{k}."), v, out),
                _ => out.push(k.clone()),
            }
        }
    }
}

#[test]
fn configuration_reference_documents_every_key() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md")).unwrap();
    let mut all = Vec::new();
    keys("", &toml::Value::try_from(Config::default()).unwrap(), &mut all);
    let bounds = toml::Value::try_from(mediagate_core::model::Bounds::default()).unwrap();
    keys("", &bounds, &mut all);
    assert!(all.len() > 40, "walked {} keys", all.len());
    for k in all {
        assert!(
            doc.contains(&format!("`{k}`")) || doc.contains(&format!("{k} =")),
            "docs/configuration.md does not document `{k}`"
        );
    }
    for section in [
        "[server]",
        "[bootstrap]",
        "[store]",
        "[auth]",
        "[portal]",
        "[limits]",
        "[outputs]",
        "[providers]",
        "[assets]",
        "[[models]]",
    ] {
        assert!(doc.contains(section), "{section}");
    }
}

#[tokio::test]
async fn served_pages_follow_the_catalog_and_name_the_stand_in() {
    let s = TestServer::start().await;
    let page = s.http.get(format!("{}/docs/errors", s.base_url)).send().await.unwrap().text().await.unwrap();
    for c in mediagate_core::ErrorCode::ALL {
        let row = format!(
            "<tr id=\"{code}\"><td><code>{code}</code></td><td>{}</td>",
            c.http_status(),
            code = c.as_str()
        );
        assert!(page.contains(&row), "/docs/errors lacks {c}");
    }
    let index = s.http.get(format!("{}/docs", s.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(index.contains("procedural stand-in, not a generative model"));
    assert!(index.contains("NOT a generative model"), "the catalog description says so too");
    // Runway model names are labelled as stand-ins too, and the Runway guide is served.
    assert!(
        index.contains("<code>gen4_turbo</code>")
            && index.contains("served by a local stand-in, NOT the Runway model")
    );
    let guide = s.http.get(format!("{}/docs/runway", s.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(guide.contains("X-Runway-Version: 2024-11-06") && guide.contains("NOT by Runway's models"));
}

/// How the documents write a count of models.
fn count_word(n: usize) -> &'static str {
    ["no", "one", "two", "three", "four", "five", "six", "seven", "eight"].get(n).copied().unwrap_or("many")
}

#[test]
fn the_readme_and_configuration_reference_count_and_list_the_built_in_models() {
    // mediagate's own models; the built-in Runway names routed to them are listed apart.
    let builtin: Vec<_> = mediagate_core::model::builtin_models()
        .into_iter()
        .filter(|m| m.air.starts_with("mediagate:"))
        .collect();
    let n = count_word(builtin.len());
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let config =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md")).unwrap();
    assert!(
        readme.contains(&format!("serves\n{n} built-in models")),
        "README.md does not say {n} built-in models"
    );
    let mut capital = n.to_string();
    capital[..1].make_ascii_uppercase();
    assert!(
        config.contains(&format!("{capital} models are built in")),
        "configuration.md does not say {capital}"
    );
    for m in &builtin {
        assert!(readme.contains(&format!("`{}`", m.air)), "README.md does not list {}", m.air);
        assert!(config.contains(&format!("`{}`", m.air)), "configuration.md does not list {}", m.air);
    }
    // Nothing else is listed as built in: the README's list ends where the Runway names begin.
    let listed = readme.split("built-in models").nth(1).unwrap().split("\n\n").nth(1).unwrap_or("");
    let items = listed.lines().filter(|l| l.starts_with("- `")).count();
    assert_eq!(items, builtin.len(), "README.md lists {items} built-in models:\n{listed}");
}
