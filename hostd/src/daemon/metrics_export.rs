//! What `hostd metrics` prints and the `[metrics]` listener serves: hostd's
//! own series (module state, restarts, cgroup usage, event deliveries and
//! drops, requests and their latencies, denials, throttling, storage) and
//! every metric modules reported, in the Prometheus text format.
//!
//! Module metrics become the family `module_<name>` with the reporting
//! module as label `module` (a label of the module's own called `module`
//! is renamed `exported_module`, as Prometheus does with `honor_labels`).

use super::prometheus::{render, Family, Labels};
use super::request_stats::Histogram;
use super::storage::ModuleStore;
use super::{Host, ModState};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What one module's series are made of, taken under the modules lock.
struct Row {
    name: String,
    state: ModState,
    up: bool,
    restarts: u32,
    denials: u64,
    throttled_secs: f64,
    requests: Histogram,
    store: Option<Arc<ModuleStore>>,
    files_used: Option<u64>,
    sandbox_key: Option<u64>,
}

const STATES: [ModState; 6] = [ModState::Starting, ModState::Running, ModState::Stopping, ModState::Backoff, ModState::Failed, ModState::Stopped];

/// Families by name, so each is made once.
#[derive(Default)]
struct Families(BTreeMap<&'static str, Family>);

impl Families {
    fn add(&mut self, name: &'static str, kind: &'static str, help: &str, labels: Labels, value: f64) {
        self.0.entry(name).or_insert_with(|| Family::new(name, kind, help)).add(labels, value);
    }

    fn histogram(&mut self, name: &'static str, help: &str, module: &str, h: &Histogram) {
        let f = self.0.entry(name).or_insert_with(|| Family::new(name, "histogram", help));
        let m = || vec![("module".to_string(), module.to_string())];
        for (le, n) in &h.buckets {
            let mut l = m();
            l.push(("le".into(), format!("{le}")));
            f.samples.push(("_bucket", l, *n as f64));
        }
        let mut l = m();
        l.push(("le".into(), "+Inf".into()));
        f.samples.push(("_bucket", l, h.count as f64));
        f.samples.push(("_sum", m(), h.sum_secs));
        f.samples.push(("_count", m(), h.count as f64));
    }
}

pub async fn gather(host: &Arc<Host>) -> String {
    let rows: Vec<Row> = host
        .loaded()
        .values()
        .map(|s| Row {
            name: s.name().to_string(),
            state: s.state,
            up: s.state == ModState::Running && s.handshaken,
            restarts: s.restarts,
            denials: s.denials,
            throttled_secs: s.conn.as_ref().map_or(0, |c| c.throttled_ms()) as f64 / 1e3,
            requests: s.requests.histogram(),
            // Its usage is read after the modules lock is released: that
            // waits for the store's writes and reads its directory.
            store: s.store.clone(),
            files_used: s.files_used.as_ref().and_then(|r| r.as_ref().ok().copied()),
            sandbox_key: s.sandbox_key,
        })
        .collect();
    let mut f = Families::default();
    f.add("hostd_up", "gauge", "1 while hostd answers.", vec![], 1.0);
    f.add("hostd_uptime_seconds", "gauge", "Seconds since hostd started.", vec![], host.started.elapsed().as_secs_f64());
    f.add("hostd_modules_loaded", "gauge", "Modules loaded.", vec![], rows.len() as f64);
    for r in &rows {
        let m = || vec![("module".to_string(), r.name.clone())];
        f.add("hostd_module_up", "gauge", "1 while the module runs and has handshaken.", m(), f64::from(u8::from(r.up)));
        for st in STATES {
            let mut l = m();
            l.push(("state".into(), st.to_string()));
            f.add("hostd_module_state", "gauge", "1 for the module's current state.", l, f64::from(u8::from(st == r.state)));
        }
        f.add("hostd_module_restarts_total", "counter", "Restarts after crashes since the module was loaded.", m(), f64::from(r.restarts));
        f.add("hostd_module_permission_denials_total", "counter", "Requests refused for a missing permission.", m(), r.denials as f64);
        f.add("hostd_module_throttled_seconds_total", "counter", "Time the module's frames waited for its rate limit (this connection).", m(), r.throttled_secs);
        f.histogram("hostd_module_request_duration_seconds", "From a decoded request to its queued response.", &r.name, &r.requests);
        let ev = host.bus.stats(&r.name);
        f.add("hostd_module_events_delivered_total", "counter", "Events taken into the module's queue.", m(), ev.delivered as f64);
        for (reason, n) in [("queue_full", ev.dropped_full), ("host_share", ev.dropped_host)] {
            let mut l = m();
            l.push(("reason".into(), reason.into()));
            f.add("hostd_module_events_dropped_total", "counter", "Events dropped for the module: its queue (or the module-caused share of it) full, or host events with the whole queue full.", l, n as f64);
        }
        f.add("hostd_module_events_queued", "gauge", "Events waiting in the module's queue.", m(), ev.queued as f64);
        if let Some(u) = r.store.as_ref().map(|st| st.usage()) {
            f.add("hostd_module_storage_used_bytes", "gauge", "Keys, values and tree charges stored.", m(), u.used_bytes as f64);
            f.add("hostd_module_storage_on_disk_bytes", "gauge", "The database's data files on disk.", m(), u.on_disk_bytes as f64);
            f.add("hostd_module_storage_quota_bytes", "gauge", "The module's storage quota.", m(), u.quota_bytes as f64);
        }
        if let Some(used) = r.files_used {
            f.add("hostd_module_files_used_bytes", "gauge", "Allocated bytes in the module's files/ at the last walk.", m(), used as f64);
        }
        if let Some(key) = r.sandbox_key {
            let u = host.launcher.usage(key).await;
            for (name, help, v) in [
                ("hostd_module_memory_bytes", "The sandbox cgroup's memory.current.", u.memory_current.map(|b| b as f64)),
                ("hostd_module_cpu_seconds_total", "CPU time of the sandbox cgroup.", u.cpu_usage_usec.map(|us| us as f64 / 1e6)),
                ("hostd_module_pids", "Processes in the sandbox cgroup.", u.pids_current.map(|p| p as f64)),
                ("hostd_module_oom_kills_total", "OOM kills inside the sandbox cgroup.", u.oom_kills.map(|n| n as f64)),
            ] {
                if let Some(v) = v {
                    let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
                    f.add(name, kind, help, m(), v);
                }
            }
        }
    }
    let mut families: Vec<Family> = f.0.into_values().collect();
    families.extend(module_metrics(host));
    render(families)
}

/// Every reported module metric, as `module_<name>{module=…, …}`.
fn module_metrics(host: &Host) -> Vec<Family> {
    super::lock(&host.metrics)
        .iter()
        .map(|((module, name), (value, labels))| {
            let mut fam = Family::new(&format!("module_{name}"), "gauge", "Reported by modules (ReportMetric).");
            let mut l = vec![("module".to_string(), module.clone())];
            for (k, v) in labels {
                let k = if k == "module" { "exported_module".to_string() } else { k.clone() };
                if !l.iter().any(|(have, _)| *have == super::prometheus::label_name(&k)) {
                    l.push((super::prometheus::label_name(&k), v.clone()));
                }
            }
            fam.add(l, *value);
            fam
        })
        .collect()
}
