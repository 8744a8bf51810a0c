//! A compromised daemon against hostd's real launcher (the launcher keeps
//! CAP_CHOWN and CAP_FOWNER; the daemon keeps nothing): `hostd-launcher-probe`
//! forks the launcher as `hostd run` does, becomes the daemon, and asks for
//! weakened sandboxes and for ownership of what is not a module's. Each
//! attack has its honest twin as the control, which must succeed, so a
//! launcher that refused everything would fail too.

use hostd_tests::{bin_dir, output_text, require_daemon, Scratch};
use std::os::unix::fs::MetadataExt;

#[test]
fn a_compromised_daemon_cannot_weaken_a_sandbox_or_take_a_file() {
    if !require_daemon("launcher probe") {
        return;
    }
    let scratch = Scratch::new("launcher-probe");
    let out = std::process::Command::new(bin_dir().join("hostd-launcher-probe"))
        .arg(&scratch.0)
        .arg(bin_dir().join("hostd-probe"))
        .output()
        .expect("run hostd-launcher-probe");
    let said = output_text(&out);
    assert!(out.status.success(), "{said}");
    let rows: Vec<(&str, &str)> = std::str::from_utf8(&out.stdout).expect("utf-8").lines().filter_map(|l| l.split_once('\t')).collect();
    let expected: [(&str, &str); 16] = [
        ("spawn: the honest policy (control)", "ok"),
        ("spawn: host uid 0", "outside the module range"),
        ("spawn: no user namespace", "every namespace must be on"),
        ("spawn: no network namespace", "every namespace must be on"),
        ("spawn: a bind of /", "no binds"),
        ("spawn: another module's files/ as /data", "the data mount must be"),
        ("spawn: no seccomp", "no seccomp filter"),
        ("spawn: no Landlock", "no Landlock ruleset"),
        ("spawn: capabilities kept", "capabilities must be dropped"),
        ("give: a file hostd wrote in files/ (control)", "ok"),
        ("give: a root-owned host file", "neither hostd nor a module"),
        ("give: hostd's module-ids.toml", "not in a module's files/"),
        ("give: a module's directory above files/", "not in a module's files/"),
        ("give: a file with a second hard link", "2 links"),
        ("give: files/ to uid 0", "not a module uid"),
        ("give: files/ to hostd's own uid", "not a module uid"),
    ];
    assert_eq!(rows.len(), expected.len(), "{said}");
    for ((row, got), (want_row, want)) in rows.iter().zip(expected) {
        assert_eq!(*row, want_row, "{said}");
        if want == "ok" {
            assert_eq!(*got, "ok", "control {row}: {said}");
        } else {
            assert!(got.starts_with("refused") && got.contains(want), "{row}: {got}");
        }
    }
    // What was refused is untouched; what was given is the module's.
    let meta = |p: &str| std::fs::metadata(scratch.0.join(p)).expect("stat");
    assert_eq!(meta("host-file").uid(), 0);
    assert_ne!(meta("data/module-ids.toml").uid(), 620_001);
    assert_ne!(meta("data/modules/m/files/linked").uid(), 620_001);
    assert_eq!((meta("data/modules/m/files/given").uid(), meta("data/modules/m/files/given").mode() & 0o7777), (620_001, 0o660));
}
