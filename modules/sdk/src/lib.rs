//! The hostd module SDK: what a module author links.
//!
//! ```no_run
//! # async fn run() -> Result<(), hostd_sdk::SdkError> {
//! let (client, mut incoming) = hostd_sdk::connect("hello", "0.1.0").await?;
//! client.info("started");
//! while let Some(msg) = incoming.next().await {
//!     match msg {
//!         hostd_sdk::Incoming::Shutdown { .. } => break,
//!         hostd_sdk::Incoming::Invoke(call) => call.reply(Ok(b"hi".to_vec())),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! The connection is the fd hostd pre-opened for the module (fd 3, named by
//! `HOSTD_IPC_FD`); there is no socket path to find and nothing to dial.
//! One reader task routes responses to their callers by correlation id, so
//! any number of requests may be in flight and answered in any order; one
//! writer task batches outgoing frames into as few writes as it can.

mod client;
mod conn;
mod mesh;

pub use client::Client;
pub use conn::{connect, connect_fd, Incoming, IncomingStream, InvocationCall, SdkError};
pub use mesh::MeshAck;
pub use hostd_protocol as protocol;
pub use hostd_protocol::{
    CliArg, CliCommand, CliSpec, ErrorBody, ErrorCode, Event, EventPayload, EventType, HealthStatus, Invocation,
    LinkInfo, LogLevel,
};
