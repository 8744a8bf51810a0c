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

/// `section.key` → its default, as TOML text, for every key of the config.
fn flat_defaults() -> Vec<(String, String)> {
    fn walk(prefix: &str, t: &toml::Table, out: &mut Vec<(String, String)>) {
        for (k, v) in t {
            let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            match v {
                toml::Value::Table(sub) => walk(&key, sub, out),
                other => out.push((key, other.to_string())),
            }
        }
    }
    let value = toml::Value::try_from(HostConfig::default()).expect("serializes");
    let mut out = Vec::new();
    if let toml::Value::Table(t) = value {
        walk("", &t, &mut out);
    }
    out
}

/// docs/config.md has a row for every key with its default, and no row
/// for a key that does not exist: the reference cannot drift from the code.
/// Keys without a default value (optional ones) are listed as `(none)`.
#[test]
fn the_config_reference_lists_every_key_with_its_default() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config.md")).expect("docs/config.md");
    let rows: std::collections::BTreeMap<String, String> = doc
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let key = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let default = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((key.to_string(), default.to_string()))
        })
        .collect();
    let defaults = flat_defaults();
    let mut problems = Vec::new();
    for (key, default) in &defaults {
        match rows.get(key) {
            None => problems.push(format!("| `{key}` | `{default}` | … | is missing")),
            Some(d) if d != default => problems.push(format!("{key}: the doc says {d}, the code {default}")),
            Some(_) => {}
        }
    }
    let optional = ["daemon.control_socket", "daemon.control_group", "metrics.listen", "node.cookie_file", "node.rpc_user", "node.rpc_password"];
    for key in rows.keys() {
        if !defaults.iter().any(|(k, _)| k == key) && !optional.contains(&key.as_str()) {
            problems.push(format!("{key} is documented but is no config key"));
        }
    }
    assert!(problems.is_empty(), "docs/config.md:\n{}", problems.join("\n"));
}

/// `--config hostd.toml` (a bare file name): relative paths still end up
/// absolute, under the working directory.
#[test]
fn relative_paths_become_absolute_even_for_a_bare_file_name() {
    let c = HostConfig::parse("[paths]\ndata_dir = \"data\"\n", Path::new("hostd.toml")).expect("valid");
    assert!(c.paths.data_dir.is_absolute(), "{}", c.paths.data_dir.display());
    assert_eq!(c.paths.data_dir, std::env::current_dir().expect("cwd").join("data"));
}

#[test]
fn node_section_errors_name_the_key_and_the_password_is_never_shown() {
    let p = |t: &str| HostConfig::parse(t, Path::new("h.toml"));
    assert_eq!(p("").expect("valid").node.backend, NodeBackendKind::Standalone);
    let ok = p("[node]\nbackend = \"rpc\"\nrpc_url = \"http://127.0.0.1:18443\"\nrpc_user = \"u\"\nrpc_password = \"hunter2\"\n").expect("valid");
    assert!(!format!("{ok:?}").contains("hunter2"), "Debug shows the password");
    assert!(!toml::to_string(&ok).expect("serializes").contains("hunter2"), "serialization shows the password");
    let cases = [
        ("backend = \"bitcoind\"", "node.backend"),
        ("backend = \"rpc\"", "node.cookie_file"),
        ("backend = \"rpc\"\nrpc_url = \"https://h:1\"\ncookie_file = \"/c\"", "node.rpc_url"),
        ("backend = \"rpc\"\nrpc_url = \"http://u:p@h:1\"\ncookie_file = \"/c\"", "node.rpc_url"),
        ("backend = \"rpc\"\ncookie_file = \"rel/.cookie\"", "node.cookie_file"),
        ("backend = \"rpc\"\nrpc_user = \"u\"", "node.rpc_password"),
        ("backend = \"rpc\"\ncookie_file = \"/c\"\nrpc_user = \"u\"\nrpc_password = \"p\"", "node.cookie_file"),
        ("backend = \"rpc\"\ncookie_file = \"/c\"\npoll_interval_ms = 0", "node.poll_interval_ms"),
        ("backend = \"rpc\"\ncookie_file = \"/c\"\nmax_calls_per_module = 9", "node.max_calls_per_module"),
        ("rpc_pasword = \"x\"", "rpc_password"),
    ];
    for (body, key) in cases {
        let e = p(&format!("[node]\n{body}\n")).unwrap_err().to_string();
        assert!(e.contains(key), "{body}: {e}");
        assert!(!e.contains("hunter2"));
    }
}
