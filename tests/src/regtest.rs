//! A real Bitcoin node for chain tests: `hostd-regtest-node` (blvm-node
//! 0.1.83 from tools/regtest-node, built by scripts/test.sh into
//! /var/tmp/hostd-node-target) on loopback regtest, as its own process,
//! stopped by pid when dropped.
//!
//! It runs as the `hostd` user, as a node and hostd on one machine
//! commonly share a user or group: its `.cookie` (0600) is then readable
//! by the unprivileged daemon, as `[node] cookie_file` requires.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// P2WSH of `OP_TRUE`: its outputs are spendable with the witness `[0x51]`
/// and no key.
pub const OP_TRUE_ADDRESS: &str = "bcrt1qft5p2uhsdcdc3l2ua4ap5qqfg4pjaqlp250x7us7a8qqhrxrxfsqseac85";

/// The node binary: `HOSTD_NODE_BIN`, or where scripts/test.sh builds it.
pub fn node_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("HOSTD_NODE_BIN") {
        return p.into();
    }
    let target = Path::new("/var/tmp/hostd-node-target");
    let triple = target.join("x86_64-unknown-linux-gnu/release/hostd-regtest-node");
    if triple.exists() { triple } else { target.join("release/hostd-regtest-node") }
}

/// The node is there, or (under CI) the test fails: it never skips there.
pub fn require_node(what: &str) -> bool {
    let bin = node_binary();
    if bin.exists() {
        return true;
    }
    let why = format!("{} is missing (scripts/test.sh builds it; or BUILD_ONLY=1 scripts/regtest-node.sh)", bin.display());
    if crate::strict() {
        panic!("{what}: {why}, and CI forbids skipping");
    }
    eprintln!("SKIP {what}: {why}");
    false
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

pub struct RegtestNode {
    pub datadir: PathBuf,
    pub rpc_port: u16,
    p2p_port: u16,
    run_as: (u32, u32),
    child: Option<Child>,
    /// Dropped (removed) after `Drop::drop` has stopped the node.
    pub scratch: crate::Scratch,
}

impl RegtestNode {
    /// Start a node with a fresh datadir (a scratch directory named after
    /// `tag`, owned by the `hostd` user, removed with the node) and wait
    /// until it has a chain tip.
    pub fn start(tag: &str) -> RegtestNode {
        let who = hostd::daemon::privileges::RunAs::lookup("hostd").expect("the hostd user (scripts/test.sh creates it)");
        let scratch = crate::Scratch::new(&format!("{tag}-node"));
        let datadir = scratch.0.join("regtest");
        std::fs::create_dir_all(&datadir).expect("node datadir");
        for d in [&scratch.0, &datadir] {
            std::os::unix::fs::chown(d, Some(who.uid), Some(who.gid)).expect("chown node datadir");
        }
        let mut node = RegtestNode { datadir, rpc_port: free_port(), p2p_port: free_port(), run_as: (who.uid, who.gid), child: None, scratch };
        node.spawn();
        node
    }

    /// `http://127.0.0.1:<port>`, for `[node] rpc_url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }

    pub fn cookie(&self) -> PathBuf {
        self.datadir.join(".cookie")
    }

    /// `[node]` for a hostd using this node with its cookie.
    pub fn hostd_toml(&self) -> String {
        format!("\n[node]\nbackend = \"rpc\"\nrpc_url = \"{}\"\ncookie_file = \"{}\"\n", self.url(), self.cookie().display())
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.datadir.join("node.log")).expect("node log");
        let (uid, gid) = self.run_as;
        let mut cmd = Command::new(node_binary());
        cmd.arg(&self.datadir)
            .arg(format!("127.0.0.1:{}", self.p2p_port))
            .arg(format!("127.0.0.1:{}", self.rpc_port))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        // SAFETY: setgroups/setgid/setuid between fork and exec touch only
        // this process; no allocation.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.child = Some(cmd.spawn().expect("spawn hostd-regtest-node"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.rpc("getbestblockhash", json!([])).is_ok() {
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("the node exited with {st}: {}", self.log());
            }
            assert!(Instant::now() < deadline, "the node had no chain tip within 20 s: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.datadir.join("node.log")).unwrap_or_default();
        text.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGTERM by pid and wait (the node's RPC `stop` does not end it).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling the child we started, by its pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same ports and datadir (the chain is kept).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// One JSON-RPC call with the cookie (a connection per call): the
    /// result, or the node's error object / the transport error as text.
    pub fn rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let cookie = std::fs::read_to_string(self.cookie()).map_err(|e| format!("cookie: {e}"))?;
        let body = json!({"jsonrpc": "1.0", "id": 1, "method": method, "params": params}).to_string();
        let auth = base64(cookie.trim().as_bytes());
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.rpc_port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(120))).map_err(|e| e.to_string())?;
        let head = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).and_then(|_| s.write_all(body.as_bytes())).map_err(|e| e.to_string())?;
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&reply);
        let (_, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("bad HTTP reply: {text}"))?;
        let v: Value = serde_json::from_str(body.trim()).map_err(|e| format!("{e}: {body}"))?;
        match v.get("error") {
            Some(e) if !e.is_null() => Err(e.to_string()),
            _ => Ok(v["result"].clone()),
        }
    }

    /// `rpc`, or panic with the node's log.
    pub fn call(&self, method: &str, params: Value) -> Value {
        self.rpc(method, params).unwrap_or_else(|e| panic!("{method}: {e}\n{}", self.log()))
    }

    /// Mine `n` blocks to the OP_TRUE address; their hashes (display hex).
    pub fn mine(&self, n: u32) -> Vec<String> {
        let v = self.call("generatetoaddress", json!([n, OP_TRUE_ADDRESS]));
        v.as_array().expect("hashes").iter().map(|h| h.as_str().expect("hash").to_string()).collect()
    }

    /// Extend the chain by `n` blocks made here ([`craft_block`]) and
    /// submitted: far faster than the node's own miner for long chains.
    pub fn extend(&self, n: u32) -> Vec<String> {
        let (mut tip, height) = self.tip();
        let mut time = self.call("getblockheader", json!([tip, true]))["time"].as_u64().expect("time") as u32;
        let mut hashes = Vec::new();
        for i in 1..=n as u64 {
            time += 1;
            let (raw, hash) = craft_block(&tip, height + i, time, 0);
            let answer = self.call("submitblock", json!([raw]));
            assert!(answer.is_null(), "submitblock at height {}: {answer}", height + i);
            hashes.push(hash.clone());
            tip = hash;
        }
        hashes
    }

    /// (tip hash in display hex, height).
    pub fn tip(&self) -> (String, u64) {
        let hash = self.call("getbestblockhash", json!([])).as_str().expect("hash").to_string();
        let height = self.call("getblockcount", json!([])).as_u64().expect("height");
        (hash, height)
    }
}

