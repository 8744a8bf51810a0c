//! A throwaway hostd installation for end-to-end tests: its own modules,
//! data and run directories, a signing key that is the only trust anchor,
//! and a `hostd run` child that is stopped (by pid) when dropped.

use crate::{bin_dir, hostd_bin, output_text as text, Scratch};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A `hostd status` module row that is running and has handshaken.
pub fn running(m: &serde_json::Value) -> bool {
    m["state"] == "running" && m["handshaken"] == true
}

/// A module row's `last_exit`, or "".
pub fn last_exit(m: &serde_json::Value) -> String {
    m["last_exit"].as_str().unwrap_or("").to_string()
}

pub struct HostdEnv {
    pub scratch: Scratch,
    pub config: PathBuf,
    key: PathBuf,
    child: Option<Child>,
    /// Extra environment for `hostd run` (e.g. NOTIFY_SOCKET).
    pub env: Vec<(String, String)>,
    /// A network namespace `hostd run` starts in (a host of a
    /// [`crate::netbed::NetBed`]); the CLI reaches it through the control
    /// socket from anywhere.
    pub netns: Option<PathBuf>,
}


impl HostdEnv {
    /// `daemon_toml` is appended to the `[daemon]` section.
    pub fn new(tag: &str, daemon_toml: &str) -> HostdEnv {
        HostdEnv::with_restart(tag, daemon_toml, "backoff_initial_ms = 100\nbackoff_max_ms = 400\n")
    }

