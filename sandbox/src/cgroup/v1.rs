//! cgroup v1 hierarchies (hybrid hosts; cgroups(7), "Cgroups version 1"):
//! a sandbox gets a directory beneath our own cgroup in each of the memory,
//! cpu and pids hierarchies, and is moved in after its clone (v1 has no
//! CLONE_INTO_CGROUP and no cgroup.kill).

use std::cell::Cell;
use std::fs;
use std::path::{Path, PathBuf};

use super::{read_keyed, read_u64, write_file, Cgroup, Kind, Usage};
use crate::error::SandboxError;
use crate::policy::CgroupLimits;

/// Create the sandbox's directory in each hierarchy (`(controller, dir)`)
/// and write `limits`.
pub(super) fn create(wanted: Vec<(String, PathBuf)>, limits: &CgroupLimits) -> Result<Cgroup, SandboxError> {
    let mut dirs: Vec<(String, PathBuf)> = Vec::new();
    for (controller, dir) in wanted {
        match fs::create_dir(&dir) {
            Ok(()) => dirs.push((controller, dir)),
            // cpu and cpuacct are often co-mounted: one directory serves both.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dirs.iter().any(|(_, d)| d == &dir) => {
                dirs.push((controller, dir))
            }
            Err(e) => {
                // Dropping removes what was already created.
                drop(Cgroup { kind: Kind::V1 { dirs }, emptied: Cell::new(false), graveyard: None });
                return Err(SandboxError::Cgroup { path: dir, op: "mkdir", source: e });
            }
        }
    }
    let cg = Cgroup { kind: Kind::V1 { dirs }, emptied: Cell::new(false), graveyard: None };
    write_limits(&cg, limits)?;
    Ok(cg)
}

fn write_limits(cg: &Cgroup, limits: &CgroupLimits) -> Result<(), SandboxError> {
    if let (Some(m), Some(dir)) = (limits.memory_max, cg.dir_for("memory")) {
        write_file(&dir.join("memory.limit_in_bytes"), &m.to_string())?;
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            let swap = limits.memory_swap_max.unwrap_or(0);
            write_file(&memsw, &(m + swap).to_string())?;
        } else if limits.memory_swap_max.unwrap_or(0) == 0 {
            // Without swap accounting, swappiness 0 is the closest to "no swap".
            let _ = write_file(&dir.join("memory.swappiness"), "0");
        }
    }
    if let (Some(c), Some(dir)) = (limits.cpu_max, cg.dir_for("cpu")) {
        write_file(&dir.join("cpu.cfs_period_us"), &c.period_us.to_string())?;
        write_file(&dir.join("cpu.cfs_quota_us"), &c.quota_us.to_string())?;
    }
    if let (Some(p), Some(dir)) = (limits.pids_max, cg.dir_for("pids")) {
        write_file(&dir.join("pids.max"), &p.to_string())?;
    }
    Ok(())
}

/// Move `pid` into each distinct directory.
pub(super) fn attach(dirs: &[(String, PathBuf)], pid: i32) -> Result<(), SandboxError> {
    let mut seen: Vec<&Path> = Vec::new();
    for (_, dir) in dirs {
        if seen.contains(&dir.as_path()) {
            continue;
        }
        seen.push(dir);
        write_file(&dir.join("cgroup.procs"), &pid.to_string())?;
    }
    Ok(())
}

pub(super) fn usage(cg: &Cgroup) -> Usage {
    let mem = cg.dir_for("memory");
    Usage {
        memory_current: mem.and_then(|d| read_u64(&d.join("memory.usage_in_bytes"))),
        memory_peak: mem.and_then(|d| read_u64(&d.join("memory.max_usage_in_bytes"))),
        cpu_usage_usec: cg
            .dir_for("cpu")
            .and_then(|d| read_u64(&d.join("cpuacct.usage")))
            .map(|ns| ns / 1000)
            .or_else(|| Some(cg.pids().into_iter().filter_map(proc_cpu_usec).sum())),
        pids_current: cg.dir_for("pids").and_then(|d| read_u64(&d.join("pids.current"))),
        oom_kills: mem.and_then(|d| read_keyed(&d.join("memory.oom_control"), "oom_kill")),
        cpu_nr_throttled: cg.dir_for("cpu").and_then(|d| read_keyed(&d.join("cpu.stat"), "nr_throttled")),
    }
}

/// utime + stime of one live process, in microseconds (proc(5) fields 14, 15).
fn proc_cpu_usec(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let ticks: u64 = fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * 1_000_000 / hz)
}
