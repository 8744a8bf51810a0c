//! Resource and disk monitoring: every few seconds, each running module's
//! cgroup usage against its limits and each module's `files/` against its
//! quota (ResourceLimitWarning; `files/` is also written from inside the
//! sandbox, where hostd's per-write check does not reach), and free space
//! in the data directory (DiskSpaceLow), each warned once per crossing.

use super::Host;
use hostd_protocol::{Event, EventPayload, EventType};
use std::sync::Arc;
use std::time::Duration;

/// Run forever (spawned once by `hostd run`).
pub async fn monitor(host: Arc<Host>) {
    let mut warned: std::collections::HashSet<(String, &'static str)> = std::collections::HashSet::new();
    let mut disk_warned = false;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let running: Vec<(String, u64, u64, u64)> = host
            .loaded()
            .values()
            .filter_map(|s| {
                let l = crate::policygen::effective_limits(host.config.limits_for(s.name()), &s.module.manifest);
                s.sandbox_key.map(|k| (s.name().to_string(), k, l.memory_max_bytes, l.pids_max))
            })
            .collect();
        let pct = u64::from(host.config.daemon.resource_warn_percent);
        let files_quota = host.config.daemon.files_quota_bytes;
        for (name, key, mem_max, pids_max) in running {
            let u = host.launcher.usage(key).await;
            let files = measure_files(&host, &name).await;
            for (resource, used, limit) in [("memory", u.memory_current, mem_max), ("pids", u.pids_current, pids_max), ("files", files, files_quota)] {
                let Some(used) = used else { continue };
                let over = used * 100 >= limit * pct;
                let k = (name.clone(), resource);
                if over && warned.insert(k.clone()) {
                    host.bus.publish(Event {
                        event_type: EventType::ResourceLimitWarning,
                        publisher: None,
                        payload: EventPayload::ResourceLimitWarning { module_name: name.clone(), resource: resource.into(), used, limit },
                    });
                } else if !over {
                    warned.remove(&k);
                }
            }
        }
        if let Some((avail, total)) = disk_space(&host.config.paths.data_dir) {
            let low = avail * 100 < total * u64::from(host.config.daemon.disk_low_percent);
            if low && !disk_warned {
                host.bus.publish(Event {
                    event_type: EventType::DiskSpaceLow,
                    publisher: None,
                    payload: EventPayload::DiskSpaceLow {
                        path: host.config.paths.data_dir.display().to_string(),
                        available_bytes: avail,
                        total_bytes: total,
                    },
                });
            }
            disk_warned = low;
        }
    }
}

/// Walk the module's `files/` (on the blocking pool) and keep the result
/// for `hostd status`.
async fn measure_files(host: &Arc<Host>, name: &str) -> Option<u64> {
    let dir = host.config.module_data_dir(name).join("files");
    let max_entries = host.config.daemon.max_files_entries;
    let measured = tokio::task::spawn_blocking(move || {
        let root = std::fs::File::open(&dir).map_err(|e| e.to_string())?;
        super::files_usage::measure(&root, max_entries).map(|u| u.bytes).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    if let Err(e) = &measured {
        tracing::warn!(module = name, "files/ not measured: {e}");
    }
    let used = measured.as_ref().ok().copied();
    host.with_module(name, |s| s.files_used = Some(measured));
    used
}

fn disk_space(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: zeroed statvfs is a valid out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: NUL-terminated path and a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize))
}
