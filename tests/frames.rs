//! RFC 6455 frame rules on a real socket (SPEC §8): hand-made frames from a raw client
//! get the close code the RFC demands (1009 too big, 1002 protocol error, 1007 bad
//! UTF-8), and a fragmented message with a ping in the middle is answered and processed.

mod common;
use common::*;

const SMALL: &str = "max_message_size = 4096\nmax_event_bytes = 4096\n[storage]\npersist = false\n";

const FIN: u8 = 0x80;
const TEXT: u8 = 0x1;
const CONT: u8 = 0x0;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
const CLOSE: u8 = 0x8;

/// A raw client past its `connection` message.
fn raw(s: &TestServer) -> Raw {
    let mut r = Raw::upgrade(&s.addr);
    let (op, p) = r.next_frame().expect("connection message");
    assert_eq!(op, TEXT);
    assert!(String::from_utf8_lossy(&p).contains("\"type\":\"connection\""));
    r
}

#[test]
fn oversized_message_closes_1009() {
    let s = TestServer::start(SMALL);
    let mut r = raw(&s);
    let big = format!(
        "{{\"type\":\"heartbeat\",\"pad\":\"{}\"}}",
        "x".repeat(5000)
    );
    r.frame(FIN | TEXT, big.as_bytes(), true);
    assert_eq!(r.close_code(), Some(1009));
}

#[test]
fn oversized_fragmented_message_closes_1009() {
    let s = TestServer::start(SMALL);
    let mut r = raw(&s);
    let part = vec![b' '; 3000];
    r.frame(TEXT, &part, true);
    r.frame(FIN | CONT, &part, true);
    assert_eq!(r.close_code(), Some(1009));
}

#[test]
fn unmasked_client_frame_closes_1002() {
    let s = TestServer::start(SMALL);
    let mut r = raw(&s);
    r.frame(FIN | TEXT, br#"{"type":"heartbeat"}"#, false);
    assert_eq!(r.close_code(), Some(1002));
}

#[test]
fn invalid_utf8_text_closes_1007() {
    let s = TestServer::start(SMALL);
    let mut r = raw(&s);
    r.frame(FIN | TEXT, b"{\"type\":\"\xff\xfe\"}", true);
    assert_eq!(r.close_code(), Some(1007));
}

#[test]
fn fragmented_message_with_interleaved_ping_is_answered_and_processed() {
    let s = TestServer::start(SMALL);
    let mut r = raw(&s);
    r.frame(TEXT, br#"{"type":"hea"#, true);
    r.frame(FIN | PING, b"mid", true);
    r.frame(CONT, br#"rtbeat","reque"#, true);
    r.frame(FIN | CONT, br#"stId":"frag"}"#, true);
    let mut pong = false;
    let mut answered = false;
    while !(pong && answered) {
        let (op, p) = r.next_frame().expect("pong and heartbeat_response");
        match op {
            PONG => {
                assert_eq!(p, b"mid");
                assert!(
                    !answered,
                    "the pong answers the ping before the message ends"
                );
                pong = true;
            }
            TEXT => {
                let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
                assert_eq!(v["type"], "heartbeat_response", "{v}");
                assert_eq!(v["requestId"], "frag");
                answered = true;
            }
            CLOSE => panic!("closed: {p:?}"),
            _ => {}
        }
    }
}

#[test]
fn rsv_bit_without_deflate_closes_1002() {
    let s = TestServer::start(SMALL);
    let mut r = raw(&s);
    r.frame(FIN | 0x40 | TEXT, br#"{"type":"heartbeat"}"#, true);
    assert_eq!(r.close_code(), Some(1002));
}

#[test]
fn control_frame_over_125_bytes_closes_1002() {
    let s = TestServer::start(SMALL);
    let mut r = raw(&s);
    r.frame(FIN | PING, &[b'p'; 126], true);
    assert_eq!(r.close_code(), Some(1002));
}

#[test]
fn fragmented_control_frame_closes_1002() {
    let s = TestServer::start(SMALL);
    let mut r = raw(&s);
    r.frame(PING, b"no fin", true);
    assert_eq!(r.close_code(), Some(1002));
}

#[test]
fn continuation_without_a_start_closes_1002() {
    let s = TestServer::start(SMALL);
    let mut r = raw(&s);
    r.frame(FIN | CONT, b"orphan", true);
    assert_eq!(r.close_code(), Some(1002));
}

#[test]
fn client_close_is_echoed_with_its_code() {
    let s = TestServer::start(SMALL);
    let mut r = raw(&s);
    r.frame(FIN | CLOSE, &[0x03, 0xE8], true);
    assert_eq!(r.close_code(), Some(1000));
}
