//! `[debug] echo_path`: the conformance endpoint echoes every message through the same
//! frame layer, limits and deflate as `/ws`, says nothing else, and is off by default.

mod common;

use common::*;
use tungstenite::Message;

#[test]
fn echo_path_echoes_text_and_binary_and_says_nothing_else() {
    let s = TestServer::start("[debug]\necho_path = \"/echo\"\n[storage]\npersist = false\n");
    let (mut ws, _) =
        tungstenite::connect(format!("ws://{}/echo", s.addr)).expect("upgrade on /echo");
    ws.send(Message::text("hello")).expect("send");
    match ws.read().expect("read") {
        Message::Text(t) => assert_eq!(t.as_str(), "hello", "no `connection` message first"),
        other => panic!("expected the text back, got {other:?}"),
    }
    let blob: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(blob.clone())).expect("send");
    match ws.read().expect("read") {
        Message::Binary(b) => assert_eq!(b.as_ref(), &blob[..]),
        other => panic!("expected the binary back, got {other:?}"),
    }
}

#[test]
fn echo_path_reassembles_fragments_and_checks_utf8_like_ws() {
    let s = TestServer::start("[debug]\necho_path = \"/echo\"\n[storage]\npersist = false\n");
    let (code, _, raw) = raw_upgrade(&s.addr, "/echo", &[]);
    assert_eq!(code, 101);
    let mut raw = raw.expect("upgraded");
    raw.frame(0x01, b"frag", true); // text, not final
    raw.frame(0x80, b"mented", true); // continuation, final
    let (op, payload) = raw.next_frame().expect("an answer");
    assert_eq!((op, payload.as_slice()), (0x1, &b"fragmented"[..]));
    raw.frame(0x81, &[0xff, 0xfe], true); // invalid UTF-8 in a text frame
    assert_eq!(raw.close_code(), Some(1007));
}

#[test]
fn echo_path_is_off_unless_configured() {
    let s = TestServer::start("[storage]\npersist = false\n");
    let (code, _, _) = raw_upgrade(&s.addr, "/echo", &[]);
    assert_eq!(code, 404);
    let c = s.client();
    assert_eq!(c.hello["type"], "connection", "/ws still greets");
}

#[test]
fn invalid_text_is_failed_before_the_rest_of_its_frame_arrives() {
    // Autobahn 6.4.3/6.4.4 over a real socket: the frame announces 40 bytes, the first 16
    // arrive with a code point past U+10FFFF in them, and the rest never comes. The server
    // closes with 1007 at once instead of waiting for the frame to complete.
    let s = TestServer::start("[debug]\necho_path = \"/echo\"\n[storage]\npersist = false\n");
    let (code, _, raw) = raw_upgrade(&s.addr, "/echo", &[]);
    assert_eq!(code, 101);
    let mut raw = raw.expect("upgraded");
    let mut payload = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80".to_vec();
    payload.resize(40, b'a');
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    use std::io::Write;
    raw.stream
        .write_all(&frame[..6 + 16])
        .expect("first part of the frame");
    assert_eq!(raw.close_code(), Some(1007));
}

#[test]
fn a_client_that_narrows_the_server_window_gets_deflate_and_uncompressed_messages() {
    // Autobahn 13.3/13.5: the client offers server_max_window_bits=8. Shared frames are
    // compressed once with a 15-bit window, so the server accepts the offer, takes the
    // client's compressed messages, and sends its own uncompressed (RSV1 clear), which
    // RFC 7692 allows message by message. A full offer gets compressed frames back.
    let s = TestServer::start("[debug]\necho_path = \"/echo\"\n[storage]\npersist = false\n");
    let text = "a message long enough to be compressed when the window allows it. ".repeat(40);
    let compressed = tracecast::ws::compress(text.as_bytes(), 6);
    for (offer, want_b0) in [
        (
            "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
            0x81,
        ),
        ("permessage-deflate", 0xC1),
    ] {
        let (code, head, raw) =
            raw_upgrade(&s.addr, "/echo", &[("Sec-WebSocket-Extensions", offer)]);
        assert_eq!(code, 101, "{offer}");
        assert!(head.contains("permessage-deflate"), "{offer}: {head}");
        let mut raw = raw.expect("upgraded");
        raw.frame(0xC1, &compressed, true); // FIN, RSV1, text
        let (op, payload) = raw.next_frame().expect("the echo");
        assert_eq!(op, 0x1, "{offer}");
        assert_eq!(raw.last_b0, want_b0, "{offer}: RSV1 as the window allows");
        if want_b0 == 0x81 {
            assert!(head.contains("server_max_window_bits=8"), "{head}");
            assert_eq!(payload, text.as_bytes());
        } else {
            let mut inflater = tracecast::ws::Inflater::new();
            let mut out = Vec::new();
            inflater
                .decompress(&payload, 1 << 20, &mut out)
                .expect("inflates");
            assert_eq!(out, text.as_bytes());
        }
    }
}
