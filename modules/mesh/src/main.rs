//! The Commons Mesh module binary (see src/node/ and docs/commons-mesh.md).

mod node;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = node::run().await {
        eprintln!("commons-mesh: {e}");
        std::process::exit(1);
    }
}
