//! The in-process `Publisher` handle (SPEC §3.3): another thread publishes through the
//! channel + waker into the same ingest path, and real WebSocket subscribers see it.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;
use tracecast::config::Config;
use tracecast::server::publisher::PublishError;
use tracecast::server::Server;

fn start_in_process() -> (
    tracecast::server::publisher::Publisher,
    String,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut config = Config {
            port: 0,
            ..Config::default()
        };
        config.storage.persist = false;
        let server = Server::bind(config).expect("bind");
        tx.send((server.publisher(), server.local_addr().to_string()))
            .unwrap();
        server.run().expect("run");
    });
    let (publisher, addr) = rx.recv_timeout(WAIT).expect("server started");
    (publisher, addr, handle)
}

#[test]
fn publisher_from_another_thread_reaches_subscribers_and_stops_the_server() {
    let (publisher, addr, handle) = start_in_process();
    let mut c = Client::connect(&format!("ws://{addr}/ws"));
    c.subscribe("p-1");

    let body = json!([
        event("p-1", "a", "TASK_START", 1),
        event("p-1", "a", "TASK_COMPLETE", 2)
    ])
    .to_string();
    let ack = publisher.publish_wait(body, WAIT).expect("accepted");
    assert_eq!(ack.accepted, 2);
    let (first, last) = (ack.first_seq.unwrap(), ack.last_seq.unwrap());
    assert_eq!(last, first + 1);

    let (events, _) = c.recv_events(2);
    assert_eq!(events[0]["seq"], first);
    assert_eq!(events[1]["type"], "TASK_COMPLETE");

    // A bad batch is refused whole, with the index and field named.
    let bad = json!([event("p-1", "a", "X", 3), {"type": "X"}]).to_string();
    match publisher.publish_wait(bad, WAIT) {
        Err(PublishError::Rejected(m)) => {
            assert!(m.contains("event 1") && m.contains("sessionId"), "{m}")
        }
        other => panic!("expected a rejection, got {other:?}"),
    }

    // Fire-and-forget publishing from several threads.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let p = publisher.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    p.publish(json!(event("p-1", &format!("t{t}"), "STATE_CHANGE", i)).to_string())
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (events, _) = c.recv_events(100);
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs must increase");

    publisher.shutdown().unwrap();
    assert_eq!(c.recv_close(), Some(1001));
    let _ = c.ws.flush(); // our close reply lets the server finish at once
    drop(c);
    let deadline = std::time::Instant::now() + WAIT;
    while !handle.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "server thread did not stop"
        );
        std::thread::sleep(Duration::from_millis(5)); // polling a thread, not synchronising
    }
    handle.join().unwrap();
    assert_eq!(publisher.publish("{}"), Err(PublishError::Closed));
}
