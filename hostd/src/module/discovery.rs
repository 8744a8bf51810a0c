//! Module directories: `modules_dir/<name>/{module.toml, <entry_point>, config.toml}`,
//! discovery, the merged module config, and host uid allocation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::HostConfig;
use crate::manifest::{Manifest, ManifestError, ValidManifest};

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{dir}: directory name {dir_name:?} differs from the manifest's name {name:?}; rename one of them")]
    NameMismatch { dir: PathBuf, dir_name: String, name: String },
    #[error("{file}: {message}")]
    Ids { file: PathBuf, message: String },
    #[error("{file}: {message}")]
    Config { file: PathBuf, message: String },
}

/// The module's own `config.toml`, if it has one: a regular file directly in
/// its directory. It is not signed, so it is opened beneath the directory
/// without following a symbolic link (one pointing at hostd.toml would hand
/// the host's whole config, other modules' sections included, to the
/// module), without blocking on a FIFO, and only up to `max_bytes`
/// (`[daemon] max_module_config_bytes`).
fn read_config(dir: &Path, max_bytes: u64) -> Result<Option<String>, ModuleError> {
    let file = dir.join("config.toml");
    let refuse = |message: String| ModuleError::Config { file: file.clone(), message };
    let dirf = std::fs::File::open(dir).map_err(|e| refuse(format!("open the module directory: {e}")))?;
    let f = match crate::beneath::open(&dirf, "config.toml", libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK, 0) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(refuse("is a symbolic link; a module's config must be a regular file in its directory".into()))
        }
        Err(e) => return Err(refuse(e.to_string())),
    };
    let meta = f.metadata().map_err(|e| refuse(e.to_string()))?;
    if !meta.is_file() {
        return Err(refuse("is not a regular file".into()));
    }
    if meta.len() > max_bytes {
        return Err(refuse(format!("is {} bytes; at most {max_bytes} are read (daemon.max_module_config_bytes)", meta.len())));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(f, max_bytes), &mut text).map_err(|e| refuse(e.to_string()))?;
    Ok(Some(text))
}

#[derive(Debug, Clone)]
pub struct ModuleDir {
    pub dir: PathBuf,
    pub manifest: ValidManifest,
    /// The module's `config.toml` with the host's `[modules.<name>]` on top.
    pub config: toml::Table,
}

/// Load one module directory. `installed` requires the directory name to
/// equal the manifest's name (a module cannot pose as another by its dir).
pub fn load_dir(dir: &Path, host: &HostConfig, installed: bool) -> Result<ModuleDir, ModuleError> {
    let manifest = Manifest::load(&dir.join("module.toml"))?;
    let name = manifest.manifest.name.clone();
    let dir_name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if installed && dir_name != name {
        return Err(ModuleError::NameMismatch { dir: dir.into(), dir_name, name });
    }
    let config_file = dir.join("config.toml");
    let mut config = match read_config(dir, host.daemon.max_module_config_bytes)? {
        Some(text) => toml::from_str::<toml::Table>(&text).map_err(|e| crate::manifest::syntax_error(&config_file, &text, &e))?,
        None => toml::Table::new(),
    };
    // Only this module's own section of the host config, never another's.
    if let Some(overrides) = host.modules.get(&name) {
        merge(&mut config, overrides);
    }
    Ok(ModuleDir { dir: dir.into(), manifest, config })
}

/// Host values win; tables merge key by key.
fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Every module under the modules dir; a bad one is reported and skipped,
/// never taking the others down.
pub fn discover(host: &HostConfig) -> (Vec<ModuleDir>, Vec<(PathBuf, ModuleError)>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    let Ok(entries) = std::fs::read_dir(&host.paths.modules_dir) else { return (ok, bad) };
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join("module.toml").exists()).collect();
    dirs.sort();
    for d in dirs {
        match load_dir(&d, host, true) {
            Ok(m) => ok.push(m),
            Err(e) => {
                tracing::error!(dir = %d.display(), error = %e, "module skipped");
                bad.push((d, e));
            }
        }
    }
    (ok, bad)
}

/// Host uid/gid per module, stable across restarts: `data_dir/module-ids.toml`.
#[derive(Debug, Default)]
pub struct IdMap {
    file: PathBuf,
    ids: BTreeMap<String, u32>,
}

