//! The full IPC fuzz run, one command: `ipc-fuzz [frames=10000000]`
//! generated frames through the decoder, then the same number at a live
//! hostd connection from a sandboxed module (a bystander pair answering
//! throughout). Prints frames/s, how each module life ended, hostd's peak
//! RSS and fds, and every finding. Needs root (real sandboxes).

use hostd_tests::fuzz::{fuzz_daemon, fuzz_decoder};
use std::time::Duration;

fn main() {
    let frames: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000_000);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("ipc-fuzz runs real sandboxes: run it as root");
        std::process::exit(2);
    }
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    let dec = fuzz_decoder(frames, seed);
    println!("decoder: {} frames in {:.1} s ({:.0} frames/s): {} messages decoded, {} frames refused, seed {seed}",
        dec.frames, dec.secs, dec.frames as f64 / dec.secs, dec.decoded, dec.refused);
    let live = fuzz_daemon(frames, 50_000, Duration::from_secs(3 * 3600));
    println!("live hostd: {} frames in {:.1} s ({:.0} frames/s) over {} connections; bystander answered {} checks",
        live.frames, live.secs, live.frames as f64 / live.secs, live.lives, live.bystander_checks);
    println!("  lives ended by: {}", live.endings.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "));
    println!("  hostd peak RSS {} MiB, peak fds {}", live.max_rss_kib / 1024, live.max_fds);
    let findings: Vec<&String> = dec.findings.iter().chain(&live.findings).collect();
    if findings.is_empty() {
        println!("findings: none");
    } else {
        println!("findings:");
        for f in &findings {
            println!("  {f}");
        }
        std::process::exit(1);
    }
}
