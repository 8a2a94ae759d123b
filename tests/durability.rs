//! Durability end to end: acknowledged events survive `kill -9`, a torn tail is cut with
//! a warning, a damaged record in the middle stops the start (or is quarantined on
//! request), and byte retention deletes whole old segments.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn batch(session: &str, from: usize, n: usize) -> Vec<Value> {
    (from..from + n)
        .map(|i| event(session, &format!("a{}", i % 3), "TASK_START", i))
        .collect()
}

/// `n` of each event in history, by seq.
fn by_seq(events: &[Value]) -> BTreeMap<u64, u64> {
    events
        .iter()
        .map(|e| (e["seq"].as_u64().unwrap(), e["data"]["n"].as_u64().unwrap()))
        .collect()
}

#[test]
fn acked_events_survive_kill9_and_new_seqs_are_higher() {
    let tmp = tempfile::tempdir().unwrap();
    let toml = "[storage]\nfsync = \"always\"\n";
    let mut acked: BTreeMap<u64, u64> = BTreeMap::new();
    {
        let mut s = TestServer::start_in(tmp.path(), toml, &[]);
        let mut ws = s.client();
        for b in 0..20 {
            let evs = batch("dur", b * 10, 10);
            let seqs = if b % 2 == 0 {
                post_batch(&s, &evs)
            } else {
                ws.send(json!({"type": "publish", "events": evs, "requestId": b}));
                let ack = ws.recv_type("publish_ack");
                assert_eq!(ack["requestId"], b, "{ack}");
                assert_eq!(ack["count"], 10, "{ack}");
                let first = ack["firstSeq"].as_u64().unwrap();
                (first..first + 10).collect()
            };
            for (i, seq) in seqs.into_iter().enumerate() {
                acked.insert(seq, (b * 10 + i) as u64);
            }
        }
        s.kill9();
    }
    let s = TestServer::start_in(tmp.path(), toml, &[]);
    let (events, total) = http_history(&s, "sessionId=dur");
    assert_eq!(total, 200);
    assert_eq!(
        by_seq(&events),
        acked,
        "every acknowledged event, unchanged"
    );
    let max_old = *acked.keys().last().unwrap();
    let new = post_batch(&s, &batch("dur", 1000, 5));
    assert!(new[0] > max_old, "seq {} reused after restart", new[0]);
}

#[test]
fn torn_tail_is_truncated_with_a_warning_naming_file_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let mut published = Vec::new();
    {
        let mut s = TestServer::start_in(tmp.path(), "", &[]);
        for b in 0..5 {
            published.extend(post_batch(&s, &batch("torn", b * 4, 4)));
        }
        assert!(s.terminate().success());
    }
    let seg = segment_files(tmp.path()).pop().expect("a segment file");
    let good_len = std::fs::metadata(&seg).unwrap().len();
    // A record header announcing 1000 bytes, then only a few of them: a write the crash
    // interrupted.
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&1000u32.to_le_bytes());
    bytes.extend_from_slice(&[0xAB, 0xCD, 0xEF, 0x01, 1, 2, 3, 4, 5]);
    std::fs::write(&seg, bytes).unwrap();

    let s = TestServer::start_in(tmp.path(), "", &[]);
    let line = s.wait_log("torn tail");
    let name = seg.file_name().unwrap().to_str().unwrap();
    assert!(line.contains(name), "warning names the file: {line}");
    assert!(
        line.contains(&format!("\"offset\":{good_len}")),
        "warning names the offset {good_len}: {line}"
    );
    assert!(line.contains("WARN"), "logged as a warning: {line}");
    let (events, _) = http_history(&s, "sessionId=torn");
    assert_eq!(seqs_of(&events), published);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), good_len);
}

/// Publishes three one-batch records, stops, and damages the second record's body.
/// Returns the directory, the segment, the damaged record's offset and each batch's seqs.
fn log_with_corrupt_middle_record() -> (tempfile::TempDir, std::path::PathBuf, u64, Vec<Vec<u64>>) {
    let tmp = tempfile::tempdir().unwrap();
    let mut batches = Vec::new();
    {
        let mut s = TestServer::start_in(tmp.path(), "", &[]);
        for b in 0..3 {
            batches.push(post_batch(&s, &batch("mid", b * 3, 3)));
        }
        assert!(s.terminate().success());
    }
    let seg = segment_files(tmp.path()).pop().expect("a segment file");
    let mut bytes = std::fs::read(&seg).unwrap();
    // Record framing (docs/STORAGE.md): len:u32 crc:u32 body[len].
    let first_len = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
    let second = 8 + first_len;
    assert!(bytes.len() > second + 40, "three records in one segment");
    for b in &mut bytes[second + 30..second + 34] {
        *b ^= 0xFF;
    }
    std::fs::write(&seg, bytes).unwrap();
    (tmp, seg, second as u64, batches)
}

