//! `module.toml`: parse strictly, validate, explain.
//!
//! Every section of the seeds' manifest is accepted (identity, metadata,
//! capabilities, dependencies, optional dependencies, config schema, binary,
//! signatures, payment, governance, compatibility) plus one hostd extension,
//! `[resources]`, with which a module may ask for *less* than the host gives.
//! Anything else is an error naming the file, the line, the key and the
//! nearest valid spelling.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use crate::permissions::Permission;
use crate::spelling;

/// The manifest exactly as written (after parsing).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub entry_point: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub dependencies: BTreeMap<String, String>,
    #[serde(default)]
    pub optional_dependencies: BTreeMap<String, String>,
    #[serde(default)]
    pub config_schema: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<BinarySection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signatures: Option<SignaturesSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub governance: Option<GovernanceSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<CompatibilitySection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequest>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BinarySection {
    /// `sha256:<64 hex>`.
    pub hash: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignaturesSection {
    /// `"M-of-N"`: how many maintainer signatures the module claims to need.
    /// The host's own minimum applies too; the larger wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
    #[serde(default)]
    pub maintainers: Vec<MaintainerSignature>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MaintainerSignature {
    pub name: String,
    /// 33-byte compressed secp256k1 key, hex. Informational: only the host's
    /// trust anchors decide whose signature counts.
    #[serde(alias = "key")]
    pub public_key: String,
    /// 64-byte compact ECDSA signature, hex.
    pub signature: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PaymentSection {
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_sats: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_payment_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commons_payment_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_signature: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GovernanceSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default)]
    pub maintainers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_period_days: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CompatibilitySection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_consensus_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_protocol_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_node_version: Option<String>,
    #[serde(default)]
    pub tested_with: Vec<String>,
}

/// hostd extension: limits a module asks for. They can only tighten the
/// host's limits, never loosen them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct ResourceRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_max_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_max: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nofile: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{file}: cannot read: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{file}:{line}: {message}")]
    Syntax { file: PathBuf, line: usize, message: String },
    #[error("{file}: `{key}`: {message}")]
    Invalid { file: PathBuf, key: String, message: String },
    #[error("{file}:{line}: `{key}`: {message}")]
    InvalidAt { file: PathBuf, line: usize, key: String, message: String },
}

impl ManifestError {
    /// The same error, pointing at the line of `text` it is about: the
    /// line holding the quoted value the message names, else the line
    /// assigning the key.
    pub(crate) fn at_line_of(self, text: &str) -> ManifestError {
        let ManifestError::Invalid { file, key, message } = self else { return self };
        let quoted = message.split('"').nth(1).filter(|q| !q.is_empty()).map(|q| format!("\"{q}\""));
        let leaf = key.rsplit('.').next().unwrap_or(&key).to_string();
        let assigns = |l: &str| l.trim_start().strip_prefix(leaf.as_str()).is_some_and(|r| r.trim_start().starts_with('='));
        let found = quoted.and_then(|q| text.lines().position(|l| l.contains(&q))).or_else(|| text.lines().position(assigns));
        match found {
            Some(i) => ManifestError::InvalidAt { file, line: i + 1, key, message },
            None => ManifestError::Invalid { file, key, message },
        }
    }
}

/// A manifest that passed validation, with its capabilities resolved.
#[derive(Debug, Clone)]
pub struct ValidManifest {
    pub manifest: Manifest,
    pub version: semver::Version,
    pub permissions: BTreeSet<Permission>,
    pub dependencies: BTreeMap<String, semver::VersionReq>,
    pub optional_dependencies: BTreeMap<String, semver::VersionReq>,
    /// `(required, of)` from `[signatures].threshold`.
    pub declared_threshold: Option<(usize, usize)>,
}

/// Module names: a safe charset that is also a valid cgroup, hostname and
/// directory name.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    let starts = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if name.is_empty() || name.len() > 48 || !ok_chars || !starts {
        return Err(format!(
            "{name:?} is not a valid module name: 1-48 characters of a-z, 0-9, '-', '_', starting with a letter or digit"
        ));
    }
    Ok(())
}