impl Drop for RegtestNode {
    fn drop(&mut self) {
        self.stop();
    }
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A transaction spending output `vout` of `txid` (display hex) — an
/// OP_TRUE output worth `value_sat` — to one OP_TRUE output paying
/// `fee_sat` in fees. Segwit serialization, witness `[0x51]`.
pub fn spend_op_true(txid: &str, vout: u32, value_sat: u64, fee_sat: u64) -> String {
    let mut tx = Vec::new();
    tx.extend(2u32.to_le_bytes());
    tx.extend([0x00, 0x01]); // segwit marker and flag
    tx.push(1); // one input
    let mut prev = hex_decode(txid);
    prev.reverse();
    tx.extend(prev);
    tx.extend(vout.to_le_bytes());
    tx.push(0); // empty scriptSig
    tx.extend(0xffff_fffdu32.to_le_bytes());
    tx.push(1); // one output
    tx.extend((value_sat - fee_sat).to_le_bytes());
    let script = op_true_script_pubkey();
    tx.push(script.len() as u8);
    tx.extend(script);
    tx.extend([1, 1, 0x51]); // witness: one item, OP_TRUE
    tx.extend(0u32.to_le_bytes());
    tx.iter().map(|b| format!("{b:02x}")).collect()
}

/// `OP_0 <sha256(OP_TRUE)>`, the script of [`OP_TRUE_ADDRESS`].
fn op_true_script_pubkey() -> Vec<u8> {
    let mut s = vec![0x00, 0x20];
    s.extend(hex_decode("4ae81572f06e1b88fd5ced7a1a000945432e83e1551e6f721ee9c00b8cc33260"));
    s
}

pub fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex")).collect()
}

fn sha256d(data: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(Sha256::digest(data)).into()
}

/// `n` as a minimal script number push (BIP34's height in the coinbase).
fn script_num(n: u64) -> Vec<u8> {
    if (1..=16).contains(&n) {
        return vec![0x50 + n as u8];
    }
    let mut bytes = Vec::new();
    let mut v = n;
    while v > 0 {
        bytes.push((v & 0xff) as u8);
        v >>= 8;
    }
    if bytes.last().is_some_and(|b| b & 0x80 != 0) {
        bytes.push(0);
    }
    let mut out = vec![bytes.len() as u8];
    out.extend(bytes);
    out
}

/// A valid regtest block on top of `prev` (display hex) at `height`, with
/// only a coinbase paying 0 to OP_TRUE, mined here (regtest's target takes
/// about two tries): its raw hex and hash (display hex). For SubmitBlock
/// tests: blocks that did not come from the node's own miner.
pub fn craft_block(prev: &str, height: u64, time: u32, tag: u8) -> (String, String) {
    let mut coinbase = Vec::new();
    coinbase.extend(2u32.to_le_bytes());
    coinbase.push(1);
    coinbase.extend([0u8; 32]);
    coinbase.extend(0xffff_ffffu32.to_le_bytes());
    let mut script_sig = script_num(height);
    script_sig.extend([0x01, tag]); // one pushed byte: distinct blocks per tag
    coinbase.push(script_sig.len() as u8);
    coinbase.extend(script_sig);
    coinbase.extend(0xffff_ffffu32.to_le_bytes());
    coinbase.push(1);
    coinbase.extend(0u64.to_le_bytes());
    let script = op_true_script_pubkey();
    coinbase.push(script.len() as u8);
    coinbase.extend(script);
    coinbase.extend(0u32.to_le_bytes());
    let merkle = sha256d(&coinbase);
    let mut prev_bytes = hex_decode(prev);
    prev_bytes.reverse();
    for nonce in 0u32.. {
        let mut header = Vec::with_capacity(80);
        header.extend(0x2000_0000u32.to_le_bytes());
        header.extend(&prev_bytes);
        header.extend(merkle);
        header.extend(time.to_le_bytes());
        header.extend(0x207f_ffffu32.to_le_bytes());
        header.extend(nonce.to_le_bytes());
        let hash = sha256d(&header);
        // Target 0x7fffff << 232: the hash's most significant byte (the
        // last, in internal order) must be below 0x7f.
        if hash[31] < 0x7f {
            let mut block = header;
            block.push(1);
            block.extend(&coinbase);
            let display: String = hash.iter().rev().map(|b| format!("{b:02x}")).collect();
            return (block.iter().map(|b| format!("{b:02x}")).collect(), display);
        }
    }
    unreachable!("a nonce below 2^32 meets regtest's target")
}
