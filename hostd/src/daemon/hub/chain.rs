//! Chain, mempool, network, Lightning, payment and block-submission
//! requests: answered by the node backend.

use crate::daemon::Host;
use hostd_protocol::{ErrorBody, Request, Response};

pub fn query(host: &Host, req: &Request) -> Result<Response, ErrorBody> {
    host.node.query(req)
}
