//! Mesh requests (protocol 2, `network_access`): links through hostd.

use super::err;
use crate::daemon::conn::ConnCtx;
use crate::daemon::mesh::ModuleMesh;
use hostd_protocol::{ErrorBody, ErrorCode, Response, MESH_PROTOCOL_VERSION};
use std::sync::Arc;

fn mesh(ctx: &ConnCtx) -> Result<&Arc<ModuleMesh>, ErrorBody> {
    ctx.mesh.as_ref().ok_or_else(|| {
        err(
            ErrorCode::Unsupported,
            format!("mesh links need protocol {MESH_PROTOCOL_VERSION}; this connection negotiated {}", ctx.protocol),
        )
    })
}

/// Runs on the mesh runtime, where the link's socket will live.
pub async fn connect(ctx: &ConnCtx, addr: &str) -> Result<Response, ErrorBody> {
    let mm = mesh(ctx)?.clone();
    let addr = addr.to_string();
    let io = mm.io().clone();
    match io.spawn(async move { mm.connect(&addr).await }).await {
        Ok(r) => r.map(Response::Link),
        Err(e) => Err(err(ErrorCode::Internal, format!("mesh connect task: {e}"))),
    }
}

pub fn close(ctx: &ConnCtx, link: u64) -> Result<Response, ErrorBody> {
    mesh(ctx)?.close(link)
}

pub fn links(ctx: &ConnCtx) -> Result<Response, ErrorBody> {
    Ok(mesh(ctx)?.links())
}

/// Queued: the answer comes once the link's socket took the frame.
pub fn send(ctx: &ConnCtx, id: u64, link: u64, data: Vec<u8>) -> Result<(), ErrorBody> {
    mesh(ctx)?.send(id, link, data)
}
