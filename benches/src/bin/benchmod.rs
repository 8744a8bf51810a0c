//! The module `daemon-bench` installs: `<x>-bench` measures round trips,
//! pipelined throughput and fan-out from inside its sandbox; `<x>-sink`
//! counts the events it receives; `<x>-flood` floods for the fairness
//! bench. The role is the second part of its name
//! (HOSTD_MODULE).

#[path = "../bench_module.rs"]
mod bench;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let name = std::env::var("HOSTD_MODULE").unwrap_or_default();
    let role = name.split('-').nth(1).unwrap_or("sink").to_string();
    let (client, incoming) = match hostd_sdk::connect(&name, "1.0.0").await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("benchmod {name}: {e}");
            std::process::exit(3);
        }
    };
    match role.as_str() {
        "bench" => bench::serve(client, incoming).await,
        "flood" => bench::flood(client, incoming).await,
        _ => bench::sink(client, incoming).await,
    }
}
