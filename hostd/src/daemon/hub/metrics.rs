//! Metrics a module reports and reads.

use super::err;
use crate::daemon::{lock, Host};
use hostd_protocol::{ErrorBody, ErrorCode, MetricSample, Response};

pub fn report(host: &Host, module: &str, name: String, value: f64, labels: Vec<(String, String)>) -> Result<Response, ErrorBody> {
    let d = &host.config.daemon;
    crate::manifest::check_name(&name).map_err(|e| err(ErrorCode::InvalidArgument, format!("metric {name:?}: {e}")))?;
    if labels.len() > d.max_metric_labels as usize {
        return Err(err(ErrorCode::QuotaExceeded, format!("at most {} labels per metric", d.max_metric_labels)));
    }
    if let Some((k, v)) = labels.iter().find(|(k, v)| k.len().max(v.len()) > d.max_label_bytes as usize) {
        return Err(err(ErrorCode::QuotaExceeded, format!("label {:?}={:?}…: at most {} bytes per name or value", k.chars().take(16).collect::<String>(), v.chars().take(16).collect::<String>(), d.max_label_bytes)));
    }
    let mut m = lock(&host.metrics);
    let key = (module.to_string(), name);
    if !m.contains_key(&key) && count(&m, module) >= d.max_metrics as usize {
        return Err(err(ErrorCode::QuotaExceeded, format!("at most {} metrics per module", d.max_metrics)));
    }
    m.insert(key, (value, labels));
    Ok(Response::Ack)
}

/// Metrics `module` keeps (a range of the map, not a scan of all of it).
pub fn count(m: &crate::daemon::Metrics, module: &str) -> usize {
    m.range((module.to_string(), String::new())..).take_while(|((owner, _), _)| owner == module).count()
}

pub fn get(host: &Host, filter: Option<String>) -> Result<Response, ErrorBody> {
    let m = lock(&host.metrics);
    let samples = m
        .iter()
        .filter(|((owner, _), _)| filter.as_ref().is_none_or(|f| f == owner))
        .map(|((owner, name), (value, labels))| MetricSample { module: owner.clone(), name: name.clone(), value: *value, labels: labels.clone() })
        .collect();
    Ok(Response::Metrics(samples))
}
