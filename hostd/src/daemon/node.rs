//! Chain, mempool, network, Lightning and payment queries go to a
//! [`NodeBackend`]. hostd runs standalone for now: its backend answers every
//! such request with a typed `NoNodeAttached` error, so modules can tell
//! "no node" from a failure. A real backend is a later issue.

use hostd_protocol::{ErrorBody, ErrorCode, Request, Response};

pub trait NodeBackend: Send + Sync {
    /// Answer a node request (the hub has already checked permissions).
    fn query(&self, request: &Request) -> Result<Response, ErrorBody>;
    /// For `hostd status`.
    fn describe(&self) -> String;
}

pub struct Standalone;

impl NodeBackend for Standalone {
    fn query(&self, request: &Request) -> Result<Response, ErrorBody> {
        Err(ErrorBody::new(
            ErrorCode::NoNodeAttached,
            format!("{} needs a Bitcoin node and this hostd runs standalone", request.kind()),
        ))
    }

    fn describe(&self) -> String {
        "standalone (no node attached)".into()
    }
}
