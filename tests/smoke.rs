mod common;
use common::*;
use serde_json::json;

#[test]
fn publish_and_receive_live() {
    let s = TestServer::start("[storage]\npersist = false\n");
    let mut c = s.client();
    let (info, initial) = c.subscribe("s1");
    assert_eq!(info["session"]["id"], "s1");
    assert_eq!(initial["traces"].as_array().unwrap().len(), 0);
    let (st, ack) = s.post_events(
        &json!([
            event("s1", "a", "TASK_START", 1),
            event("s1", "b", "TASK_START", 2)
        ])
        .to_string(),
    );
    assert_eq!(st, 202, "{ack}");
    let (evs, _) = c.recv_events(2);
    assert_eq!(evs[0]["seq"], 1);
    assert_eq!(evs[1]["seq"], 2);
}