#[test]
fn corrupt_middle_record_stops_the_start_naming_file_and_offset() {
    let (tmp, seg, offset, _) = log_with_corrupt_middle_record();
    let (status, stderr) = start_expect_exit(tmp.path(), "");
    assert!(!status.success(), "exit status {status}");
    let name = seg.file_name().unwrap().to_str().unwrap();
    assert!(stderr.contains(name), "names the file: {stderr}");
    assert!(
        stderr.contains(&format!("offset {offset}")),
        "names the offset {offset}: {stderr}"
    );
    // Nothing was cut or moved: the operator decides, and the message says how.
    assert!(std::fs::read_dir(tmp.path().join("data"))
        .unwrap()
        .all(|e| !e.unwrap().path().to_string_lossy().ends_with(".quarantine")));
    for remedy in [
        "quarantine_corrupt = true",
        "[storage]",
        "TRACECAST_STORAGE__QUARANTINE_CORRUPT=true",
        "restore",
        "backup",
    ] {
        assert!(
            stderr.contains(remedy),
            "names the remedy {remedy:?}: {stderr}"
        );
    }
    let moved = format!("{name}.{offset}.quarantine");
    assert!(
        stderr.contains(&moved),
        "says where the rest goes: {stderr}"
    );
    // The variable it names works as it says.
    let s = TestServer::start_in(
        tmp.path(),
        "",
        &[("TRACECAST_STORAGE__QUARANTINE_CORRUPT", "true")],
    );
    s.wait_log("quarantined");
    assert!(seg.with_file_name(moved).exists());
}

#[test]
fn corrupt_middle_record_is_quarantined_when_asked() {
    let (tmp, seg, offset, batches) = log_with_corrupt_middle_record();
    let s = TestServer::start_in(tmp.path(), "[storage]\nquarantine_corrupt = true\n", &[]);
    let line = s.wait_log("quarantined");
    let name = seg.file_name().unwrap().to_str().unwrap();
    assert!(
        line.contains(name) && line.contains(&format!("\"offset\":{offset}")),
        "{line}"
    );
    let moved = seg.with_file_name(format!("{name}.{offset}.quarantine"));
    assert!(
        moved.exists(),
        "remainder kept aside at {}",
        moved.display()
    );
    // What preceded the damage is served; nothing after it is invented.
    let (events, _) = http_history(&s, "sessionId=mid");
    assert_eq!(seqs_of(&events), batches[0]);
    let new = post_batch(&s, &batch("mid", 100, 1));
    assert!(new[0] > *batches[2].last().unwrap(), "seqs never reused");
}

#[test]
fn byte_retention_deletes_whole_old_segments_and_history_starts_later() {
    // The smallest segment the config allows, and a limit of one segment.
    let toml = "[storage]\nsegment_bytes = 1048576\nretention_bytes = 1048576\n";
    let s = TestServer::start(toml);
    let mut seqs = Vec::new();
    let pad = "x".repeat(700);
    for b in 0..8 {
        let evs: Vec<Value> = (0..500)
            .map(|i| {
                let mut e = event("ret", "a", "PERFORMANCE_METRIC", b * 500 + i);
                e["data"]["pad"] = json!(pad);
                e
            })
            .collect();
        seqs.extend(post_batch(&s, &evs));
    }
    // ~4 MiB written into 1 MiB segments: the first files are gone, whole.
    let files = segment_files(&s.dir);
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.contains(&format!("{:020}.log", seqs[0])),
        "oldest segment still there: {names:?}"
    );
    assert!(files.len() <= 2, "{names:?}");
    let on_disk: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(on_disk <= 2 * 1048576, "{on_disk} bytes on disk");
    // History starts later, at a segment boundary, and holds everything after it.
    let (events, total) = http_history(&s, "sessionId=ret&limit=10000");
    let got = seqs_of(&events);
    assert_eq!(total, got.len() as u64);
    let first = got[0];
    assert!(first > seqs[0]);
    assert!(
        names[0] == format!("{first:020}.log"),
        "history starts where the oldest kept segment starts: {first} vs {names:?}"
    );
    let kept: Vec<u64> = seqs.iter().copied().filter(|&q| q >= first).collect();
    assert_eq!(got, kept);
    let mut c = s.client();
    let (info, _) = c.subscribe("ret");
    assert_eq!(info["session"]["eventCount"], kept.len() as u64);
}
