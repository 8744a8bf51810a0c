//! Chain, mempool, network, Lightning, payment and block-submission
//! requests: answered by the node backend.

use crate::daemon::Host;
use hostd_protocol::{ErrorBody, Request, Response};

pub async fn query(host: &Host, module: &str, req: &Request) -> Result<Response, ErrorBody> {
    host.node.query(host, module, req).await
}
