//! Request, response, packet and event bodies of the mesh ModuleAPI.

use bincode::{Decode, Encode};

/// A mesh node's identity: its BIP-340 x-only secp256k1 public key.
pub type NodeId = [u8; 32];

/// A packet's id: the tagged hash of its signed fields.
pub type PacketId = [u8; 32];

/// How a node treats traffic by class (seed 003's three modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum MeshMode {
    /// Bitcoin P2P only; everything else is refused, even with a payment.
    BitcoinOnly,
    /// Bitcoin, governance and Stratum V2 free within a byte budget; the
    /// rest needs a payment proof.
    PaymentGated,
    /// Everything free, rate-limited per source.
    Open,
}

impl MeshMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MeshMode::BitcoinOnly => "bitcoin_only",
            MeshMode::PaymentGated => "payment_gated",
            MeshMode::Open => "open",
        }
    }
}

impl std::str::FromStr for MeshMode {
    type Err = String;
    fn from_str(s: &str) -> Result<MeshMode, String> {
        match s {
            "bitcoin_only" => Ok(MeshMode::BitcoinOnly),
            "payment_gated" => Ok(MeshMode::PaymentGated),
            "open" => Ok(MeshMode::Open),
            other => Err(format!("mode {other:?}: expected bitcoin_only, payment_gated or open")),
        }
    }
}

/// What a payload is, decided from its bytes (never from a sender's label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub enum TrafficClass {
    /// Whole Bitcoin P2P messages of one known network.
    Bitcoin,
    /// Bitcoin P2P framing carrying Commons governance commands.
    Governance,
    /// Whole Stratum V2 frames of known message types.
    StratumV2,
    /// Anything else, including encapsulated mesh traffic.
    Paid,
}

impl TrafficClass {
    pub fn as_str(self) -> &'static str {
        match self {
            TrafficClass::Bitcoin => "bitcoin",
            TrafficClass::Governance => "governance",
            TrafficClass::StratumV2 => "stratum_v2",
            TrafficClass::Paid => "paid",
        }
    }
}

/// `send_packet`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SendPacketRequest {
    pub destination: NodeId,
    pub payload: Vec<u8>,
    /// Must be `None`: a proof binds to the packet the mesh node builds and
    /// signs, so the node obtains it (quote, pay within the caller's
    /// budget) itself; see the module's `pay_budget_sats`.
    pub payment_proof: Option<Vec<u8>>,
    /// Which registered handler at the destination gets the packet.
    pub protocol_id: Option<String>,
    /// Seconds the packet stays valid (capped by the node's `max_ttl_secs`).
    pub ttl: Option<u64>,
    /// Wait for the destination's ACK (or a NACK from any node on the
    /// path) before answering, up to the ttl.
    pub confirm: bool,
}

/// Why a node on the path refused a packet.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum NackReason {
    /// This traffic needs a payment proof for `fee_sats`.
    PaymentRequired { fee_sats: u64 },
    /// The node's mode refuses this class (`bitcoin_only`).
    ClassRejected { class: TrafficClass },
    /// Nothing at the destination handles this protocol id.
    NoHandler,
    /// The handler's queue at the destination is full.
    HandlerBusy,
    /// The next hop is not linked (any more).
    NoRoute,
    /// The source used up its free-traffic budget at this node.
    RateLimited,
    /// The destination could not store the packet's sequence number.
    StorageFailed,
    /// This node's entry in the packet's payment bundle does not prove
    /// payment for this packet.
    PaymentInvalid { fault: PaymentFault },
    /// A router on the path holds it breaks the anti-monopoly diversity
    /// rule (two or more routers need two or more entities, none holding
    /// more than half the slots).
    Monopoly,
}

/// Why a payee refused its entry of a payment bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub enum PaymentFault {
    /// The bundle has no entry for this payee's position on the path.
    Missing,
    /// The bundle's bytes do not parse.
    Malformed,
    /// The invoice does not decode or its signature does not verify.
    BadInvoice,
    /// The invoice is for another network than this node's.
    WrongNetwork,
    /// The invoice was signed by a key that is not this payee's.
    NotPayee,
    /// The invoice's description hash is not this packet's (another
    /// packet, another role, another share).
    WrongPacket,
    /// The invoice's amount is below this payee's share of the fee.
    AmountTooLow,
    /// The invoice had expired when the packet was created (or was not
    /// yet issued), or its expiry is longer than this node accepts.
    Expired,
    /// sha256(preimage) is not the invoice's payment hash.
    WrongPreimage,
    /// The payment hash was already used.
    Replayed,
    /// A CTV proof can only be checked against the chain, and this node
    /// has no node backend.
    CtvWithoutNode,
    /// The chain has no funding output `<template hash> OP_CTV` with
    /// enough confirmations for the CTV proof.
    CtvUnfunded,
}

