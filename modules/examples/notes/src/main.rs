//! Example module `notes`: keeps notes in its hostd-owned storage (durable
//! once acknowledged) and appends them to `/data/notes.txt`, the only
//! directory its sandbox can write. Commands: `add <text…>`, `list`.

use hostd_sdk::{CliArg, CliCommand, CliSpec, ErrorBody, ErrorCode, Incoming, Invocation};
use std::io::Write;

const TREE: &str = "default";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("notes: {e}");
        std::process::exit(1);
    }
}

fn cmd(name: &str, about: &str, args: &[(&str, bool)]) -> CliCommand {
    CliCommand {
        name: name.into(),
        about: about.into(),
        args: args.iter().map(|(n, r)| CliArg { name: n.to_string(), help: String::new(), required: *r }).collect(),
    }
}

async fn run() -> Result<(), hostd_sdk::SdkError> {
    let (client, mut incoming) = hostd_sdk::connect("notes", env!("CARGO_PKG_VERSION")).await?;
    client
        .register_cli_spec(CliSpec {
            about: "Notes kept in hostd storage".into(),
            commands: vec![cmd("add", "Store a note", &[("text", true)]), cmd("list", "Show every note", &[])],
        })
        .await?;
    client.info("notes ready");
    while let Some(msg) = incoming.next().await {
        match msg {
            Incoming::Invoke(call) => {
                let result = match &call.invocation {
                    Invocation::Cli { command, args } if command == "add" => add(&client, &args.join(" ")).await,
                    Invocation::Cli { command, .. } if command == "list" => list(&client).await,
                    other => Err(ErrorBody::new(ErrorCode::Unsupported, format!("notes does not handle {other:?}"))),
                };
                call.reply(result);
            }
            Incoming::Shutdown { .. } => break,
            _ => {}
        }
    }
    Ok(())
}

fn host_err(e: hostd_sdk::SdkError) -> ErrorBody {
    ErrorBody::new(e.code().unwrap_or(ErrorCode::Internal), e.to_string())
}

async fn add(client: &hostd_sdk::Client, text: &str) -> Result<Vec<u8>, ErrorBody> {
    if text.is_empty() {
        return Err(ErrorBody::new(ErrorCode::InvalidArgument, "usage: add <text>"));
    }
    let count = client.storage_get(TREE, b"count").await.map_err(host_err)?;
    let n = count.and_then(|c| c.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0) + 1;
    client
        .storage_batch(
            TREE,
            vec![
                hostd_sdk::protocol::BatchOp::Put { key: format!("note/{n:08}").into_bytes(), value: text.as_bytes().to_vec() },
                hostd_sdk::protocol::BatchOp::Put { key: b"count".to_vec(), value: n.to_be_bytes().to_vec() },
            ],
        )
        .await
        .map_err(host_err)?;
    // The sandbox's own view of its data directory.
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/data/notes.txt")
        .map_err(|e| ErrorBody::new(ErrorCode::Internal, format!("/data/notes.txt: {e}")))?;
    writeln!(f, "{n}: {text}").map_err(|e| ErrorBody::new(ErrorCode::Internal, e.to_string()))?;
    Ok(format!("note {n} stored\n").into_bytes())
}

async fn list(client: &hostd_sdk::Client) -> Result<Vec<u8>, ErrorBody> {
    let notes = client.storage_iter_prefix(TREE, b"note/", 1000).await.map_err(host_err)?;
    let mut out = String::new();
    for (k, v) in notes {
        out += &format!("{}: {}\n", String::from_utf8_lossy(&k[5..]).trim_start_matches('0'), String::from_utf8_lossy(&v));
    }
    Ok(out.into_bytes())
}