impl IdMap {
    pub fn load(host: &HostConfig) -> Result<IdMap, ModuleError> {
        let file = host.paths.data_dir.join("module-ids.toml");
        let ids = match std::fs::read_to_string(&file) {
            Ok(t) => toml::from_str(&t).map_err(|e| ModuleError::Ids { file: file.clone(), message: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(ModuleError::Ids { file, message: e.to_string() }),
        };
        Ok(IdMap { file, ids })
    }

    /// Every recorded (module, id).
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.ids.iter().map(|(m, id)| (m.as_str(), *id))
    }

    /// The module's id, or the one it would get (without recording it).
    pub fn peek(&self, module: &str, host: &HostConfig) -> Result<u32, ModuleError> {
        if let Some(id) = self.ids.get(module) {
            return Ok(*id);
        }
        let r = host.identity;
        (r.first..r.first + r.count).find(|id| !self.ids.values().any(|v| v == id)).ok_or_else(|| ModuleError::Ids {
            file: self.file.clone(),
            message: format!("all {} ids from {} are taken; widen [identity] in the host config", r.count, r.first),
        })
    }

    /// Record the module's id (written atomically).
    pub fn assign(&mut self, module: &str, host: &HostConfig) -> Result<u32, ModuleError> {
        let id = self.peek(module, host)?;
        if self.ids.insert(module.into(), id).is_none() {
            let err = |e: std::io::Error| ModuleError::Ids { file: self.file.clone(), message: e.to_string() };
            if let Some(parent) = self.file.parent() {
                std::fs::create_dir_all(parent).map_err(err)?;
            }
            let tmp = self.file.with_extension("toml.tmp");
            std::fs::write(&tmp, toml::to_string(&self.ids).unwrap_or_default()).map_err(err)?;
            std::fs::rename(&tmp, &self.file).map_err(err)?;
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_module_is_reported_and_the_others_load() {
        let root = crate::scratch::Scratch::new("discover");
        let write = |dir: &str, text: &str| {
            let d = root.join(dir);
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join("module.toml"), text).expect("write");
        };
        write("alpha", "name = \"alpha\"\nversion = \"1.0.0\"\nentry_point = \"alpha\"\n");
        write("broken", "name = \"broken\"\nversion = \"one\"\nentry_point = \"b\"\n");
        write("impostor", "name = \"alpha2\"\nversion = \"1.0.0\"\nentry_point = \"x\"\n");
        write("zeta", "name = \"zeta\"\nversion = \"2.0.0\"\nentry_point = \"zeta\"\ncapabilities = [\"read_utxo\"]\n");
        let mut host = HostConfig::default();
        host.paths.modules_dir = root.to_path_buf();
        host.modules.insert("zeta".into(), toml::from_str("mode = \"host\"").expect("table"));
        std::fs::write(root.join("zeta/config.toml"), "mode = \"module\"\nkeep = 1\n").expect("config");
        let (ok, bad) = discover(&host);
        let names: Vec<&str> = ok.iter().map(|m| m.manifest.manifest.name.as_str()).collect();
        assert_eq!(names, ["alpha", "zeta"]);
        let errors: Vec<String> = bad.iter().map(|(_, e)| e.to_string()).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("broken/module.toml") && errors[0].contains("`version`"), "{errors:?}");
        assert!(errors[1].contains("differs from the manifest's name"), "{errors:?}");
        // Host values win over the module's config.toml; other keys stay.
        assert_eq!(ok[1].config.get("mode").and_then(|v| v.as_str()), Some("host"));
        assert_eq!(ok[1].config.get("keep").and_then(|v| v.as_integer()), Some(1));
    }

    /// A config.toml that links to the host config (with another module's
    /// secret section), a FIFO (which would block a reader forever) or an
    /// oversized file is refused, naming the file; only the module's own
    /// host section is ever merged.
    #[test]
    fn config_toml_is_a_regular_file_of_the_module_and_nothing_else() {
        let root = crate::scratch::Scratch::new("config");
        let dir = root.join("m");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("module.toml"), "name = \"m\"\nversion = \"1.0.0\"\nentry_point = \"m\"\n").expect("write");
        let host_toml = root.join("hostd.toml");
        std::fs::write(&host_toml, "[modules.other]\nsecret = \"hunter2\"\n").expect("write");
        let mut host = HostConfig::default();
        host.modules.insert("other".into(), toml::from_str("secret = \"hunter2\"").expect("table"));
        let cfg = dir.join("config.toml");
        // Control: a plain file loads, without the other module's section.
        std::fs::write(&cfg, "own = 1\n").expect("write");
        let m = load_dir(&dir, &host, true).expect("a regular config loads");
        assert_eq!(m.config.get("own").and_then(|v| v.as_integer()), Some(1));
        assert!(!toml::to_string(&m.config).unwrap_or_default().contains("hunter2"));
        let fifo = std::ffi::CString::new(cfg.to_string_lossy().as_bytes()).expect("path");
        type Plant<'a> = Box<dyn Fn() + 'a>;
        let rows: Vec<(&str, Plant, &str)> = vec![
            ("symlink to the host config", Box::new(|| std::os::unix::fs::symlink(&host_toml, &cfg).expect("symlink")), "symbolic link"),
            // SAFETY: mkfifo with a NUL-terminated path.
            ("FIFO", Box::new(|| assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0)), "not a regular file"),
            ("oversized", Box::new(|| std::fs::write(&cfg, vec![b'#'; (HostConfig::default().daemon.max_module_config_bytes + 1) as usize]).expect("write")), "at most"),
        ];
        for (what, plant, why) in rows {
            let _ = std::fs::remove_file(&cfg);
            plant();
            let e = load_dir(&dir, &host, true).map(|_| ()).expect_err(what).to_string();
            assert!(e.contains("config.toml") && e.contains(why), "{what}: {e}");
        }
    }
}
