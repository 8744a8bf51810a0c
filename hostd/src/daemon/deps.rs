//! Dependency resolution: which modules can load, and in what order.
//!
//! A required dependency must be present (and loadable) in a version its
//! requirement accepts; an optional one is ordered first when present and
//! acceptable, and ignored otherwise. A cycle is an error naming its path.

use crate::discovery::ModuleDir;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepError {
    #[error("module {module} needs {dependency} {requirement}, which is not installed")]
    Missing { module: String, dependency: String, requirement: String },
    #[error("module {module} needs {dependency} {requirement}, but {found} is installed")]
    Version { module: String, dependency: String, requirement: String, found: String },
    #[error("module {module} needs {dependency}, which cannot load: {reason}")]
    Unloadable { module: String, dependency: String, reason: String },
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

/// Load order for `modules` (dependencies first) and the modules that
/// cannot load, each with why.
pub fn resolve(modules: &[&ModuleDir]) -> (Vec<String>, Vec<(String, DepError)>) {
    let by_name: BTreeMap<&str, &ModuleDir> = modules.iter().map(|m| (m.manifest.manifest.name.as_str(), *m)).collect();
    let mut failed: BTreeMap<String, DepError> = BTreeMap::new();
    // Direct checks, repeated until no new failure propagates.
    loop {
        let mut changed = false;
        for m in modules {
            let name = m.manifest.manifest.name.as_str();
            if failed.contains_key(name) {
                continue;
            }
            for (dep, req) in &m.manifest.dependencies {
                let e = match by_name.get(dep.as_str()) {
                    None => Some(DepError::Missing { module: name.into(), dependency: dep.clone(), requirement: req.to_string() }),
                    Some(d) if !req.matches(&d.manifest.version) => Some(DepError::Version {
                        module: name.into(),
                        dependency: dep.clone(),
                        requirement: req.to_string(),
                        found: d.manifest.version.to_string(),
                    }),
                    Some(_) => failed.get(dep.as_str()).map(|why| DepError::Unloadable {
                        module: name.into(),
                        dependency: dep.clone(),
                        reason: why.to_string(),
                    }),
                };
                if let Some(e) = e {
                    failed.insert(name.into(), e);
                    changed = true;
                    break;
                }
            }
        }
        if !changed {
            break;
        }
    }
    // Edges: required deps, and optional deps that are present, acceptable and loadable.
    let edges = |m: &ModuleDir| -> Vec<String> {
        let opt = m.manifest.optional_dependencies.iter().filter(|(d, req)| {
            by_name.get(d.as_str()).is_some_and(|dm| req.matches(&dm.manifest.version)) && !failed.contains_key(d.as_str())
        });
        m.manifest.dependencies.iter().chain(opt).map(|(d, _)| d.clone()).collect()
    };
    let mut order = Vec::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut cyclic: Vec<(String, DepError)> = Vec::new();
    for m in modules {
        let name = m.manifest.manifest.name.clone();
        if failed.contains_key(&name) || done.contains(&name) {
            continue;
        }
        let mut path = Vec::new();
        if let Err(cycle) = visit(&name, &by_name, &edges, &failed, &mut done, &mut path, &mut order) {
            for member in &cycle[..cycle.len() - 1] {
                if !failed.contains_key(member) && !cyclic.iter().any(|(n, _)| n == member) {
                    cyclic.push((member.clone(), DepError::Cycle(cycle.clone())));
                }
            }
            done.extend(cycle);
        }
    }
    let cyclic_names: BTreeSet<String> = cyclic.iter().map(|(n, _)| n.clone()).collect();
    // Anything depending on a cycle member cannot load either.
    order.retain(|n| !cyclic_names.contains(n));
    let mut bad: Vec<(String, DepError)> = failed.into_iter().collect();
    bad.extend(cyclic);
    (order, bad)
}

fn visit(
    name: &str,
    by_name: &BTreeMap<&str, &ModuleDir>,
    edges: &dyn Fn(&ModuleDir) -> Vec<String>,
    failed: &BTreeMap<String, DepError>,
    done: &mut BTreeSet<String>,
    path: &mut Vec<String>,
    order: &mut Vec<String>,
) -> Result<(), Vec<String>> {
    if done.contains(name) {
        return Ok(());
    }
    if let Some(pos) = path.iter().position(|p| p == name) {
        let mut cycle = path[pos..].to_vec();
        cycle.push(name.to_string());
        return Err(cycle);
    }
    let Some(m) = by_name.get(name) else { return Ok(()) };
    path.push(name.to_string());
    for d in edges(m) {
        if !failed.contains_key(&d) {
            visit(&d, by_name, edges, failed, done, path, order)?;
        }
    }
    path.pop();
    done.insert(name.to_string());
    order.push(name.to_string());
    Ok(())
}

/// Loaded modules that require `module` (directly).
pub fn dependents<'a>(module: &str, loaded: impl Iterator<Item = &'a ModuleDir>) -> Vec<String> {
    loaded
        .filter(|m| m.manifest.dependencies.contains_key(module))
        .map(|m| m.manifest.manifest.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HostConfig;

    fn module(root: &std::path::Path, name: &str, version: &str, deps: &str) -> ModuleDir {
        let d = root.join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        let text = format!("name = \"{name}\"\nversion = \"{version}\"\nentry_point = \"x\"\n{deps}");
        std::fs::write(d.join("module.toml"), text).expect("write");
        crate::discovery::load_dir(&d, &HostConfig::default(), true).expect("valid")
    }

    #[test]
    fn order_missing_versions_optional_and_cycles() {
        let root = std::env::temp_dir().join(format!("hostd-deps-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let ms = [
            module(&root, "app", "1.0.0", "[dependencies]\nlib = \">=1.2\"\n[optional_dependencies]\nextra = \"1\"\n"),
            module(&root, "lib", "1.3.0", ""),
            module(&root, "extra", "1.0.0", ""),
            module(&root, "old", "1.0.0", "[dependencies]\nlib = \"^2\"\n"),
            module(&root, "lost", "1.0.0", "[dependencies]\nghost = \"*\"\n"),
            module(&root, "chain", "1.0.0", "[dependencies]\nlost = \"*\"\n"),
            module(&root, "ping", "1.0.0", "[dependencies]\npong = \"*\"\n"),
            module(&root, "pong", "1.0.0", "[dependencies]\nping = \"*\"\n"),
        ];
        let refs: Vec<&ModuleDir> = ms.iter().collect();
        let (order, bad) = resolve(&refs);
        let pos = |n: &str| order.iter().position(|o| o == n).unwrap_or(usize::MAX);
        assert!(pos("lib") < pos("app") && pos("extra") < pos("app"), "{order:?}");
        let why: BTreeMap<String, String> = bad.iter().map(|(n, e)| (n.clone(), e.to_string())).collect();
        assert!(why["old"].contains("needs lib ^2, but 1.3.0 is installed"), "{why:?}");
        assert!(why["lost"].contains("ghost"), "{why:?}");
        assert!(why["chain"].contains("cannot load"), "{why:?}");
        assert!(why["ping"].contains("dependency cycle: ping -> pong -> ping"), "{why:?}");
        assert!(why.contains_key("pong"));
        assert_eq!(order.len(), 3, "{order:?}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
