//! Example module `hello`: subscribes to lifecycle and chain events, offers
//! an `echo` API to other modules and a `greet` CLI command, and reports
//! its health. Built only on the SDK.

use hostd_sdk::{CliArg, CliCommand, CliSpec, ErrorBody, ErrorCode, EventType, HealthStatus, Incoming, Invocation};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("hello: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), hostd_sdk::SdkError> {
    let (client, mut incoming) = hostd_sdk::connect("hello", env!("CARGO_PKG_VERSION")).await?;
    client.register_cli_spec(CliSpec {
        about: "A friendly example module".into(),
        commands: vec![CliCommand {
            name: "greet".into(),
            about: "Say hello".into(),
            args: vec![CliArg { name: "name".into(), help: "who to greet".into(), required: false }],
        }],
    })
    .await?;
    client.register_module_api(&["echo"]).await?;
    client.register_rpc_endpoint("hello_greet", "greet someone; params: a JSON string").await?;
    client.subscribe_events(vec![EventType::ModuleLoaded, EventType::ModuleUnloaded, EventType::NewBlock]).await?;
    // Standalone hostd has no node: the typed error says so.
    match client.get_chain_tip().await {
        Ok((_, height)) => client.info(&format!("chain tip at height {height}")),
        Err(e) if e.code() == Some(ErrorCode::NoNodeAttached) => client.info("no node attached; waiting for events"),
        Err(e) => return Err(e),
    }
    // `greeting` comes from config.toml, or the operator's [modules.hello].
    let greeting = client.config()?.get("greeting").and_then(|v| v.as_str()).unwrap_or("hello").to_string();
    client.report_health(HealthStatus::Healthy, "ready").await?;
    let mut greeted = 0u64;
    while let Some(msg) = incoming.next().await {
        match msg {
            Incoming::Event(ev) => client.info(&format!("event {}: {:?}", ev.event_type, ev.payload)),
            Incoming::Invoke(call) => {
                let result = match &call.invocation {
                    Invocation::Cli { command, args } if command == "greet" => {
                        greeted += 1;
                        let who = args.first().map(String::as_str).unwrap_or("operator");
                        Ok(format!("{greeting}, {who}! (greeting #{greeted})\n").into_bytes())
                    }
                    Invocation::Rpc { method, params } if method == "hello_greet" => {
                        greeted += 1;
                        // params is JSON text; a JSON string is the name.
                        let who = params.trim().trim_matches('"');
                        let who = if who.is_empty() || who == "null" { "caller" } else { who };
                        Ok(format!("{greeting}, {who}! (greeting #{greeted})").into_bytes())
                    }
                    Invocation::Api { method, params, .. } if method == "echo" => Ok(params.clone()),
                    other => Err(ErrorBody::new(ErrorCode::Unsupported, format!("hello does not handle {other:?}"))),
                };
                call.reply(result);
            }
            Incoming::Shutdown { .. } => break,
            _ => {}
        }
    }
    Ok(())
}
