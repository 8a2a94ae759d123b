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

/// permessage-deflate (RFC 7692) end to end: negotiated without context takeover, a large
/// batch arrives compressed (RSV1) and inflates to the plain JSON; small control messages
/// stay uncompressed; a compressed client message is understood.
#[test]
fn permessage_deflate_compresses_large_batches_and_reads_compressed_messages() {
    use miniz_oxide::inflate::decompress_to_vec;
    let s = TestServer::start("[storage]\npersist = false\n"); // compression_min_bytes = 1024
    let (mut raw, head) = Raw::upgrade_head(
        &s.addr,
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    );
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("sec-websocket-extensions: permessage-deflate"),
        "{head}"
    );
    assert!(head.contains("server_no_context_takeover"), "{head}");

    // `connection` is small: sent plain.
    let (op, hello) = raw.next_frame().expect("connection message");
    assert_eq!(op, 0x1);
    assert_eq!(raw.last_b0 & 0x40, 0, "small frames are not compressed");
    assert!(String::from_utf8_lossy(&hello).contains("\"connection\""));

    // A compressed client message (raw deflate, sync-flush tail removed).
    let msg = br#"{"type":"subscribe_session","sessionId":"z-1"}"#;
    // compress_to_vec ends the stream with a final block, which a permessage-deflate
    // reader must accept as well as a sync-flushed one.
    let compressed = miniz_oxide::deflate::compress_to_vec(msg, 6);
    raw.frame(0xC1, &compressed, true); // FIN | RSV1 | text
    let mut saw_info = false;
    for _ in 0..2 {
        let (_, p) = raw.next_frame().expect("reply");
        let text = if raw.last_b0 & 0x40 != 0 {
            let mut p = p.clone();
            p.extend_from_slice(&[0, 0, 0xff, 0xff, 0x03, 0x00]); // + an empty final block
            decompress_to_vec(&p).expect("inflates")
        } else {
            p
        };
        saw_info |= String::from_utf8_lossy(&text).contains("session_info");
    }
    assert!(saw_info, "the compressed subscribe was understood");

    let body = serde_json::Value::Array(
        (0..20)
            .map(|i| event("z-1", "a", "TASK_START", i))
            .collect(),
    );
    let (st, _) = s.post_events(&body.to_string());
    assert_eq!(st, 202);
    let (op, payload) = raw.next_frame().expect("batch");
    assert_eq!(op, 0x1);
    assert_ne!(raw.last_b0 & 0x40, 0, "a large batch is compressed");
    let mut p = payload.clone();
    p.extend_from_slice(&[0, 0, 0xff, 0xff, 0x03, 0x00]); // + an empty final block
    let json = decompress_to_vec(&p).expect("inflates");
    assert!(
        json.len() > payload.len() * 2,
        "compression pays: {} -> {}",
        json.len(),
        payload.len()
    );
    let v: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
    assert_eq!(v["type"], "trace_batch");
    assert_eq!(v["events"].as_array().unwrap().len(), 20);
}