/// `"M-of-N"` with 1 ≤ M ≤ N.
pub fn parse_threshold(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("{s:?} is not a threshold like \"2-of-3\" (1 <= M <= N)");
    let (m, n) = s.split_once("-of-").ok_or_else(bad)?;
    let (m, n): (usize, usize) = (m.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if m == 0 || m > n {
        return Err(bad());
    }
    Ok((m, n))
}

impl Manifest {
    pub fn load(file: &Path) -> Result<ValidManifest, ManifestError> {
        let text = std::fs::read_to_string(file).map_err(|source| ManifestError::Read { file: file.into(), source })?;
        Manifest::parse(&text, file)
    }

    pub fn parse(text: &str, file: &Path) -> Result<ValidManifest, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| syntax_error(file, text, &e))?;
        manifest.validate(file).map_err(|e| e.at_line_of(text))
    }

    pub fn validate(self, file: &Path) -> Result<ValidManifest, ManifestError> {
        let invalid = |key: &str, message: String| ManifestError::Invalid { file: file.into(), key: key.into(), message };
        check_name(&self.name).map_err(|m| invalid("name", m))?;
        let version = semver::Version::parse(&self.version)
            .map_err(|e| invalid("version", format!("{:?} is not a semver version (e.g. \"1.2.3\"): {e}", self.version)))?;
        check_entry_point(&self.entry_point).map_err(|m| invalid("entry_point", m))?;
        let mut permissions = BTreeSet::new();
        for c in &self.capabilities {
            let p: Permission = c.parse().map_err(|m| invalid("capabilities", m))?;
            if !permissions.insert(p) {
                return Err(invalid("capabilities", format!("{c:?} is listed twice")));
            }
        }
        let reqs = |section: &str, deps: &BTreeMap<String, String>| {
            let mut out = BTreeMap::new();
            for (name, req) in deps {
                let key = format!("{section}.{name}");
                check_name(name).map_err(|m| invalid(&key, m))?;
                let r = semver::VersionReq::parse(req)
                    .map_err(|e| invalid(&key, format!("{req:?} is not a semver requirement (e.g. \">=1.0.0\"): {e}")))?;
                out.insert(name.clone(), r);
            }
            Ok::<_, ManifestError>(out)
        };
        let dependencies = reqs("dependencies", &self.dependencies)?;
        let optional_dependencies = reqs("optional_dependencies", &self.optional_dependencies)?;
        if let Some(both) = dependencies.keys().find(|k| optional_dependencies.contains_key(*k)) {
            return Err(invalid("optional_dependencies", format!("{both:?} is also a required dependency")));
        }
        if dependencies.contains_key(&self.name) || optional_dependencies.contains_key(&self.name) {
            return Err(invalid("dependencies", "a module cannot depend on itself".into()));
        }
        if let Some(b) = &self.binary {
            parse_sha256(&b.hash).map_err(|m| invalid("binary.hash", m))?;
        }
        let mut declared_threshold = None;
        if let Some(s) = &self.signatures {
            if let Some(t) = &s.threshold {
                declared_threshold = Some(parse_threshold(t).map_err(|m| invalid("signatures.threshold", m))?);
            }
        }
        if let Some(g) = &self.governance {
            if let Some(t) = &g.threshold {
                parse_threshold(t).map_err(|m| invalid("governance.threshold", m))?;
            }
        }
        if let Some(c) = &self.compatibility {
            for (key, v) in [
                ("compatibility.min_consensus_version", &c.min_consensus_version),
                ("compatibility.min_protocol_version", &c.min_protocol_version),
                ("compatibility.min_node_version", &c.min_node_version),
            ] {
                if let Some(v) = v {
                    semver::Version::parse(v).map_err(|e| invalid(key, format!("{v:?} is not a semver version: {e}")))?;
                }
            }
            for v in &c.tested_with {
                semver::Version::parse(v)
                    .map_err(|e| invalid("compatibility.tested_with", format!("{v:?} is not a semver version: {e}")))?;
            }
        }
        if let Some(r) = &self.resources {
            if r.cpu_percent.is_some_and(|c| c == 0 || c > 100 * 1024) {
                return Err(invalid("resources.cpu_percent", "must be 1..=102400 (100 = one CPU)".into()));
            }
        }
        Ok(ValidManifest { manifest: self, version, permissions, dependencies, optional_dependencies, declared_threshold })
    }
}

/// A relative path of normal components only: no `..`, no absolute path.
/// (Symlink escapes are checked against the real directory when the module
/// directory is opened.)
fn check_entry_point(e: &str) -> Result<(), String> {
    let p = Path::new(e);
    if e.is_empty() || p.is_absolute() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!("{e:?} must be a relative path inside the module directory (no '..', not absolute)"));
    }
    Ok(())
}

/// `sha256:<64 lowercase hex>` → bytes.
pub fn parse_sha256(s: &str) -> Result<[u8; 32], String> {
    let hexpart = s.strip_prefix("sha256:").ok_or_else(|| format!("{s:?} must look like \"sha256:<64 hex digits>\""))?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hexpart, &mut out).map_err(|_| format!("{s:?} must look like \"sha256:<64 hex digits>\""))?;
    Ok(out)
}

/// Turn toml/serde's error into one that names the line and, for an unknown
/// key, the nearest valid spelling.
pub fn syntax_error(file: &Path, text: &str, e: &toml::de::Error) -> ManifestError {
    let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1).unwrap_or(0);
    let mut message = e.message().trim().to_string();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((field, tail)) = rest.split_once('`') {
            let expected: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
            message = match spelling::nearest(field, &expected) {
                Some(n) => format!("unknown key `{field}`; did you mean `{n}`?"),
                None => format!("unknown key `{field}`; valid keys here: {}", expected.join(", ")),
            };
        }
    }
    if let Some(key) = key_at_line(text, line).filter(|k| !message.contains(k.as_str())) {
        message = format!("{key}: {message}");
    }
    ManifestError::Syntax { file: file.into(), line, message }
}

/// The dotted key a `key = value` line sets (`node.backend`), so a value
/// error names the key and not only the line.
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?.trim();
    let (key, _) = here.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let section = lines[..line - 1].iter().rev().map(|l| l.trim()).find(|l| l.starts_with('['));
    Some(match section.map(|s| s.trim_matches(|c| c == '[' || c == ']').trim()) {
        Some(s) if !s.is_empty() => format!("{s}.{key}"),
        _ => key.to_string(),
    })
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
