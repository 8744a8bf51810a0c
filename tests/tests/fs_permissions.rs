//! The filesystem permissions, proven in real sandboxes: the policy comes
//! from `hostd::policygen` for a manifest holding exactly the listed
//! permissions, and the probe tries to read, write and mkdir in /data.

use hostd::config::HostConfig;
use hostd::manifest::Manifest;
use hostd_tests::{require_privileged, run_sandboxed, Scratch, Seen, SANDBOX_UID};
use sandbox::Policy;
use std::path::Path;

fn ok() -> Seen {
    Seen::Ok
}
fn errno(e: &str) -> Seen {
    Seen::Errno(e.into())
}

/// The policy hostd generates for module `name` holding `caps`, with its
/// data dir seeded (a file `existing` and a directory `sub0`, owned by the
/// sandbox uid). The scratch directory lives as long as the returned value.
fn module_sandbox(name: &str, caps: &[&str]) -> (Scratch, Policy) {
    let scratch = Scratch::new("fsperm");
    let config_text = format!("[paths]\ndata_dir = \"{}\"\n", scratch.0.join("data").display());
    let config = HostConfig::parse(&config_text, &scratch.0.join("hostd.toml")).expect("config");
    let files = config.module_data_dir(name).join("files");
    std::fs::create_dir_all(&files).expect("mkdir files");
    std::fs::write(files.join("existing"), "hello").expect("seed file");
    std::fs::create_dir(files.join("sub0")).expect("seed dir");
    for p in [&files, &files.join("existing"), &files.join("sub0")] {
        std::os::unix::fs::chown(p, Some(SANDBOX_UID), Some(SANDBOX_UID)).expect("chown");
    }
    let caps_toml: Vec<String> = caps.iter().map(|c| format!("\"{c}\"")).collect();
    let manifest_text = format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry_point = \"m\"\ncapabilities = [{}]\n", caps_toml.join(", "));
    let manifest = Manifest::parse(&manifest_text, Path::new("module.toml")).expect("manifest");
    let policy = hostd::policygen::generate(&manifest, &config, SANDBOX_UID);
    (scratch, policy)
}

#[test]
fn data_dir_access_follows_filesystem_permissions() {
    if !require_privileged("fs permission probes") {
        return;
    }
    // (capabilities, read existing file, create a file, create a directory,
    // move a file into an existing subdirectory). Links are refused to every module:
    // seccomp kills link/symlink (see `links_are_refused_whatever_the_permissions`).
    let table: &[(&[&str], Seen, Seen, Seen, Seen)] = &[
        // No filesystem permission: the data dir is not even mounted.
        (&[], errno("ENOENT"), errno("ENOENT"), errno("ENOENT"), errno("ENOENT")),
        // Read only: mounted read-only, Landlock grants reading.
        (&["read_filesystem"], ok(), errno("EROFS"), errno("EROFS"), errno("EROFS")),
        // Write without read: files can be created, not read back; no mkdir.
        // Without Refer, Landlock answers a rename across directories EXDEV.
        (&["write_filesystem"], errno("EACCES"), ok(), errno("EACCES"), errno("EXDEV")),
        (&["read_filesystem", "write_filesystem"], ok(), ok(), errno("EACCES"), errno("EXDEV")),
        (&["read_filesystem", "write_filesystem", "manage_filesystem"], ok(), ok(), ok(), ok()),
    ];
    let mut failures = Vec::new();
    for (i, (caps, read, write, mkdir, rename)) in table.iter().enumerate() {
        let (_scratch, policy) = module_sandbox(&format!("fsperm{i}"), caps);
        for (case, path, want) in [
            ("read_path", "/data/existing", read),
            ("write_file", "/data/new", write),
            ("mkdir", "/data/sub", mkdir),
            ("rename_into_dir", "/data/existing", rename),
        ] {
            let run = run_sandboxed(&policy, &[case.to_string(), path.to_string(), "/data/sub0".to_string()]);
            if run.seen != *want {
                failures.push(format!("{caps:?} {case} {path}: want {want:?}, saw {:?} ({})", run.seen, run.stderr.trim()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// manage_filesystem grants renames (Landlock's Refer), not links: the
/// seccomp baseline kills link and symlink for every module, and Landlock
/// grants no MakeSym, so the two layers agree. The control is the same
/// sandbox with seccomp removed, where Landlock alone lets the hard link
/// through (Refer covers it) and refuses the symlink (no MakeSym).
#[test]
fn links_are_refused_whatever_the_permissions() {
    if !require_privileged("link probes") {
        return;
    }
    let (_scratch, policy) = module_sandbox("linker", &["read_filesystem", "write_filesystem", "manage_filesystem"]);
    let mut without_seccomp = policy.clone();
    without_seccomp.seccomp = None;
    let mut failures = Vec::new();
    for (case, path, want, control) in [
        ("symlink", "/data/sym", Seen::SeccompKill, errno("EACCES")),
        ("hardlink", "/data/hard", Seen::SeccompKill, ok()),
    ] {
        let run = run_sandboxed(&policy, &[case.to_string(), path.to_string()]);
        if run.seen != want {
            failures.push(format!("{case}: want {want:?}, saw {:?} ({})", run.seen, run.stderr.trim()));
        }
        let run = run_sandboxed(&without_seccomp, &[case.to_string(), format!("{path}2")]);
        if run.seen != control {
            failures.push(format!("{case} without seccomp: want {control:?}, saw {:?} ({})", run.seen, run.stderr.trim()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
