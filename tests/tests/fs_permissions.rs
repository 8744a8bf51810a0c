//! The filesystem permissions, proven in real sandboxes: the policy comes
//! from `hostd::policygen` for a manifest holding exactly the listed
//! permissions, and the probe tries to read, write and mkdir in /data.

use hostd::config::HostConfig;
use hostd::manifest::Manifest;
use hostd_tests::{require_privileged, run_sandboxed, Scratch, Seen, SANDBOX_UID};
use std::path::Path;

fn ok() -> Seen {
    Seen::Ok
}
fn errno(e: &str) -> Seen {
    Seen::Errno(e.into())
}

#[test]
fn data_dir_access_follows_filesystem_permissions() {
    if !require_privileged("fs permission probes") {
        return;
    }
    // (capabilities, read existing file, create a file, create a directory)
    let table: &[(&[&str], Seen, Seen, Seen)] = &[
        // No filesystem permission: the data dir is not even mounted.
        (&[], errno("ENOENT"), errno("ENOENT"), errno("ENOENT")),
        // Read only: mounted read-only, Landlock grants reading.
        (&["read_filesystem"], ok(), errno("EROFS"), errno("EROFS")),
        // Write without read: files can be created, not read back; no mkdir.
        (&["write_filesystem"], errno("EACCES"), ok(), errno("EACCES")),
        (&["read_filesystem", "write_filesystem"], ok(), ok(), errno("EACCES")),
        (&["read_filesystem", "write_filesystem", "manage_filesystem"], ok(), ok(), ok()),
    ];
    let mut failures = Vec::new();
    for (i, (caps, read, write, mkdir)) in table.iter().enumerate() {
        let scratch = Scratch::new("fsperm");
        let name = format!("fsperm{i}");
        let config_text = format!("[paths]\ndata_dir = \"{}\"\n", scratch.0.join("data").display());
        let config = HostConfig::parse(&config_text, &scratch.0.join("hostd.toml")).expect("config");
        let files = config.module_data_dir(&name).join("files");
        std::fs::create_dir_all(&files).expect("mkdir files");
        std::fs::write(files.join("existing"), "hello").expect("seed file");
        for p in [&files, &files.join("existing")] {
            std::os::unix::fs::chown(p, Some(SANDBOX_UID), Some(SANDBOX_UID)).expect("chown");
        }
        let caps_toml: Vec<String> = caps.iter().map(|c| format!("\"{c}\"")).collect();
        let manifest_text = format!(
            "name = \"{name}\"\nversion = \"1.0.0\"\nentry_point = \"m\"\ncapabilities = [{}]\n",
            caps_toml.join(", ")
        );
        let manifest = Manifest::parse(&manifest_text, Path::new("module.toml")).expect("manifest");
        let policy = hostd::policygen::generate(&manifest, &config, SANDBOX_UID);
        for (case, path, want) in [
            ("read_path", "/data/existing", read),
            ("write_file", "/data/new", write),
            ("mkdir", "/data/sub", mkdir),
        ] {
            let run = run_sandboxed(&policy, &[case.to_string(), path.to_string()]);
            if run.seen != *want {
                failures.push(format!("{caps:?} {case} {path}: want {want:?}, saw {:?} ({})", run.seen, run.stderr.trim()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
