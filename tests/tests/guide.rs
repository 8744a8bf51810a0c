//! docs/module-authors.md, run exactly as written: every block marked
//! `<!-- guide: file PATH -->` is written to PATH, every `<!-- guide: run -->`
//! block runs in bash (`set -euo pipefail`) in the guide's work directory,
//! and the `<!-- guide: start -->` block is started in the background (and
//! stopped, by pid, at the end). The work directory has the layout the
//! guide assumes: this repository as `hostd/` next to the module's crate;
//! `hostd` is on PATH. The crate's `target/` is a link to a directory
//! outside the clone, so a second run does not compile its dependencies
//! again.

use hostd_tests::{bin_dir, require_daemon, Scratch};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

enum Step {
    File(String, String),
    Run(String),
    Start(String),
}

/// The marked blocks of the guide, in order.
fn steps(guide: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        let Some(mark) = line.trim().strip_prefix("<!-- guide: ").and_then(|m| m.strip_suffix(" -->")) else { continue };
        let fence = lines.next().unwrap_or_default();
        assert!(fence.starts_with("```"), "a guide mark must be followed by a code block: {line}");
        let body: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
        let body = body.join("\n") + "\n";
        out.push(match mark.split_once(' ') {
            Some(("file", path)) => Step::File(path.to_string(), body),
            None if mark == "run" => Step::Run(body),
            None if mark == "start" => Step::Start(body),
            _ => panic!("unknown guide mark: {line}"),
        });
    }
    out
}

struct Background(Option<Child>);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            // SAFETY: signalling the child we started, by its pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn the_module_authors_guide_works_as_written() {
    if !require_daemon("the module authors' guide") {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("repository");
    let guide = std::fs::read_to_string(repo.join("docs/module-authors.md")).expect("docs/module-authors.md");
    let steps = steps(&guide);
    assert!(steps.len() >= 8, "the guide's marked steps were found: {}", steps.len());
    let scratch = Scratch::new("guide");
    let work = scratch.0.clone();
    std::os::unix::fs::symlink(&repo, work.join("hostd")).expect("link the repository");
    std::fs::create_dir_all(work.join("counter")).expect("mkdir");
    let cache = Path::new("/var/tmp/hostd-guide-target");
    std::fs::create_dir_all(cache).expect("cache dir");
    std::os::unix::fs::symlink(cache, work.join("counter/target")).expect("link target/");
    let path = format!("{}:{}", bin_dir().display(), std::env::var("PATH").unwrap_or_default());
    let mut hostd = Background(None);
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::File(rel, body) => {
                let p = work.join(rel);
                std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                std::fs::write(&p, body).expect("write guide file");
            }
            Step::Run(script) => {
                let out = Command::new("bash")
                    .args(["-c", &format!("set -euo pipefail\n{script}")])
                    .current_dir(&work)
                    .env("PATH", &path)
                    .env_remove("CARGO_TARGET_DIR")
                    .output()
                    .expect("bash");
                let log = hostd.0.as_ref().map(|_| std::fs::read_to_string(work.join("hostd.log")).unwrap_or_default()).unwrap_or_default();
                assert!(out.status.success(), "guide step {i} failed:\n{script}\n{}\n--- hostd log ---\n{log}", hostd_tests::output_text(&out));
            }
            Step::Start(script) => {
                let log = std::fs::File::create(work.join("hostd.log")).expect("log");
                let child = Command::new("bash")
                    .args(["-c", &format!("exec {}", script.trim())])
                    .current_dir(&work)
                    .env("PATH", &path)
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("start hostd as the guide does");
                hostd.0 = Some(child);
                // Up once the control socket answers and the module runs.
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let st = Command::new(bin_dir().join("hostd")).args(["--config", "hostd.toml", "status", "--json"]).current_dir(&work).output().expect("status");
                    let up = serde_json::from_slice::<serde_json::Value>(&st.stdout)
                        .ok()
                        .and_then(|v| v["modules"].as_array().cloned())
                        .is_some_and(|m| m.iter().any(|m| m["name"] == "counter" && m["handshaken"] == true));
                    if up {
                        break;
                    }
                    assert!(Instant::now() < deadline, "the guide's module never came up:\n{}", std::fs::read_to_string(work.join("hostd.log")).unwrap_or_default());
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}
