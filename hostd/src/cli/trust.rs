//! Maintainer tooling: `hostd keygen`, `hostd sign`, `hostd verify`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hostd::config::HostConfig;
use hostd::manifest::Manifest;
use hostd::trust;

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("hostd: {msg}");
    ExitCode::from(1)
}

pub fn keygen(out: &Path) -> ExitCode {
    let key = match trust::generate_key() {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    // create_new + 0600: never overwrite a key, never leave it readable.
    let file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(out);
    let written = file.and_then(|mut f| writeln!(f, "{}", hex::encode(key.to_secret_bytes())));
    if let Err(e) = written {
        return fail(format!("{}: {e}", out.display()));
    }
    println!("{}", trust::public_hex(&key));
    eprintln!("secret key written to {} (mode 0600); the line above is the public key for trust anchors", out.display());
    ExitCode::SUCCESS
}

/// Fill `[binary]` from the entry point's bytes, then add (or replace) this
/// key's signature. Comments and layout of module.toml are kept.
pub fn sign(dir: &Path, key_file: &Path, name: Option<String>) -> ExitCode {
    match sign_inner(dir, key_file, name) {
        Ok(msg) => {
            eprintln!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn sign_inner(dir: &Path, key_file: &Path, name: Option<String>) -> Result<String, String> {
    let key = trust::read_key_file(key_file).map_err(|e| e.to_string())?;
    let public = trust::public_hex(&key);
    let file = dir.join("module.toml");
    let valid = Manifest::load(&file).map_err(|e| e.to_string())?;
    // hostd loads a module only from a directory of its own name; signing
    // one elsewhere would only fail later, at load or reload.
    let dir_name = std::fs::canonicalize(dir).ok().and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_default();
    if dir_name != valid.manifest.name {
        return Err(format!(
            "{}: the manifest names module {:?} but its directory is {dir_name:?}; rename one of them (hostd loads a module only from a directory of its name)",
            dir.display(),
            valid.manifest.name
        ));
    }
    let bin = trust::open_inside(dir, &valid.manifest.entry_point)?;
    hostd::elf::check_static(&bin).map_err(|why| format!("{}: {why}", dir.join(&valid.manifest.entry_point).display()))?;
    let (digest, size) = trust::hash_fd(&bin).map_err(|e| format!("{}: {e}", valid.manifest.entry_point))?;
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("{}: {e}", file.display()))?;
    let hash = trust::sha256_string(&digest);
    let binary_changed = valid.manifest.binary.as_ref().is_none_or(|b| b.hash != hash || b.size != size);
    if binary_changed {
        let t = doc.entry("binary").or_insert(toml_edit::table());
        t["hash"] = toml_edit::value(hash.clone());
        t["size"] = toml_edit::value(size as i64);
    }
    // Sign what the file will say once the signature is in.
    let mut manifest = valid.manifest.clone();
    let with_binary: Manifest = toml::from_str(&doc.to_string()).map_err(|e| e.to_string())?;
    manifest.binary = with_binary.binary;
    let signature = trust::sign(&manifest, &key);
    let signer = name.unwrap_or_else(|| key_file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
    let sigs = doc.entry("signatures").or_insert(toml_edit::table());
    let sigs = sigs.as_table_like_mut().ok_or("[signatures] is not a table")?;
    if !sigs.contains_key("maintainers") {
        sigs.insert("maintainers", toml_edit::value(toml_edit::Array::new()));
    }
    let arr = sigs.get_mut("maintainers").and_then(|m| m.as_array_mut()).ok_or("signatures.maintainers is not an array")?;
    if binary_changed && !arr.is_empty() {
        // Old signatures covered another binary; they would only mislead.
        arr.clear();
    }
    arr.retain(|v| v.as_inline_table().and_then(|t| t.get("public_key").or_else(|| t.get("key"))).and_then(|k| k.as_str()) != Some(public.as_str()));
    let mut entry = toml_edit::InlineTable::new();
    entry.insert("name", signer.clone().into());
    entry.insert("public_key", public.clone().into());
    entry.insert("signature", signature.into());
    arr.push(entry);
    let tmp = file.with_extension("toml.tmp");
    std::fs::write(&tmp, doc.to_string()).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &file).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(format!(
        "{}: signed as {signer} ({public}); binary {hash}, {size} bytes{}",
        file.display(),
        if binary_changed { " (updated [binary]; earlier signatures removed)" } else { "" }
    ))
}

pub fn verify(dir: &Path, config: &HostConfig) -> ExitCode {
    let m = match Manifest::load(&dir.join("module.toml")) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    match trust::verify(&m.manifest.name, dir, &m.manifest, m.declared_threshold, &config.trust) {
        Ok(v) => {
            let v = v.verification;
            println!(
                "{}: OK — binary {} ({} bytes); signed by {}; {} required",
                m.manifest.name,
                v.binary_sha256,
                v.binary_size,
                if v.signed_by.is_empty() { "nobody (unsigned modules allowed)".into() } else { v.signed_by.join(", ") },
                v.required
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

pub fn default_config_path() -> PathBuf {
    PathBuf::from("/etc/hostd/hostd.toml")
}
