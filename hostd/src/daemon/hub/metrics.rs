//! Metrics a module reports and reads.

use super::err;
use crate::daemon::{lock, Host};
use hostd_protocol::{ErrorBody, ErrorCode, MetricSample, Response};

/// Metrics one module may keep.
const MAX_METRICS: usize = 1000;

pub fn report(host: &Host, module: &str, name: String, value: f64, labels: Vec<(String, String)>) -> Result<Response, ErrorBody> {
    let mut m = lock(&host.metrics);
    let key = (module.to_string(), name);
    if !m.contains_key(&key) && m.keys().filter(|(owner, _)| owner == module).count() >= MAX_METRICS {
        return Err(err(ErrorCode::QuotaExceeded, format!("at most {MAX_METRICS} metrics per module")));
    }
    m.insert(key, (value, labels));
    Ok(Response::Ack)
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
