//! hostd-regtest-node: a real Bitcoin node (blvm-node 0.1.83) on loopback
//! regtest, as its own process, for hostd's chain tests and demo.
//!
//! Usage: hostd-regtest-node <datadir> <config.toml> <p2p addr> <rpc addr>
//!
//! Both addresses must be loopback. The node ends on SIGTERM or SIGINT
//! (its RPC `stop` does not end this process).

use std::net::SocketAddr;
use std::path::Path;

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("hostd-regtest-node: {what}: {e}");
    std::process::exit(1);
}

fn loopback(what: &str, s: &str) -> SocketAddr {
    let addr: SocketAddr = s.parse().unwrap_or_else(|e| fail(what, format!("{s:?}: {e}")));
    if !addr.ip().is_loopback() {
        fail(what, format!("{addr} is not a loopback address"));
    }
    addr
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, datadir, config, p2p, rpc] = args.as_slice() else {
        eprintln!("usage: hostd-regtest-node <datadir> <config.toml> <p2p addr> <rpc addr>");
        std::process::exit(2);
    };
    let (p2p, rpc) = (loopback("p2p addr", p2p), loopback("rpc addr", rpc));
    // The node's own log, on stderr (RUST_LOG is not read: info and up).
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_max_level(tracing_subscriber::filter::LevelFilter::INFO).init();
    let cfg = blvm_node::config::NodeConfig::from_file(Path::new(config)).unwrap_or_else(|e| fail(config, e));
    let node = blvm_node::node::Node::with_storage_config(datadir, p2p, rpc, Some(blvm_node::ProtocolVersion::Regtest), cfg.storage.as_ref())
        .unwrap_or_else(|e| fail("create the node", e));
    let mut node = node.with_config(cfg).unwrap_or_else(|e| fail("configure the node", e));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap_or_else(|e| fail("SIGTERM handler", e));
    tokio::select! {
        r = node.start() => match r {
            Ok(()) => {}
            Err(e) => fail("node", e),
        },
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