impl PaymentFault {
    pub const ALL: [PaymentFault; 12] = [
        PaymentFault::Missing,
        PaymentFault::Malformed,
        PaymentFault::BadInvoice,
        PaymentFault::WrongNetwork,
        PaymentFault::NotPayee,
        PaymentFault::WrongPacket,
        PaymentFault::AmountTooLow,
        PaymentFault::Expired,
        PaymentFault::WrongPreimage,
        PaymentFault::Replayed,
        PaymentFault::CtvWithoutNode,
        PaymentFault::CtvUnfunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentFault::Missing => "missing",
            PaymentFault::Malformed => "malformed",
            PaymentFault::BadInvoice => "bad_invoice",
            PaymentFault::WrongNetwork => "wrong_network",
            PaymentFault::NotPayee => "not_payee",
            PaymentFault::WrongPacket => "wrong_packet",
            PaymentFault::AmountTooLow => "amount_too_low",
            PaymentFault::Expired => "expired",
            PaymentFault::WrongPreimage => "wrong_preimage",
            PaymentFault::Replayed => "replayed",
            PaymentFault::CtvWithoutNode => "ctv_without_node",
            PaymentFault::CtvUnfunded => "ctv_unfunded",
        }
    }
}

impl std::fmt::Display for NackReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NackReason::PaymentRequired { fee_sats } => write!(f, "payment required: {fee_sats} sats"),
            NackReason::ClassRejected { class } => write!(f, "{} traffic rejected by this node's mode", class.as_str()),
            NackReason::NoHandler => f.write_str("no handler for this protocol id"),
            NackReason::HandlerBusy => f.write_str("the handler is busy"),
            NackReason::NoRoute => f.write_str("no link to the next hop"),
            NackReason::RateLimited => f.write_str("free-traffic budget exhausted"),
            NackReason::StorageFailed => f.write_str("the destination could not persist the sequence"),
            NackReason::PaymentInvalid { fault } => write!(f, "payment proof refused: {}", fault.as_str()),
            NackReason::Monopoly => f.write_str("the path breaks a router's anti-monopoly diversity rule"),
        }
    }
}

/// The end of a confirmed send.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Delivery {
    /// Not asked for (`confirm: false`).
    Unconfirmed,
    /// The destination acknowledged it after `rtt_us`.
    Acked { rtt_us: u64 },
    /// Node `by` refused it.
    Nacked { by: NodeId, reason: NackReason },
    /// Neither came back within the ttl.
    NoAnswer,
}

/// `send_packet`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SendPacketResponse {
    pub success: bool,
    pub packet_id: PacketId,
    /// Hops: routers + 1.
    pub route_length: u32,
    pub estimated_cost_sats: u64,
    pub error: Option<String>,
    pub delivery: Delivery,
}

/// `discover_route`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct DiscoverRouteRequest {
    pub destination: NodeId,
    /// Routers at most on the path (1–10; default 10).
    pub max_hops: Option<u8>,
    /// Default: the node's `discovery_timeout_secs`.
    pub timeout_seconds: Option<u64>,
}

/// `discover_route`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct DiscoverRouteResponse {
    /// The routers between this node and the destination, then the
    /// destination; `None` if none was found in time.
    pub route: Option<Vec<NodeId>>,
    pub route_cost_sats: u64,
    pub discovery_time_ms: u64,
}

/// `register_protocol_handler`: packets for `protocol_id` go to the
/// caller's API method `handler_method` (the caller must register it with
/// hostd too). One owner per protocol id.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct RegisterProtocolRequest {
    pub protocol_id: String,
    pub handler_method: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct RegisterProtocolResponse {
    pub success: bool,
}

/// What a protocol handler is invoked with.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct InboundPacket {
    pub packet_id: PacketId,
    pub source: NodeId,
    pub protocol_id: String,
    pub sequence: u64,
    pub class: TrafficClass,
    /// Routers it crossed.
    pub routers: u8,
    /// Source's clock, unix milliseconds.
    pub created_ms: u64,
    pub payload: Vec<u8>,
}

