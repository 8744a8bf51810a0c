//! Unit tests of the host config (parsed from text, no files).

use super::*;

#[test]
fn empty_config_is_strict_defaults() {
    let c = HostConfig::parse("", Path::new("/etc/hostd/hostd.toml")).expect("valid");
    assert!(!c.trust.allow_unsigned);
    assert_eq!(c.trust.min_signatures, 1);
    assert!(c.sandbox.allow_downgrade.is_empty());
}

#[test]
fn errors_name_file_line_and_key() {
    let e = HostConfig::parse("[trust]\nallow_unsinged = true\n", Path::new("/etc/hostd/hostd.toml")).unwrap_err().to_string();
    assert!(e.contains("/etc/hostd/hostd.toml:2"), "{e}");
    assert!(e.contains("did you mean `allow_unsigned`"), "{e}");
    let e = HostConfig::parse("[[trust.anchors]]\nname = \"a\"\npublic_key = \"zz\"\n", Path::new("h.toml")).unwrap_err().to_string();
    assert!(e.contains("trust.anchors[0]"), "{e}");
}

#[test]
fn bounds_that_would_stall_or_invert_are_refused() {
    for bad in ["event_queue_len = 0", "events_per_write = 0", "module_event_share = 101", "max_timers = 0", "max_scan_entries = 0"] {
        let e = HostConfig::parse(&format!("[daemon]\n{bad}\n"), Path::new("h.toml")).unwrap_err().to_string();
        assert!(e.contains("daemon"), "{bad}: {e}");
    }
}

#[test]
fn metrics_listen_on_loopback_only() {
    let p = |t: &str| HostConfig::parse(t, Path::new("h.toml"));
    assert!(p("[metrics]\nlisten = \"127.0.0.1:9464\"\n").is_ok());
    assert!(p("[metrics]\nlisten = \"[::1]:9464\"\n").is_ok());
    for bad in ["0.0.0.0:9464", "192.168.1.2:9464", "localhost"] {
        let e = p(&format!("[metrics]\nlisten = \"{bad}\"\n")).unwrap_err().to_string();
        assert!(e.contains("metrics.listen"), "{bad}: {e}");
    }
}