    /// Like [`HostdEnv::new`], with `restart_toml` as `[daemon.restart]`.
    pub fn with_restart(tag: &str, daemon_toml: &str, restart_toml: &str) -> HostdEnv {
        let scratch = Scratch::new(tag);
        let root = &scratch.0;
        for d in ["modules", "data", "run"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        let key = root.join("maintainer.key");
        let out = Command::new(hostd_bin()).args(["keygen", "--out"]).arg(&key).output().expect("keygen");
        assert!(out.status.success(), "keygen: {}", text(&out));
        let public = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let config = root.join("hostd.toml");
        let body = format!(
            "[paths]\nmodules_dir = \"modules\"\ndata_dir = \"data\"\nrun_dir = \"run\"\n\n\
             [[trust.anchors]]\nname = \"test\"\npublic_key = \"{public}\"\n\n\
             [daemon]\ngrace_ms = 2000\n{daemon_toml}\n\n\
             [daemon.restart]\n{restart_toml}"
        );
        std::fs::write(&config, body).expect("write config");
        HostdEnv { scratch, config, key, child: None, env: Vec::new(), netns: None }
    }

    pub fn modules_dir(&self) -> PathBuf {
        self.scratch.0.join("modules")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.scratch.0.join("data")
    }

    /// Install `binary` as module `name` with `capabilities`, signed by the anchor.
    pub fn install(&self, name: &str, binary: &Path, capabilities: &[&str], extra_manifest: &str) {
        let dir = self.modules_dir().join(name);
        std::fs::create_dir_all(&dir).expect("mkdir module");
        std::fs::copy(binary, dir.join(name)).unwrap_or_else(|e| panic!("copy {}: {e}", binary.display()));
        let caps: Vec<String> = capabilities.iter().map(|c| format!("{c:?}")).collect();
        let manifest = format!(
            "name = \"{name}\"\nversion = \"1.0.0\"\nentry_point = \"{name}\"\ncapabilities = [{}]\n{extra_manifest}\n",
            caps.join(", ")
        );
        std::fs::write(dir.join("module.toml"), manifest).expect("write manifest");
        self.sign(name);
    }

    /// Install `binary` as module `name` with the manifest (and
    /// config.toml, if any) of the source directory `src` (e.g.
    /// modules/mesh), signed by the anchor: the module as shipped.
    pub fn install_shipped(&self, name: &str, binary: &Path, src: &Path) {
        let dir = self.modules_dir().join(name);
        std::fs::create_dir_all(&dir).expect("mkdir module");
        std::fs::copy(binary, dir.join(name)).unwrap_or_else(|e| panic!("copy {}: {e}", binary.display()));
        for f in ["module.toml", "config.toml"] {
            if src.join(f).exists() {
                std::fs::copy(src.join(f), dir.join(f)).unwrap_or_else(|e| panic!("copy {f}: {e}"));
            }
        }
        self.sign(name);
    }

    /// Sign module `name` again with the anchor's key (after editing it).
    pub fn sign(&self, name: &str) {
        let dir = self.modules_dir().join(name);
        let out = Command::new(hostd_bin()).arg("sign").arg(&dir).arg("--key").arg(&self.key).output().expect("sign");
        assert!(out.status.success(), "sign {name}: {}", text(&out));
    }

    /// Install the test module binary under `name` (its role is in the name).
    pub fn install_testmod(&self, name: &str, capabilities: &[&str], extra_manifest: &str) {
        self.install(name, &bin_dir().join("hostd-testmod"), capabilities, extra_manifest);
    }

    /// Install the chain test module (tests/src/bin/chainmod.rs) as `name`.
    pub fn install_chainmod(&self, name: &str, capabilities: &[&str]) {
        self.install(name, &bin_dir().join("hostd-chainmod"), capabilities, "");
    }

    /// A bystander pair: `t-good` serves `ping`, `t-caller` calls it.
    pub fn install_bystander(&self) {
        self.install_testmod("t-good", &["register_module_api"], "");
        self.install_testmod("t-caller", &["call_module"], "");
    }

    pub fn wait_bystander(&self) {
        let t = Duration::from_secs(30);
        self.wait_module("t-good", "API registered", t, |m| m["state"] == "running" && m["api"].as_array().is_some_and(|a| !a.is_empty()));
        self.wait_module("t-caller", "running", t, running);
    }

    /// Start `hostd run` and wait until its control socket answers.
    pub fn start(&mut self) {
        let log = std::fs::File::create(self.scratch.0.join("hostd.log")).expect("log file");
        let mut cmd = Command::new(hostd_bin());
        cmd.arg("--config")
            .arg(&self.config)
            .args(["--log", "info", "run"])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log);
        let netns = self.netns.as_ref().map(|p| std::fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display())));
        if let Some(ns) = &netns {
            use std::os::fd::AsRawFd;
            use std::os::unix::process::CommandExt;
            let fd = ns.as_raw_fd();
            // SAFETY: setns is a single system call, async-signal-safe in
            // the forked child; the fd stays open until spawn returns.
            unsafe {
                cmd.pre_exec(move || if libc::setns(fd, libc::CLONE_NEWNET) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) });
            }
        }
        let child = cmd.spawn().expect("spawn hostd run");
        drop(netns);
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.ctl(&["status", "--json"]).status.success() {
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("hostd run exited with {st}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("hostd run did not come up: {}", self.log());
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.0.join("hostd.log")).unwrap_or_default()
    }

    /// Run a hostd CLI command against this installation.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(hostd_bin()).arg("--config").arg(&self.config).args(args).output().expect("run hostd")
    }

    /// `hostd module <module> <args…>`: its stdout then stderr.
    pub fn module_cli(&self, module: &str, args: &[&str]) -> String {
        let mut all = vec!["module", module];
        all.extend_from_slice(args);
        text(&self.ctl(&all))
    }

    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(out.status.success(), "hostd {args:?}: {}\n--- hostd log ---\n{}", text(&out), self.log());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ctl_ok(&["status", "--json"])).expect("status json")
    }

    /// The status row of `module`, or Null.
    pub fn module(&self, module: &str) -> serde_json::Value {
        self.status()["modules"]
            .as_array()
            .and_then(|a| a.iter().find(|m| m["name"] == module).cloned())
            .unwrap_or(serde_json::Value::Null)
    }

    /// Poll `module`'s status row until `pred` holds.
    pub fn wait_module(&self, module: &str, what: &str, timeout: Duration, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.module(module);
            if pred(&m) {
                return m;
            }
            if Instant::now() > deadline {
                panic!("{module}: {what} not reached; last status {m:#}\n--- hostd log ---\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9` hostd (the launcher follows it and kills every sandbox).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM hostd and wait for a clean exit.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        // SAFETY: signalling the child we started, by its pid.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        c.wait().ok()
    }
}

impl Drop for HostdEnv {
    fn drop(&mut self) {
        self.stop();
    }
}
