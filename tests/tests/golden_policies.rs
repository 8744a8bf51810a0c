//! The generated policy of every example module is pinned in
//! policies/golden/<module>.json: a generator change that alters a policy
//! fails here until the golden file is regenerated on purpose
//! (`HOSTD_UPDATE_GOLDEN=1 cargo nextest run -p hostd-tests --test golden_policies`).

use hostd::config::HostConfig;
use hostd::manifest::Manifest;
use std::path::{Path, PathBuf};

const EXAMPLES: [&str; 3] = ["modules/examples/hello", "modules/examples/notes", "modules/mesh"];
/// A fixed host id so the golden files do not depend on allocation state.
const GOLDEN_ID: u32 = 620_000;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

#[test]
fn generated_policies_match_golden_files() {
    let root = root();
    let config = HostConfig::parse(
        &std::fs::read_to_string(root.join("policies/golden/host-config.toml")).expect("golden host config"),
        Path::new("/etc/hostd/hostd.toml"),
    )
    .expect("valid host config");
    let update = std::env::var("HOSTD_UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for dir in EXAMPLES {
        let m = Manifest::load(&root.join(dir).join("module.toml")).expect("example manifest");
        let policy = hostd::policygen::generate(&m, &config, GOLDEN_ID);
        let generated = serde_json::json!({
            "digest": hostd::policygen::digest(&policy),
            "policy": policy,
        });
        let text = serde_json::to_string_pretty(&generated).expect("json") + "\n";
        let golden = root.join("policies/golden").join(format!("{}.json", m.manifest.name));
        if update {
            std::fs::write(&golden, &text).expect("write golden");
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Ok(g) if g == text => {}
            _ => stale.push(golden.display().to_string()),
        }
        // Same inputs, same policy: the generator is deterministic.
        assert_eq!(hostd::policygen::digest(&policy), hostd::policygen::digest(&hostd::policygen::generate(&m, &config, GOLDEN_ID)));
    }
    assert!(
        stale.is_empty(),
        "generated policy differs from {}; review the change, then HOSTD_UPDATE_GOLDEN=1 to accept it",
        stale.join(", ")
    );
}
