//! A module that stops draining its inbox must still get its responses:
//! a fake host fills the inbox (100) with invocations and timer ticks, then
//! answers a request; the request must complete, the invocations beyond
//! the inbox must come back as TooManyInFlight at once, and the ticks
//! beyond it must be counted as dropped.

use hostd_protocol::connection::{FrameReader, FrameWriter};
use hostd_protocol::{ErrorCode, HostMessage, Invocation, ModuleMessage, Response, Welcome, DEFAULT_MAX_FRAME};
use std::time::Duration;

const PUSHED: u64 = 150;

#[tokio::test(flavor = "current_thread")]
async fn responses_never_wait_behind_a_full_inbox() {
    let (module_end, host_end) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    host_end.set_nonblocking(true).expect("nonblocking");
    let host = tokio::net::UnixStream::from_std(host_end).expect("tokio stream");
    let (rd, wr) = host.into_split();
    let (mut rd, mut wr) = (FrameReader::new(rd, DEFAULT_MAX_FRAME), FrameWriter::new(wr, DEFAULT_MAX_FRAME));

    let fake_host = tokio::spawn(async move {
        let Some(ModuleMessage::Hello(hello)) = rd.next::<ModuleMessage>().await.expect("hello") else { panic!("no hello") };
        let welcome = Welcome {
            protocol: 1,
            module: hello.name,
            host_version: "test".into(),
            granted: vec![],
            max_frame: DEFAULT_MAX_FRAME,
            max_in_flight: 64,
            config_toml: String::new(),
        };
        wr.send(&HostMessage::Welcome(welcome)).await.expect("welcome");
        for id in 0..PUSHED {
            wr.push(&HostMessage::Invoke { id, invocation: Invocation::Cli { command: "x".into(), args: vec![] } }).expect("fits");
            wr.push(&HostMessage::TimerFired { timer_id: id, task: None }).expect("fits");
        }
        wr.flush().await.expect("push");
        // The inbox takes the first 50 invocations and 50 ticks (they
        // alternate); the other 100 invocations come back busy.
        let mut busy = 0;
        while busy < PUSHED - 50 {
            match rd.next::<ModuleMessage>().await.expect("read") {
                Some(ModuleMessage::InvocationResult { result: Err(e), .. }) if e.code == ErrorCode::TooManyInFlight => busy += 1,
                Some(ModuleMessage::Request { id, .. }) => {
                    wr.send(&HostMessage::Response { id, result: Ok(Response::Ack) }).await.expect("respond");
                }
                Some(_) => {}
                None => panic!("the module closed the connection"),
            }
        }
        busy
    });

    let (client, _incoming_never_drained) = hostd_sdk::connect_fd(module_end.into(), "m", "1.0.0").await.expect("connect");
    tokio::time::timeout(Duration::from_secs(10), client.report_metric("alive", 1.0, &[]))
        .await
        .expect("the response arrived although the inbox is full")
        .expect("acknowledged");
    let busy = tokio::time::timeout(Duration::from_secs(10), fake_host).await.expect("all busy answers").expect("fake host");
    assert_eq!(busy, PUSHED - 50);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while client.dropped_ticks() < PUSHED - 50 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(client.dropped_ticks(), PUSHED - 50, "ticks beyond the inbox are dropped and counted");
}