/// `get_routing_stats`.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct MeshStats {
    pub enabled: bool,
    pub mode: MeshMode,
    pub node_id: NodeId,
    pub routing: RoutingStats,
    pub replay: ReplayStats,
    pub payments: PaymentStats,
    pub monopoly: MonopolyStats,
}

/// Anti-monopoly as this node sees it.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct MonopolyStats {
    /// `off`, `relaxed` or `strict`.
    pub mode: String,
    pub cap: f64,
    /// Per router entity: its share of the bytes this node sent over paths
    /// with routers in the last hour, and the fraction of reachable
    /// destinations it has a path to (its route coverage).
    pub entities: Vec<EntityShare>,
    /// Sends that took a non-compliant path (relaxed mode).
    pub relaxed: u64,
    /// Sends refused for want of a compliant path (strict mode).
    pub failed: u64,
    /// Packets this node refused as a router for breaking the diversity rule.
    pub paths_refused: u64,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct EntityShare {
    pub entity: String,
    pub share: f64,
    pub coverage: f64,
}

/// Money this node paid, earned and owes, in sats, since its storage was
/// made (persisted).
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode)]
pub struct Ledger {
    /// Paid to routers and destinations for packets this node sent.
    pub paid_sats: u64,
    /// Earned as a router or destination (proofs verified here).
    pub received_sats: u64,
    /// The treasury's share of fees this node paid, owed until a wallet
    /// module pays it out to `treasury_address`.
    pub treasury_due_sats: u64,
    /// Paid packets sent / verified here.
    pub packets_paid: u64,
    pub packets_verified: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PaymentStats {
    /// `stub` or `lightning`.
    pub backend: String,
    pub network: String,
    pub treasury_address: Option<String>,
    pub ledger: Ledger,
    /// Payment hashes held against replay.
    pub replay_entries: u32,
    /// Proofs refused here, by fault.
    pub refused: Vec<(String, u64)>,
    /// Per calling module: sats spent in the current budget window, and its budget.
    pub budgets: Vec<(String, u64, u64)>,
}

/// Body of a PaymentVerified event (EventPayload::Data), published by the
/// payee when its entry of a packet's payment bundle verified.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PaymentEvent {
    /// `router` or `destination`.
    pub role: String,
    pub sats: u64,
    pub payment_hash: [u8; 32],
    pub packet_id: PacketId,
}

/// The call interface a Lightning module serves for Commons Mesh
/// (`lightning::PAY_INVOICE`, `lightning::CREATE_INVOICE`).
pub mod lightning {
    use bincode::{Decode, Encode};

    pub const PAY_INVOICE: &str = "pay_invoice";
    pub const CREATE_INVOICE: &str = "create_invoice";

    /// Pay a BOLT11 invoice; answer only once the payment settled.
    #[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
    pub struct PayInvoiceRequest {
        pub invoice: String,
        /// Routing fees the payer accepts at most.
        pub max_fee_msat: u64,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
    pub struct PayInvoiceResponse {
        /// The preimage of the invoice's payment hash: the proof of payment.
        pub preimage: [u8; 32],
        pub fee_msat: u64,
    }

    /// Issue an invoice with the node's Lightning key (the key the mesh
    /// node binds in its signed record).
    #[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
    pub struct CreateInvoiceRequest {
        pub amount_msat: u64,
        pub description_hash: [u8; 32],
        pub expiry_secs: u64,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
    pub struct CreateInvoiceResponse {
        pub invoice: String,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct RoutingStats {
    /// Authenticated neighbours.
    pub neighbours: u32,
    /// Destinations with at least one route.
    pub destinations: u32,
    /// Paths held (all destinations).
    pub paths: u32,
    pub sent: u64,
    pub forwarded: u64,
    pub delivered: u64,
    pub acked: u64,
    pub nacked: u64,
    pub discoveries: u64,
    pub discovery_failures: u64,
    /// Drops by reason.
    pub dropped: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ReplayStats {
    /// Sources with a sequence window held (and persisted).
    pub sources: u32,
    pub replays_dropped: u64,
    pub dedup_entries: u32,
    pub duplicates_dropped: u64,
}

/// Body of RouteDiscovered and RouteFailed events (EventPayload::Data).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct RouteEvent {
    pub destination: NodeId,
    /// Routers then destination (RouteDiscovered), `None` (RouteFailed).
    pub route: Option<Vec<NodeId>>,
    pub cost_sats: u64,
    pub discovery_time_ms: u64,
    /// RouteFailed: why.
    pub reason: Option<String>,
}
