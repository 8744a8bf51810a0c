//! Event requests: subscriptions, module-published events, and health
//! reports (published by hostd as HealthCheck).

use super::err;
use crate::daemon::Host;
use hostd_protocol::{ErrorBody, ErrorCode, Event, EventPayload, EventType, HealthStatus, Origin, Response};

pub fn subscribe(host: &Host, module: &str, types: &[EventType]) -> Result<Response, ErrorBody> {
    host.bus.subscribe(module, types);
    Ok(Response::Ack)
}

pub fn unsubscribe(host: &Host, module: &str, types: &[EventType]) -> Result<Response, ErrorBody> {
    host.bus.unsubscribe(module, types);
    Ok(Response::Ack)
}

pub fn publish(host: &Host, module: &str, event_type: EventType, data: Vec<u8>) -> Result<Response, ErrorBody> {
    if event_type.origin() != Origin::Module {
        return Err(err(ErrorCode::Forbidden, format!("{event_type} events are published only by hostd")));
    }
    host.bus.publish_for_module(Event { event_type, publisher: Some(module.into()), payload: EventPayload::Data(data) });
    Ok(Response::Ack)
}

pub fn report_health(host: &Host, module: &str, status: HealthStatus, detail: String) -> Result<Response, ErrorBody> {
    host.with_module(module, |s| s.health = Some((status, detail.clone())));
    // hostd publishes it, but the module wrote it and chose how often: it
    // counts against the module share of every recipient's queue.
    host.bus.publish_for_module(Event {
        event_type: EventType::HealthCheck,
        publisher: None,
        payload: EventPayload::HealthCheck { module_name: module.into(), healthy: status == HealthStatus::Healthy, detail },
    });
    Ok(Response::Ack)
}
