//! The Commons Mesh module binary (see src/node/ and docs/commons-mesh.md).
//! Run by hostd with no arguments; an operator runs it by hand for the
//! entity-authority tool (`commons-mesh entity-authority …`).

mod authority;
mod node;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("entity-authority") {
        match authority::run(&args[1..]) {
            Ok(out) => println!("{out}"),
            Err(e) => {
                eprintln!("commons-mesh entity-authority: {e}");
                std::process::exit(2);
            }
        }
        return;
    }
    if let Err(e) = node::run().await {
        eprintln!("commons-mesh: {e}");
        std::process::exit(1);
    }
}
