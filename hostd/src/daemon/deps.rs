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
    // Direct failures: a required dependency absent, or in a version its
    // requirement refuses.
    for m in modules {
        let name = m.manifest.manifest.name.as_str();
        for (dep, req) in &m.manifest.dependencies {
            let e = match by_name.get(dep.as_str()) {
                None => DepError::Missing { module: name.into(), dependency: dep.clone(), requirement: req.to_string() },
                Some(d) if !req.matches(&d.manifest.version) => DepError::Version {
                    module: name.into(),
                    dependency: dep.clone(),
                    requirement: req.to_string(),
                    found: d.manifest.version.to_string(),
                },
                Some(_) => continue,
            };
            failed.insert(name.into(), e);
            break;
        }
    }
    // Then to everything that requires a module that cannot load, once
    // each (a worklist over reverse edges: linear, however long the chain).
    let mut required_by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for m in modules {
        for dep in m.manifest.dependencies.keys() {
            required_by.entry(dep.as_str()).or_default().push(m.manifest.manifest.name.as_str());
        }
    }
    let mut work: std::collections::VecDeque<String> = failed.keys().cloned().collect();
    while let Some(broken) = work.pop_front() {
        let reason = failed.get(&broken).map(root_cause).unwrap_or_default();
        for dependent in required_by.get(broken.as_str()).into_iter().flatten() {
            if !failed.contains_key(*dependent) {
                let e = DepError::Unloadable { module: dependent.to_string(), dependency: broken.clone(), reason: reason.clone() };
                failed.insert(dependent.to_string(), e);
                work.push_back(dependent.to_string());
            }
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
        if let Err(cycle) = visit(&name, &by_name, &edges, &failed, &mut done, &mut order) {
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

/// What ultimately stops a dependency from loading: a chain of unloadable
/// modules names its first link's reason once, not nested per link (a long
/// chain would otherwise build messages quadratic in its length).
fn root_cause(why: &DepError) -> String {
    match why {
        DepError::Unloadable { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// Depth-first post-order from `start`, appending to `order`; an explicit
/// stack, so a chain as long as a hostile set of manifests likes cannot
/// overflow the thread's stack. Err: the cycle met, as a path that ends
/// where it began.
fn visit(
    start: &str,
    by_name: &BTreeMap<&str, &ModuleDir>,
    edges: &dyn Fn(&ModuleDir) -> Vec<String>,
    failed: &BTreeMap<String, DepError>,
    done: &mut BTreeSet<String>,
    order: &mut Vec<String>,
) -> Result<(), Vec<String>> {
    // (module, its dependencies, how many of them were visited)
    let mut stack: Vec<(String, Vec<String>, usize)> = Vec::new();
    let mut on_path: BTreeSet<String> = BTreeSet::new();
    let enter = |name: &str, stack: &mut Vec<(String, Vec<String>, usize)>, on_path: &mut BTreeSet<String>| {
        if let Some(m) = by_name.get(name) {
            let deps = edges(m).into_iter().filter(|d| !failed.contains_key(d)).collect();
            stack.push((name.to_string(), deps, 0));
            on_path.insert(name.to_string());
        }
    };
    if done.contains(start) {
        return Ok(());
    }
    enter(start, &mut stack, &mut on_path);
    while let Some((name, deps, next)) = stack.last_mut() {
        if let Some(d) = deps.get(*next).cloned() {
            *next += 1;
            if done.contains(&d) {
                continue;
            }
            if on_path.contains(&d) {
                let from = stack.iter().position(|(n, _, _)| *n == d).unwrap_or(0);
                let mut cycle: Vec<String> = stack[from..].iter().map(|(n, _, _)| n.clone()).collect();
                cycle.push(d);
                return Err(cycle);
            }
            enter(&d, &mut stack, &mut on_path);
        } else {
            let name = std::mem::take(name);
            stack.pop();
            on_path.remove(&name);
            done.insert(name.clone());
            order.push(name);
        }
    }
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
        let root = crate::scratch::Scratch::new("deps");
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
    }

    /// A 5,000-deep chain once overflowed a 2 MiB worker stack (the
    /// `hostd load` path) and aborted the daemon; now it resolves on a
    /// thread with that stack, in order, and a broken link at its end names
    /// one root cause, not 5,000 nested ones.
    #[test]
    fn a_very_long_chain_resolves_without_recursion() {
        let root = crate::scratch::Scratch::new("deps-chain");
        const N: usize = 5000;
        // m0 -> m1 -> … -> m4999, which needs nothing (or, in the broken
        // variant, the absent "ghost").
        let chain = |dir: &str, last: &str| -> Vec<ModuleDir> {
            (0..N)
                .map(|i| {
                    let deps = if i + 1 < N { format!("[dependencies]\nm{} = \"*\"\n", i + 1) } else { last.to_string() };
                    module(&root.join(dir), &format!("m{i}"), "1.0.0", &deps)
                })
                .collect()
        };
        let good = chain("good", "");
        let broken = chain("broken", "[dependencies]\nghost = \"*\"\n");
        let (order, bad) = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn_scoped(scope, || {
                    let (order, _) = resolve(&good.iter().collect::<Vec<_>>());
                    let (_, bad) = resolve(&broken.iter().collect::<Vec<_>>());
                    (order, bad)
                })
                .expect("thread")
                .join()
                .expect("no stack overflow")
        });
        assert_eq!(order.len(), N);
        assert_eq!(order.first().map(String::as_str), Some("m4999"), "dependencies first");
        assert_eq!(order.last().map(String::as_str), Some("m0"));
        assert_eq!(bad.len(), N, "a missing dependency at the end stops the whole chain");
        let longest = bad.iter().map(|(_, e)| e.to_string().len()).max().unwrap_or(0);
        assert!(longest < 200, "messages do not nest: {longest} bytes");
    }
}
