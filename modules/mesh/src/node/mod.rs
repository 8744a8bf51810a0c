//! The running module: the handshake with hostd, the main loop, and the
//! context every part shares.

mod adverts;
mod api;
mod cli;
mod deliver;
mod discovery;
mod forward;
mod links;
mod monopoly;
mod paid;
mod pay;
mod paystore;
mod settle;
mod state;
mod store;

use commons_mesh::identity::Identity;
use commons_mesh::mesh_api::method;
use commons_mesh::now_ms;
use commons_mesh::settings::Settings;
use hostd_sdk::{Client, EventPayload, EventType, Incoming, Invocation, MeshAck, SdkError};
use state::Node;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

pub const NAME: &str = "commons-mesh";

#[derive(Clone)]
pub struct Ctx {
    pub client: Client,
    pub id: Arc<Identity>,
    node: Arc<Mutex<Node>>,
    /// Answers to queued frames, counted in order.
    acks: mpsc::UnboundedSender<MeshAck>,
    /// Wakes the committer (windows to persist, packets to deliver).
    commit: Arc<Notify>,
    deliveries: Arc<Mutex<deliver::Queue>>,
    /// Wakes the advert task for a triggered update.
    advert: Arc<Notify>,
}

impl Ctx {
    pub fn node(&self) -> MutexGuard<'_, Node> {
        self.node.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Sdk(#[from] SdkError),
    #[error(transparent)]
    Settings(#[from] commons_mesh::settings::SettingsError),
    #[error("mesh identity: {0}")]
    Identity(#[from] commons_mesh::identity::IdentityError),
    #[error("module storage: {0}")]
    Storage(String),
}

pub async fn run() -> Result<(), RunError> {
    // hostd names the module (HOSTD_MODULE); it may be installed under another name.
    let name = std::env::var("HOSTD_MODULE").unwrap_or_else(|_| NAME.to_string());
    let (client, mut incoming) = hostd_sdk::connect(&name, env!("CARGO_PKG_VERSION")).await?;
    let settings = match Settings::from_config(&client.config()?) {
        Ok(s) => s,
        Err(e) => {
            client.error(&e.to_string());
            return Err(e.into());
        }
    };
    client.register_cli_spec(cli::spec()).await?;
    let id = Arc::new(store::identity(&client).await?);
    if let Some(cert) = &settings.monopoly.certificate {
        if !cert.verify(&id.node_id()) {
            let e = commons_mesh::settings::SettingsError {
                key: "entity_certificate".into(),
                why: format!("it does not certify this node ({}); have the authority sign this NodeId", commons_mesh::mesh_api::hex(&id.node_id())),
            };
            client.error(&e.to_string());
            return Err(e.into());
        }
    }
    let (next_seq, reserved) = store::sequence(&client).await?;
    let mut node = Node::new(settings.clone(), id.node_id(), next_seq, reserved);
    (node.windows, node.reserved) = store::replay_state(&client, settings.max_sources).await?;
    node.handlers = store::handlers(&client).await?;
    (node.pay.ledger, node.pay.replay_count, node.pay.spent) = paystore::load(&client).await?;
    monopoly::load(&client, &mut node).await?;
    let (acks_tx, acks_rx) = mpsc::unbounded_channel();
    let ctx = Ctx {
        client: client.clone(),
        id,
        node: Arc::new(Mutex::new(node)),
        acks: acks_tx,
        commit: Arc::new(Notify::new()),
        deliveries: Arc::default(),
        advert: Arc::new(Notify::new()),
    };
    let (windows, hashes) = {
        let n = ctx.node();
        (n.windows.len(), n.pay.replay_count)
    };
    client.info(&format!(
        "node {} mode {} ({windows} sources' windows restored); payments: {} backend on {}, {hashes} payment hashes held",
        commons_mesh::mesh_api::hex(&ctx.id.node_id()),
        settings.mode.as_str(),
        settings.payments.backend.as_str(),
        commons_mesh::pay_settings::network_name(settings.payments.network),
    ));
    if !settings.enabled {
        client.warn("[mesh] enabled = false: no links are opened and the API answers Unsupported");
    }
    client.subscribe_events(vec![EventType::ModuleUnloaded, EventType::ModuleCrashed]).await?;
    client.register_module_api(method::ALL).await?;
    tokio::spawn(count_acks(ctx.clone(), acks_rx));
    tokio::spawn(deliver::committer(ctx.clone()));
    tokio::spawn(deliver::flusher(ctx.clone()));
    tokio::spawn(adverts::advertiser(ctx.clone()));
    tokio::spawn(tick(ctx.clone()));
    tokio::spawn(paystore::pruner(ctx.clone()));
    if settings.enabled {
        for peer in settings.peers.clone() {
            tokio::spawn(links::keep_dialing(ctx.clone(), peer));
        }
    }
    while let Some(msg) = incoming.next().await {
        match msg {
            Incoming::Frame { link, data } => links::on_frame(&ctx, link, &data),
            Incoming::LinkUp(info) => links::on_up(&ctx, info),
            Incoming::LinkDown { link, reason } => links::on_down(&ctx, link, &reason),
            Incoming::Invoke(call) => match &call.invocation {
                Invocation::Api { .. } => api::on_call(&ctx, call),
                Invocation::Cli { .. } => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move { cli::on_call(&ctx, call).await });
                }
                _ => call.reply(Err(hostd_sdk::ErrorBody::new(hostd_sdk::ErrorCode::Unsupported, "commons-mesh serves API and CLI calls only"))),
            },
            Incoming::Event(ev) => {
                let gone = match (ev.event_type, ev.publisher, ev.payload) {
                    // Host events only: hostd stamps no publisher on them.
                    (EventType::ModuleUnloaded, None, EventPayload::ModuleUnloaded { module_name }) => Some(module_name),
                    (EventType::ModuleCrashed, None, EventPayload::ModuleCrashed { module_name, .. }) => Some(module_name),
                    _ => None,
                };
                if let Some(module) = gone {
                    api::drop_handlers_of(&ctx, &module).await;
                }
            }
            Incoming::Shutdown { .. } => break,
            _ => {}
        }
    }
    // Persist what is pending before going.
    deliver::flush(&ctx).await;
    Ok(())
}

async fn count_acks(ctx: Ctx, mut rx: mpsc::UnboundedReceiver<MeshAck>) {
    while let Some(ack) = rx.recv().await {
        if ack.wait().await.is_err() {
            ctx.node().counters.drop("link_send_failed");
        }
    }
}

/// Housekeeping every 100 ms: keepalives, expiry, timeouts.
async fn tick(ctx: Ctx) {
    let mut every = tokio::time::interval(Duration::from_millis(100));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let now = now_ms();
        links::keepalive(&ctx);
        let expired = {
            let mut n = ctx.node();
            n.dedup.prune(now);
            n.seen_requests.prune(now);
            forward::expire_pending(&mut n, now);
            settle::expire_quotes(&mut n, now);
            n.table.expire(now)
        };
        if !expired.is_empty() {
            ctx.advert.notify_one();
        }
    }
}
