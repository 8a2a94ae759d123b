//! Tests of the durable log: reopen, recovery rules, retention, reads, sync.

use super::*;
use crate::config::StorageConfig;
use crate::store::fail_points::FailOp;
use crate::store::{EventLog, MemoryStore, SessionReads, Store, TimeTravel};
use crate::timetravel::SessionState;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

fn pending(session: &str, ts: i64, agent: Option<&str>, kind: &str, extra: &str) -> Pending {
    let mut tail = format!("\"type\":\"{kind}\",\"sessionId\":\"{session}\",\"timestamp\":{ts}");
    if let Some(a) = agent {
        tail.push_str(&format!(",\"agentId\":\"{a}\""));
    }
    tail.push_str(extra);
    tail.push('}');
    Pending {
        timestamp: ts,
        session: Arc::from(session),
        agent: agent.map(Arc::from),
        kind: Arc::from(kind),
        json_tail: tail.into_bytes(),
        headroom: 0,
    }
}

fn cfg() -> StorageConfig {
    StorageConfig {
        fsync: FsyncPolicy::Never,
        checkpoint_every: 16,
        ..StorageConfig::default()
    }
}

fn open(dir: &Path, c: &StorageConfig) -> (LogStore, RecoveryReport) {
    LogStore::open(dir, c, Box::new(|| {})).unwrap_or_else(|e| panic!("open: {e}"))
}

fn seqs(v: &[EventRef]) -> Vec<u64> {
    v.iter().map(|e| e.seq).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn append(st: &mut impl Store, batch: Vec<Pending>) -> Appended {
    st.append(batch).unwrap_or_else(|e| panic!("append: {e}"))
}

#[test]
fn reopen_keeps_events_and_seq() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = cfg();
    let (last, json) = {
        let (mut st, rep) = open(dir.path(), &c);
        assert_eq!(rep.events, 0);
        append(
            &mut st,
            vec![pending("s", 10, Some("a"), "AGENT_SPAWN", "")],
        );
        let app = append(
            &mut st,
            (0..5)
                .map(|i| pending("s", 11 + i, Some("a"), "X", ""))
                .collect(),
        );
        st.sync().unwrap_or_else(|e| panic!("{e}"));
        (app.last_seq().unwrap_or(0), app.events[4].json.clone())
    };
    assert_eq!(last, 6);
    let (mut st, rep) = open(dir.path(), &c);
    assert_eq!(rep.events, 6);
    assert_eq!(rep.truncated, None);
    assert!(st.next_seq() > last);
    let back = st.after_seq("s", 0, 100).unwrap_or_default();
    assert_eq!(seqs(&back), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(back[5].json, json);
    assert_eq!(back[5].agent.as_deref(), Some("a"));
    assert_eq!(
        st.session("s")
            .map(|s| (s.event_count, s.agent_count, s.last_seq)),
        Some((6, 1, Some(6)))
    );
    let next = append(&mut st, vec![pending("s", 20, None, "X", "")]);
    assert!(next.first_seq() > Some(last));
}

#[test]
fn seq_never_reused_after_retention_deletes_everything() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = StorageConfig {
        segment_bytes: 4096,
        retention_bytes: 1,
        ..cfg()
    };
    let last = {
        let (mut st, _) = open(dir.path(), &c);
        let mut last = 0;
        for i in 0..100 {
            last = append(
                &mut st,
                vec![pending(
                    "s",
                    i,
                    None,
                    "X",
                    ",\"pad\":\"..........................................\"",
                )],
            )
            .last_seq()
            .unwrap_or(0);
        }
        // The byte limit is swept at every roll already; the timer's sweep finds the rest.
        st.enforce_retention(0);
        assert_eq!(st.segment_count(), 1);
        assert!(st.first_seq("s") > Some(1));
        // Then make the active segment old too and roll past it.
        last
    };
    // Delete every segment and the reservation's effect must still hold.
    for f in segment_files(dir.path()) {
        let _ = std::fs::remove_file(f);
    }
    let (st, rep) = open(dir.path(), &c);
    assert!(
        rep.next_seq > last && st.next_seq() > last,
        "{} vs {last}",
        st.next_seq()
    );
}

#[test]
fn torn_tail_is_truncated_and_reported() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = cfg();
    let good_len = {
        let (mut st, _) = open(dir.path(), &c);
        append(
            &mut st,
            vec![
                pending("s", 1, None, "X", ""),
                pending("s", 2, None, "X", ""),
            ],
        );
        append(&mut st, vec![pending("s", 3, None, "X", "")]);
        st.total_bytes()
    };
    let seg = segment_files(dir.path()).pop().unwrap_or_default();
    let bytes = std::fs::read(&seg).unwrap_or_default();
    // Cases: half a header, half a record, a whole record with its last byte damaged,
    // and zero-filled pages after a valid log.
    let whole = bytes.clone();
    let first_rec = record::decode_record(&whole).map(|(_, n)| n).unwrap_or(0);
    let second = whole.get(first_rec..).unwrap_or_default().to_vec();
    let mut damaged = second.clone();
    if let Some(b) = damaged.last_mut() {
        *b ^= 0xff;
    }
    for tail in [
        second[..5].to_vec(),
        second[..second.len() / 2].to_vec(),
        damaged,
        vec![0u8; 5000],
    ] {
        let mut f = whole.clone();
        f.extend_from_slice(&tail);
        std::fs::write(&seg, &f).unwrap_or_else(|e| panic!("{e}"));
        let (st, rep) = open(dir.path(), &c);
        let t = rep
            .truncated
            .unwrap_or_else(|| panic!("tail of {} not reported", tail.len()));
        assert_eq!(t.offset, good_len);
        assert_eq!(t.dropped_bytes, tail.len() as u64);
        assert!(t.file.ends_with(".log"));
        assert_eq!(rep.events, 3);
        assert_eq!(st.total_bytes(), good_len);
        drop(st);
        assert_eq!(
            std::fs::metadata(&seg).map(|m| m.len()).unwrap_or(0),
            good_len
        );
    }
}

#[test]
fn corrupt_middle_record_is_refused_or_quarantined() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = cfg();
    {
        let (mut st, _) = open(dir.path(), &c);
        for i in 0..3 {
            append(&mut st, vec![pending("s", i, None, "X", "")]);
        }
    }
    let seg = segment_files(dir.path()).pop().unwrap_or_default();
    let mut bytes = std::fs::read(&seg).unwrap_or_default();
    let first = record::decode_record(&bytes).map(|(_, n)| n).unwrap_or(0);
    // Damage a byte inside the second record's body; the third record stays valid.
    let at = first + 20;
    bytes[at] ^= 0x55;
    std::fs::write(&seg, &bytes).unwrap_or_else(|e| panic!("{e}"));
    match LogStore::open(dir.path(), &c, Box::new(|| {})) {
        Err(StoreError::CorruptAtOpen {
            file,
            offset,
            reason,
        }) => {
            assert!(file.ends_with(".log"), "{file}");
            assert_eq!(offset, first as u64);
            assert!(reason.contains("checksum"), "{reason}");
        }
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("opened a corrupt log"),
    }
    let q = StorageConfig {
        quarantine_corrupt: true,
        ..c
    };
    let (mut st, rep) = open(dir.path(), &q);
    assert_eq!(rep.quarantined.len(), 1);
    assert_eq!(rep.quarantined[0].offset, first as u64);
    assert!(Path::new(&rep.quarantined[0].moved_to).exists());
    assert_eq!(seqs(&st.after_seq("s", 0, 10).unwrap_or_default()), vec![1]);
    assert!(append(&mut st, vec![pending("s", 9, None, "X", "")]).first_seq() > Some(3));
}

/// The operator who meets this at start-up must learn from the message alone where the
/// damage is and what the two ways out are.
#[test]
fn a_corrupt_record_stops_the_start_with_file_offset_and_remedy() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = cfg();
    {
        let (mut st, _) = open(dir.path(), &c);
        for i in 0..3 {
            append(&mut st, vec![pending("s", i, None, "X", "")]);
        }
    }
    let seg = segment_files(dir.path()).pop().unwrap_or_default();
    let mut bytes = std::fs::read(&seg).unwrap_or_default();
    let first = record::decode_record(&bytes).map(|(_, n)| n).unwrap_or(0);
    bytes[first + 20] ^= 0x55;
    std::fs::write(&seg, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let msg = match LogStore::open(dir.path(), &c, Box::new(|| {})) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("opened a corrupt log"),
    };
    let file = seg.display().to_string();
    for want in [
        format!("{file} at offset {first}"),
        "checksum".to_string(),
        "quarantine_corrupt = true".to_string(),
        "[storage]".to_string(),
        "TRACECAST_STORAGE__QUARANTINE_CORRUPT=true".to_string(),
        format!("{file}.{first}.quarantine"),
        "restore".to_string(),
        "backup".to_string(),
    ] {
        assert!(msg.contains(&want), "message lacks {want:?}: {msg}");
    }
    // The remedy it names is the one that works, and moves the bytes where it said.
    let q = StorageConfig {
        quarantine_corrupt: true,
        ..c
    };
    let (_, rep) = open(dir.path(), &q);
    assert_eq!(rep.quarantined.len(), 1);
    assert_eq!(
        rep.quarantined[0].moved_to,
        format!("{file}.{first}.quarantine")
    );
}

#[test]
fn corrupt_record_in_older_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = StorageConfig {
        segment_bytes: 4096,
        ..cfg()
    };
    {
        let (mut st, _) = open(dir.path(), &c);
        for i in 0..60 {
            append(
                &mut st,
                vec![pending(
                    "s",
                    i,
                    None,
                    "X",
                    ",\"pad\":\"........................................\"",
                )],
            );
        }
        assert!(st.segment_count() >= 2);
    }
    let seg = segment_files(dir.path())
        .into_iter()
        .next()
        .unwrap_or_default();
    let bytes = std::fs::read(&seg).unwrap_or_default();
    // Even a cut-short tail is corruption when it is not in the last segment.
    std::fs::write(&seg, &bytes[..bytes.len() - 3]).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        LogStore::open(dir.path(), &c, Box::new(|| {})),
        Err(StoreError::CorruptAtOpen { .. })
    ));
}

#[test]
fn retention_by_bytes_and_age_deletes_whole_old_segments() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = StorageConfig {
        segment_bytes: 4096,
        retention_bytes: 0,
        retention_ms: 0,
        ..cfg()
    };
    let (mut st, _) = open(dir.path(), &c);
    for i in 0..200 {
        append(
            &mut st,
            vec![pending(
                if i % 2 == 0 { "a" } else { "b" },
                1000 + i,
                None,
                "X",
                ",\"pad\":\"..............................\"",
            )],
        );
    }
    let segs = st.segment_count();
    assert!(segs >= 4, "{segs}");
    assert_eq!(st.enforce_retention(i64::MAX), RetentionReport::default());
    // Bytes: keep at most ~2 segments' worth.
    st.retention_bytes = 2 * 4096;
    let rep = st.enforce_retention(0);
    assert!(rep.segments >= 1 && rep.events > 0);
    assert!(st.total_bytes() <= 2 * 4096 || st.segment_count() == 1);
    assert_eq!(segment_files(dir.path()).len(), st.segment_count());
    let first_a = st.first_seq("a").unwrap_or(0);
    assert!(first_a > 1);
    let got = st.after_seq("a", 0, 1000).unwrap_or_default();
    assert_eq!(got.first().map(|e| e.seq), Some(first_a));
    assert_eq!(st.count_time_range("a", 0, i64::MAX), got.len() as u64);
    // Age: everything older than now - 1 ms, except the active segment.
    st.retention_bytes = 0;
    st.retention_ms = 1;
    st.enforce_retention(5000);
    assert_eq!(st.segment_count(), 1);
    let last = st.next_seq() - 1;
    drop(st);
    let (st, _) = open(dir.path(), &c);
    assert!(st.next_seq() > last);
    assert_eq!(
        st.first_seq("a"),
        st.after_seq("a", 0, 1)
            .unwrap_or_default()
            .first()
            .map(|e| e.seq)
    );
}

#[test]
fn reads_match_the_memory_store_before_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = StorageConfig {
        segment_bytes: 16 << 10,
        memory_events_per_session: 1 << 20,
        ..cfg()
    };
    let (mut log, _) = open(dir.path(), &c);
    let mut mem = MemoryStore::new(&c);
    for b in 0..60 {
        let batch = || {
            (0..7)
                .map(|i| {
                    let n = b * 7 + i;
                    let ts = if n % 41 == 0 {
                        n / 2
                    } else {
                        n * 10 + (n * 13 % 7)
                    };
                    let agent = format!("ag{}", n % 3);
                    let (kind, extra) = match n % 5 {
                        0 => (
                            "TASK_START",
                            format!(",\"data\":{{\"taskId\":\"t{}\"}}", n % 17),
                        ),
                        1 => (
                            "TASK_COMPLETE",
                            format!(",\"data\":{{\"taskId\":\"t{}\"}}", (n + 16) % 17),
                        ),
                        2 => (
                            "STATE_CHANGE",
                            format!(",\"data\":{{\"state\":\"st{}\"}}", n % 4),
                        ),
                        _ => ("MESSAGE_SEND", String::new()),
                    };
                    pending(
                        if n % 3 == 0 { "x" } else { "y" },
                        ts,
                        Some(&agent),
                        kind,
                        &extra,
                    )
                })
                .collect::<Vec<_>>()
        };
        append(&mut log, batch());
        append(&mut mem, batch());
    }
    let check = |log: &LogStore| {
        for s in ["x", "y"] {
            assert_eq!(log.session(s), mem.session(s));
            for n in [0, 1, 50, 100, 500] {
                assert_eq!(seqs(&log.recent(s, n)), seqs(&mem.recent(s, n)));
            }
            let mut after = 0;
            loop {
                let page = log.after_seq(s, after, 9).unwrap_or_default();
                assert_eq!(
                    seqs(&page),
                    seqs(&mem.after_seq(s, after, 9).unwrap_or_default())
                );
                let Some(l) = page.last() else { break };
                after = l.seq;
            }
            for (a, b) in [(0, 5000), (100, 900), (2000, 2100), (-5, -1)] {
                assert_eq!(log.count_time_range(s, a, b), mem.count_time_range(s, a, b));
                for (off, lim) in [(0, 1000), (3, 10), (40, 7)] {
                    let l = log.time_range(s, a, b, off, lim).unwrap_or_default();
                    let m = mem.time_range(s, a, b, off, lim).unwrap_or_default();
                    assert_eq!(seqs(&l), seqs(&m));
                    assert!(l.iter().zip(&m).all(|(x, y)| x == y));
                }
            }
            for at in [-1, 0, 333, 1200, 2500, 5000] {
                let (ls, lt) = log.state_at(s, at, 10).unwrap_or_else(|e| panic!("{e}"));
                let (ms, mt) = mem.state_at(s, at, 10).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(ls, ms, "state at {at}");
                assert_eq!(seqs(&lt), seqs(&mt));
                // And both equal a plain fold over everything.
                let mut full = SessionState::default();
                for e in mem
                    .after_seq(s, 0, usize::MAX)
                    .unwrap_or_default()
                    .iter()
                    .filter(|e| e.timestamp <= at)
                {
                    full.apply(e);
                }
                assert_eq!(ls, full, "fold at {at}");
            }
        }
    };
    check(&log);
    drop(log);
    let (log, rep) = open(dir.path(), &c);
    assert_eq!(rep.events, 420);
    check(&log);
}

#[test]
fn always_policy_reports_durability_through_wake() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = StorageConfig {
        fsync: FsyncPolicy::Always,
        ..cfg()
    };
    let wakes = Arc::new(AtomicUsize::new(0));
    let w = wakes.clone();
    let (mut st, _) = LogStore::open(
        dir.path(),
        &c,
        Box::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        }),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let app = append(
        &mut st,
        vec![
            pending("s", 1, None, "X", ""),
            pending("s", 2, None, "X", ""),
        ],
    );
    let last = app.last_seq().unwrap_or(0);
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while st.durable_seq() < last && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
        st.poll_sync().unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(st.durable_seq() >= last);
    assert!(wakes.load(Ordering::SeqCst) > 0);
}

#[test]
fn interval_policy_syncs_on_its_own() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = StorageConfig {
        fsync: FsyncPolicy::Interval,
        fsync_interval_ms: 5,
        ..cfg()
    };
    let (mut st, _) = open(dir.path(), &c);
    let last = append(&mut st, vec![pending("s", 1, None, "X", "")])
        .last_seq()
        .unwrap_or(0);
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while st.durable_seq() < last && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
        let _ = st.poll_sync();
    }
    assert!(st.durable_seq() >= last);
}

#[test]
fn documented_layout_written_by_another_tool_is_read() {
    // The corpus seed was produced by a short script from docs/STORAGE.md alone.
    let seed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/log_record/valid_three_records");
    let Ok(bytes) = std::fs::read(seed) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("00000000000000000001.log"), bytes)
        .unwrap_or_else(|e| panic!("{e}"));
    let (st, rep) = open(dir.path(), &cfg());
    assert_eq!(rep.events, 4);
    let (state, _) = st
        .state_at("s1", 1000, 10)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    state.to_json(&mut out);
    assert_eq!(
        String::from_utf8_lossy(&out),
        r#"{"agents":{"a1":{"status":"idle","lastEventType":"STATE_CHANGE","lastEventAt":99,"eventCount":3,"spawnedAt":100}},"tasks":{"t1":{"status":"failed","agentId":"a1","startedAt":101,"endedAt":105}},"eventCount":4,"lastSeq":4}"#
    );
}

#[test]
fn byte_retention_runs_at_roll_and_remembers_what_it_deleted() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = StorageConfig {
        segment_bytes: 4096,
        retention_bytes: 2 * 4096,
        ..cfg()
    };
    let (mut st, _) = open(dir.path(), &c);
    let mut a_seqs = Vec::new();
    for i in 0..300 {
        let session = if i % 3 == 0 { "a" } else { "b" };
        let got = append(
            &mut st,
            vec![pending(
                session,
                i,
                None,
                "X",
                ",\"pad\":\"......................\"",
            )],
        );
        if session == "a" {
            a_seqs.extend(got.first_seq());
        }
    }
    // No timer ran: the rolls alone kept the log within the limit.
    assert!(st.total_bytes() <= 2 * 4096 + 4096, "{}", st.total_bytes());
    assert_eq!(segment_files(dir.path()).len(), st.segment_count());
    let first = st.first_seq("a").unwrap_or(0);
    let gone: Vec<u64> = a_seqs.iter().copied().filter(|&s| s < first).collect();
    assert!(!gone.is_empty());
    let d = st.deleted_after("a", 0);
    assert_eq!(
        d.map(|d| (d.count, d.from_seq, d.to_seq)),
        Some((gone.len() as u64, a_seqs[0], *gone.last().unwrap_or(&0)))
    );
    assert_eq!(st.deleted_after("a", first - 1), None);
    assert_eq!(st.deleted_after("nope", 0), None);
}

#[test]
fn index_holds_under_4_bytes_per_event() {
    // docs/STORAGE.md quotes the index's memory per event from this: 20,000 events of
    // ~250 bytes in batches of 50, one session.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut st, _) = open(dir.path(), &cfg());
    for b in 0..400 {
        let batch = (0..50)
            .map(|i| {
                let pad = ".".repeat(150 + (i % 7));
                pending(
                    "s",
                    (b * 50 + i) as i64,
                    Some("a"),
                    "MESSAGE_SEND",
                    &format!(",\"pad\":\"{pad}\""),
                )
            })
            .collect();
        append(&mut st, batch);
    }
    let bytes = st.sessions.get("s").map_or(0, |s| s.idx.heap_bytes());
    let per_event = bytes as f64 / 20_000.0;
    eprintln!("index: {per_event:.2} bytes per event, one session");
    assert!(per_event <= 4.0, "{per_event:.2} bytes per event");
    // Four sessions taking turns in every batch, as perf/loadgen's workload sends them.
    for b in 0..400 {
        let batch = (0..48)
            .map(|i| {
                let pad = ".".repeat(150 + (i % 7));
                let id = format!("rr{}", i % 4);
                pending(
                    &id,
                    (b * 48 + i) as i64,
                    Some("a"),
                    "TASK_START",
                    &format!(",\"pad\":\"{pad}\""),
                )
            })
            .collect();
        append(&mut st, batch);
    }
    let bytes: usize = (0..4)
        .filter_map(|i| st.sessions.get(format!("rr{i}").as_str()))
        .map(|s| s.idx.heap_bytes())
        .sum();
    let per_event = bytes as f64 / (400.0 * 48.0);
    eprintln!("index: {per_event:.2} bytes per event, four sessions taking turns");
    assert!(
        per_event <= 4.0,
        "interleaved: {per_event:.2} bytes per event"
    );
}

/// The fold over the retained events with `timestamp <= at`, straight from the events.
fn reference_state(st: &LogStore, session: &str, at: i64) -> String {
    let mut s = SessionState::default();
    for e in st.after_seq(session, 0, usize::MAX).unwrap_or_default() {
        if e.timestamp <= at {
            s.apply(&e);
        }
    }
    let mut out = Vec::new();
    s.to_json(&mut out);
    String::from_utf8(out).unwrap_or_default()
}

fn state_json(st: &LogStore, session: &str, at: i64) -> String {
    let (s, _) = st
        .state_at(session, at, 10)
        .unwrap_or_else(|e| panic!("state_at: {e}"));
    let mut out = Vec::new();
    s.to_json(&mut out);
    String::from_utf8(out).unwrap_or_default()
}

fn task_event(i: i64) -> Pending {
    let agent = format!("a{}", i % 3);
    let (kind, extra) = match i % 4 {
        0 => (
            "TASK_START",
            format!(",\"data\":{{\"taskId\":\"t{}\"}}", i % 7),
        ),
        1 => (
            "TASK_COMPLETE",
            format!(",\"data\":{{\"taskId\":\"t{}\"}}", i % 7),
        ),
        2 => (
            "STATE_CHANGE",
            format!(",\"data\":{{\"state\":\"s{}\"}}", i % 5),
        ),
        _ => ("MESSAGE_SEND", String::new()),
    };
    pending("s", 1000 + i, Some(&agent), kind, &extra)
}

#[test]
fn lazy_checkpoints_catch_up_and_restart_after_retention() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = StorageConfig {
        segment_bytes: 4096,
        retention_bytes: 0,
        retention_ms: 0,
        ..cfg()
    };
    let (mut st, _) = open(dir.path(), &c);
    for i in 0..400 {
        append(&mut st, vec![task_event(i)]);
    }
    // Nothing is folded until the first time travel, which folds only up to `at`.
    let live = |st: &LogStore| {
        st.sessions
            .get("s")
            .map_or(0, |s| s.tt.borrow().as_ref().map_or(0, |t| t.live_pos()))
    };
    assert_eq!(live(&st), 0);
    assert_eq!(state_json(&st, "s", 1100), reference_state(&st, "s", 1100));
    let partial = live(&st);
    assert!(partial > 100 && partial < 400, "{partial}");
    // Retention deletes past the fold: it restarts at the first retained event.
    st.retention_bytes = 6 * 4096;
    assert!(st.enforce_retention(0).events > 0);
    let base = st.sessions.get("s").map_or(0, |s| s.idx.base());
    assert!(base > partial, "{base} {partial}");
    for at in [900, 1000 + base as i64, 1250, 1399, 5000] {
        assert_eq!(
            state_json(&st, "s", at),
            reference_state(&st, "s", at),
            "at {at}"
        );
    }
    // Later appends are folded incrementally by the next call. (No more retention: a
    // snapshot that outlives deleted events keeps counting them, as documented.)
    st.retention_bytes = 0;
    for i in 400..500 {
        append(&mut st, vec![task_event(i)]);
    }
    for at in [1300, 1450, 1499] {
        assert_eq!(
            state_json(&st, "s", at),
            reference_state(&st, "s", at),
            "at {at}"
        );
    }
    assert_eq!(live(&st), st.sessions.get("s").map_or(0, |s| s.idx.end()));
}

#[test]
fn prepare_state_folds_in_slices_and_leaves_the_same_answer() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut st, _) = open(dir.path(), &cfg());
    for i in 0..500 {
        append(&mut st, vec![task_event(i)]);
    }
    let live = |st: &LogStore| {
        st.sessions
            .get("s")
            .map_or(0, |s| s.tt.borrow().as_ref().map_or(0, |t| t.live_pos()))
    };
    let mut steps = 0;
    while !st
        .prepare_state("s", 1400, 37)
        .unwrap_or_else(|e| panic!("{e}"))
    {
        steps += 1;
        assert!(steps < 100, "each call makes progress");
    }
    assert!(
        live(&st) < 500,
        "folds toward the instant asked for, not the whole session"
    );
    assert!(steps >= 10, "500 events in slices of 37: {steps}");
    assert_eq!(state_json(&st, "s", 1400), reference_state(&st, "s", 1400));
    // Already prepared: one call says so without work; an unknown session is left to state_at.
    assert!(st.prepare_state("s", 1400, 1).unwrap_or(false));
    assert!(st.prepare_state("nope", 1400, 1).unwrap_or(false));
}

/// Disk reserved ahead of the active segment never outlives it: a sealed segment and,
/// once the log is closed, the last one hold no more blocks than their bytes need, and
/// what was reserved is invisible to recovery.
#[test]
fn reserved_disk_is_given_back_at_seal_and_close() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = StorageConfig {
        segment_bytes: 64 * 1024,
        ..cfg()
    };
    let extra = format!(",\"pad\":\"{}\"", "x".repeat(900));
    // Blocks a file of `len` bytes may hold: its pages, plus room for extent blocks.
    let fits = |p: &Path| {
        let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{e}"));
        m.blocks() * 512 <= m.len().div_ceil(4096) * 4096 + 16 * 4096
    };
    {
        let (mut st, _) = open(dir.path(), &c);
        for i in 0..200 {
            append(&mut st, vec![pending("s", i, None, "X", &extra)]);
        }
        let files = segment_files(dir.path());
        assert!(files.len() > 2, "{files:?}");
        for sealed in files.iter().take(files.len() - 1) {
            assert!(fits(sealed), "{} keeps reserved blocks", sealed.display());
        }
    }
    for f in segment_files(dir.path()) {
        assert!(
            fits(&f),
            "{} keeps reserved blocks after close",
            f.display()
        );
    }
    let (st, rep) = open(dir.path(), &c);
    assert_eq!((rep.events, rep.truncated), (200, None));
    assert!(st.next_seq() > 200);
}

/// Polls the fsync thread until `done` holds (or 10 s pass); returns the errors seen.
fn poll_until(st: &mut LogStore, done: impl Fn(&LogStore) -> bool) -> Vec<String> {
    let mut errors = Vec::new();
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while !done(st) && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
        if let Err(e) = st.poll_sync() {
            errors.push(e.to_string());
        }
    }
    errors
}

#[test]
fn a_failed_write_is_reported_until_the_next_write_succeeds() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut st, _) = open(dir.path(), &cfg());
    append(&mut st, vec![pending("s", 1, None, "X", "")]);
    assert!(st.health().is_ok());
    st.faults.fail_next(FailOp::Write, 2);
    for _ in 0..2 {
        assert!(matches!(
            st.append(vec![pending("s", 2, None, "X", "")]),
            Err(StoreError::Io(_))
        ));
    }
    let h = st.health();
    let f = h.write.clone().unwrap_or_else(|| panic!("no write fault"));
    assert!(f.reason.starts_with("write failed: "), "{}", f.reason);
    assert!(f.reason.contains(".log: injected"), "{}", f.reason);
    assert_eq!(
        (f.count, f.until_restart, h.fsync.is_none()),
        (2, false, true)
    );
    // The next write that succeeds ends the fault; the counter keeps it.
    let next = append(&mut st, vec![pending("s", 3, None, "X", "")]);
    assert_eq!(
        next.first_seq(),
        Some(2),
        "nothing of the failed batches is visible"
    );
    let h = st.health();
    assert!(h.is_ok(), "{h:?}");
    assert_eq!((h.write_errors, h.errors()), (2, 2));
    drop(st);
    let (st, rep) = open(dir.path(), &cfg());
    assert_eq!((rep.events, rep.truncated), (2, None));
    assert!(st.health().is_ok() && st.health().errors() == 0);
}

#[test]
fn a_write_that_cannot_be_cut_back_stays_unhealthy_until_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut st, _) = open(dir.path(), &cfg());
    st.faults.fail_next(FailOp::Write, 1);
    st.faults.fail_next(FailOp::CutBack, 1);
    assert!(st.append(vec![pending("s", 1, None, "X", "")]).is_err());
    // Refused without touching the disk: no new error, the fault stays.
    assert!(st.append(vec![pending("s", 2, None, "X", "")]).is_err());
    let h = st.health();
    let f = h.write.clone().unwrap_or_else(|| panic!("no write fault"));
    assert!(f.until_restart, "{f:?}");
    assert!(f.reason.contains("refused until a restart"), "{}", f.reason);
    assert_eq!(h.write_errors, 1);
    drop(st);
    let (mut st, _) = open(dir.path(), &cfg());
    assert!(st.health().is_ok());
    append(&mut st, vec![pending("s", 3, None, "X", "")]);
}

#[test]
fn a_failed_fsync_is_reported_until_a_sync_covers_everything_written() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = StorageConfig {
        fsync: FsyncPolicy::Always,
        ..cfg()
    };
    let (mut st, _) = open(dir.path(), &c);
    let first = append(&mut st, vec![pending("s", 1, None, "X", "")]);
    let first = first.last_seq().unwrap_or(0);
    assert!(poll_until(&mut st, |s| s.durable_seq() >= first).is_empty());
    st.faults.fail_next(FailOp::Fsync, 1);
    let second = append(&mut st, vec![pending("s", 2, None, "X", "")]);
    let second = second.last_seq().unwrap_or(0);
    let errors = poll_until(&mut st, |s| s.health().fsync.is_some());
    assert_eq!(
        errors.len(),
        1,
        "poll_sync still returns the error: {errors:?}"
    );
    let h = st.health();
    let f = h.fsync.clone().unwrap_or_else(|| panic!("no fsync fault"));
    assert!(f.reason.starts_with("fsync failed: "), "{}", f.reason);
    assert!(f.reason.contains(".log: injected"), "{}", f.reason);
    assert!(
        st.durable_seq() < second,
        "a failed sync reports nothing durable"
    );
    assert_eq!((h.fsync_errors, h.write.is_none()), (1, true));
    // The next append's sync covers everything written, the failed round included.
    let third = append(&mut st, vec![pending("s", 3, None, "X", "")]);
    let third = third.last_seq().unwrap_or(0);
    assert!(poll_until(&mut st, |s| s.durable_seq() >= third).is_empty());
    let h = st.health();
    assert!(h.is_ok(), "{h:?}");
    assert_eq!(h.errors(), 1);
}

#[test]
fn a_failed_shutdown_sync_is_reported_by_sync_and_health() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut st, _) = open(dir.path(), &cfg());
    append(&mut st, vec![pending("s", 1, None, "X", "")]);
    st.faults.fail_next(FailOp::Fsync, 1);
    assert!(st.sync().is_err());
    assert!(st.health().fsync.is_some());
    // Nothing was left on the channel for the loop to report twice.
    assert!(st.poll_sync().is_ok());
    st.sync().unwrap_or_else(|e| panic!("{e}"));
    assert!(st.health().is_ok());
    assert_eq!(st.health().fsync_errors, 1);
}

/// Ids of every session in page order, following `next` with pages of `limit`.
fn all_pages(st: &LogStore, after: u64, limit: usize) -> (Vec<String>, usize) {
    let (mut ids, mut pages, mut after) = (Vec::new(), 0, after);
    loop {
        let page = st.sessions_page(after, limit, &|_| true);
        pages += 1;
        assert!(page.sessions.len() <= limit);
        ids.extend(page.sessions.iter().map(|s| s.id.to_string()));
        match page.next {
            Some(next) => {
                assert!(next > after, "a page moves the cursor forward");
                after = next;
            }
            None => return (ids, pages),
        }
    }
}

const PAD: &str = ",\"pad\":\"..........................................................\"";

#[test]
fn pages_list_sessions_in_creation_order_and_cursors_survive_retention() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = StorageConfig {
        segment_bytes: 4096,
        retention_bytes: 0,
        retention_ms: 0,
        ..cfg()
    };
    let (mut st, _) = open(dir.path(), &c);
    // "keep" lives throughout; s00..s59 have one event each, in creation order.
    append(&mut st, vec![pending("keep", 0, None, "X", PAD)]);
    for i in 0..60 {
        let id = format!("s{i:02}");
        append(&mut st, vec![pending(&id, i, Some("a"), "X", PAD)]);
        if i % 10 == 9 {
            append(&mut st, vec![pending("keep", i, None, "X", PAD)]);
        }
    }
    assert_eq!(st.session_count(), 61);
    let want: Vec<String> = std::iter::once("keep".to_string())
        .chain((0..60).map(|i| format!("s{i:02}")))
        .collect();
    let (ids, pages) = all_pages(&st, 0, 7);
    assert_eq!(ids, want);
    assert_eq!(pages, 9, "61 sessions in pages of 7");
    // A limit of 0 still moves on: a page looks at one session at least.
    assert_eq!(st.sessions_page(0, 0, &|_| true).sessions.len(), 1);
    // A caller that may read few sessions gets short (even empty) pages that still end.
    let tens = st.sessions_page(0, 5, &|id: &str| id.ends_with('0'));
    assert_eq!(tens.sessions.len(), 1, "only s00 among keep, s00..s03");
    let mut after = 0;
    let mut kept = Vec::new();
    loop {
        let p = st.sessions_page(after, 5, &|id: &str| id.ends_with('0'));
        kept.extend(p.sessions.iter().map(|s| s.id.to_string()));
        let Some(next) = p.next else { break };
        after = next;
    }
    assert_eq!(kept, ["s00", "s10", "s20", "s30", "s40", "s50"]);

    // A cursor taken before retention keeps its meaning after it.
    let first = st.sessions_page(0, 20, &|_| true);
    let cursor = first.next.unwrap_or_else(|| panic!("more pages"));
    let last_seen = first.sessions.last().map(|s| s.id.to_string());
    assert_eq!(last_seen.as_deref(), Some("s18"));
    st.retention_bytes = 4096;
    let rep = st.enforce_retention(0);
    assert!(rep.segments > 0);
    // Sessions whose every event went are forgotten: count, lookups and pages agree.
    let count = st.session_count();
    assert!(count < 61, "{count}");
    assert!(st.session("keep").is_some(), "keep has retained events");
    assert!(st.session("s00").is_none());
    let (ids, _) = all_pages(&st, 0, 7);
    assert_eq!(ids.len(), count);
    assert_eq!(ids.first().map(String::as_str), Some("keep"));
    let (rest, _) = all_pages(&st, cursor, 7);
    let expect: Vec<String> = ids
        .iter()
        .filter(|id| id.as_str() > "s18" && id.as_str() != "keep")
        .cloned()
        .collect();
    assert_eq!(rest, expect, "the cursor still means 'created after s18'");
    // What retention deleted of a forgotten session is still told to a resume…
    let d = st.deleted_after("s00", 0).map(|d| d.count);
    assert_eq!(d, Some(1));
    // …and when the session starts again it comes last in the listing, keeping it.
    let again = append(&mut st, vec![pending("s00", 99, None, "X", "")]);
    let (ids, _) = all_pages(&st, 0, 100);
    assert_eq!(ids.last().map(String::as_str), Some("s00"));
    assert_eq!(st.session_count(), count + 1);
    assert_eq!(st.deleted_after("s00", 0).map(|d| d.count), Some(1));
    assert_eq!(st.first_seq("s00"), again.first_seq());

    // After a restart the order is the log's, and pages still cover every session once.
    drop(st);
    let (st, rep) = open(dir.path(), &c);
    assert_eq!(rep.sessions, count + 1);
    let (reopened, _) = all_pages(&st, 0, 7);
    let mut sorted = reopened.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), reopened.len());
    assert_eq!(reopened.len(), st.session_count());
}

#[test]
fn max_sessions_refuses_the_whole_batch_and_uses_no_seq() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = StorageConfig {
        segment_bytes: 4096,
        retention_bytes: 0,
        retention_ms: 0,
        max_sessions: 3,
        ..cfg()
    };
    let (mut st, _) = open(dir.path(), &c);
    append(&mut st, vec![pending("a", 1, None, "X", PAD)]);
    append(&mut st, vec![pending("b", 2, None, "X", PAD)]);
    let next = st.next_seq();
    let bytes = st.total_bytes();
    // Two new sessions where one fits: refused whole, known sessions' events included.
    let refused = st.append(vec![
        pending("a", 3, None, "X", ""),
        pending("c", 3, None, "X", ""),
        pending("d", 3, None, "X", ""),
    ]);
    match refused {
        Err(e @ StoreError::SessionLimit { limit: 3 }) => {
            let msg = e.to_string();
            assert!(msg.contains("max_sessions (3)"), "{msg}");
        }
        other => panic!("expected the session limit, got {other:?}"),
    }
    assert_eq!(st.next_seq(), next, "no seq used");
    assert_eq!(st.total_bytes(), bytes, "nothing written");
    assert_eq!(st.session_count(), 2);
    assert!(st.session("c").is_none());
    assert_eq!(st.session("a").map(|s| s.event_count), Some(1));
    // One new session fits; known ones always do, even at the limit.
    let got = append(
        &mut st,
        vec![
            pending("c", 4, None, "X", ""),
            pending("a", 4, None, "X", ""),
        ],
    );
    assert_eq!(got.first_seq(), Some(next), "the refused batch left no gap");
    append(&mut st, vec![pending("b", 5, None, "X", "")]);
    assert!(st.append(vec![pending("d", 6, None, "X", "")]).is_err());
    assert_eq!(st.session_count(), 3);
    // Retention forgets "a"'s and "b"'s old events only if they are all gone: here "b"
    // and "a" still have events in the active segment, so fill segments with "c" first.
    for i in 0..200 {
        append(&mut st, vec![pending("c", 10 + i, None, "X", PAD)]);
    }
    st.retention_bytes = 4096;
    st.enforce_retention(0);
    assert!(st.session("a").is_none() && st.session("b").is_none());
    assert_eq!(st.session_count(), 1);
    append(&mut st, vec![pending("d", 300, None, "X", "")]);
    assert_eq!(st.session_count(), 2);
    // A restart with more sessions on disk than the limit still opens; new sessions wait.
    drop(st);
    let (mut st, _) = open(
        dir.path(),
        &StorageConfig {
            max_sessions: 1,
            ..c.clone()
        },
    );
    assert_eq!(st.session_count(), 2);
    assert!(st.append(vec![pending("e", 1, None, "X", "")]).is_err());
    append(&mut st, vec![pending("d", 301, None, "X", "")]);
}

#[test]
fn recent_cache_stays_within_its_budget_and_reads_stay_right() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut st, _) = open(dir.path(), &cfg());
    let budget = 8 << 10;
    st.cache = recent::RecentCache::new(budget);
    // One-event sessions take no cache at all.
    append(&mut st, vec![pending("once", 1, None, "X", "")]);
    assert!(st.sessions.get("once").is_some_and(|s| s.recent.is_none()));
    let mut seqs_of: HashMap<String, Vec<u64>> = HashMap::new();
    for round in 0..20 {
        let batch: Vec<Pending> = (0..20)
            .map(|s| pending(&format!("s{s}"), round, None, "X", PAD))
            .collect();
        for e in append(&mut st, batch).events {
            seqs_of
                .entry(e.session.to_string())
                .or_default()
                .push(e.seq);
        }
        assert!(
            st.cache.bytes() <= budget,
            "{} > {budget}",
            st.cache.bytes()
        );
    }
    let cached = st.sessions.values().filter(|s| s.recent.is_some()).count();
    assert!(cached > 0 && cached < 20, "{cached} of 20 sessions cached");
    for (id, want) in &seqs_of {
        let tail: Vec<u64> = want.iter().rev().take(5).rev().copied().collect();
        assert_eq!(seqs(&st.recent(id, 5)), tail, "{id}");
        let all = st.after_seq(id, 0, 100).unwrap_or_default();
        assert_eq!(&seqs(&all), want, "{id}");
    }
    assert_eq!(seqs(&st.recent("once", 5)), vec![1]);
    // The shared count is the sum of the sessions' caches, after evictions too.
    let sum: usize = st
        .sessions
        .values()
        .filter_map(|s| s.recent.as_ref())
        .map(|r| r.bytes())
        .sum();
    assert_eq!(sum, st.cache.bytes());
}

#[test]
fn a_session_is_small() {
    // docs/STORAGE.md (Memory per session) adds this up; tests/session_memory.rs measures it.
    assert!(
        std::mem::size_of::<Session>() <= 136,
        "{}",
        std::mem::size_of::<Session>()
    );
}

#[test]
fn forgetting_many_sessions_gives_their_memory_back() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = StorageConfig {
        segment_bytes: 64 << 10,
        retention_bytes: 0,
        retention_ms: 0,
        ..cfg()
    };
    let (mut st, _) = open(dir.path(), &c);
    for chunk in 0..10 {
        let batch: Vec<Pending> = (0..1000)
            .map(|i| pending(&format!("s{}", chunk * 1000 + i), i, None, "X", ""))
            .collect();
        append(&mut st, batch);
    }
    let full = st.sessions.capacity();
    assert!(full >= 10_000);
    st.retention_bytes = 1;
    st.enforce_retention(0);
    let left = st.session_count();
    assert!(left < 2000, "{left} sessions left in the active segment");
    assert!(st.sessions.capacity() < full, "the table shrank");
    assert_eq!(st.sessions().len(), left);
}

#[test]
fn append_at_places_batches_at_given_seqs_and_they_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cfg();
    {
        let (mut st, _) = open(tmp.path(), &c);
        let a = st
            .append_at(
                vec![
                    pending("s", 1, None, "T", ""),
                    pending("s", 2, None, "T", ""),
                ],
                100_000,
            )
            .unwrap();
        assert_eq!(
            (a.first_seq(), a.last_seq()),
            (Some(100_000), Some(100_001))
        );
        let b = st
            .append_at(vec![pending("s", 3, None, "T", "")], 300_000)
            .unwrap();
        assert_eq!(b.first_seq(), Some(300_000));
        assert_eq!(st.next_seq(), 300_001);
        let below = st.append_at(vec![pending("s", 4, None, "T", "")], 200_000);
        assert!(matches!(below, Err(StoreError::Invalid(_))), "{below:?}");
        assert_eq!(st.next_seq(), 300_001, "a refused append moves nothing");
        st.sync().unwrap();
    }
    let (st, rep) = open(tmp.path(), &c);
    // No reservation was written for given seqs: the log itself says where it stands.
    assert_eq!((rep.next_seq, st.next_seq()), (300_001, 300_001));
    let seqs: Vec<u64> = st
        .time_range("s", 0, i64::MAX, 0, 10)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, vec![100_000, 100_001, 300_000]);
}

/// Brute-force reference for the sparse index: every read of an interleaved, out-of-order
/// log is compared with a plain filter over the events still held, across retention that
/// cuts into index blocks, and after a reopen.
#[test]
fn sparse_index_reads_match_brute_force_across_retention_and_reopen() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = StorageConfig {
        segment_bytes: 24 << 10,
        retention_bytes: 0,
        retention_ms: 0,
        ..cfg()
    };
    let (mut st, _) = open(dir.path(), &c);
    let mut all: Vec<EventRef> = Vec::new();
    for b in 0..150i64 {
        // Batches of one session (contiguous entries) alternate with mixed ones, and a
        // few timestamps arrive far out of order.
        let batch: Vec<Pending> = (0..9)
            .map(|i| {
                let n = b * 9 + i;
                let s = if b % 3 == 0 {
                    "p"
                } else if n % 2 == 0 {
                    "q"
                } else {
                    "r"
                };
                let ts = if n % 53 == 0 {
                    n / 4
                } else {
                    n * 10 + (n * 7 % 11)
                };
                let pad = ".".repeat((n as usize * 31) % 90);
                pending(s, ts, Some("a"), "X", &format!(",\"pad\":\"{pad}\""))
            })
            .collect();
        all.extend(append(&mut st, batch).events);
    }
    let check = |st: &LogStore, all: &[EventRef]| {
        let first_held = segment_files(st.dir())
            .first()
            .and_then(|p| p.file_stem()?.to_str()?.parse::<u64>().ok())
            .unwrap_or(0);
        for s in ["p", "q", "r"] {
            let held: Vec<&EventRef> = all
                .iter()
                .filter(|e| &*e.session == s && e.seq >= first_held)
                .collect();
            let want = |f: &dyn Fn(&EventRef) -> bool| -> Vec<u64> {
                held.iter().filter(|e| f(e)).map(|e| e.seq).collect()
            };
            let sum = st.session(s).unwrap_or_else(|| panic!("session {s}"));
            assert_eq!(sum.event_count, held.len() as u64, "{s}");
            assert_eq!(
                sum.first_timestamp,
                held.first().map(|e| e.timestamp),
                "{s}"
            );
            assert_eq!(sum.last_seq, held.last().map(|e| e.seq), "{s}");
            assert_eq!(st.first_seq(s), held.first().map(|e| e.seq), "{s}");
            // `after` anywhere, not only where the last page ended.
            for after in (0..all.len() as u64 + 5).step_by(37).chain([first_held, 0]) {
                let got = st.after_seq(s, after, 20).unwrap_or_default();
                let exp: Vec<u64> = want(&|e| e.seq > after).into_iter().take(20).collect();
                assert_eq!(seqs(&got), exp, "{s} after {after}");
                for (g, e) in got.iter().zip(held.iter().filter(|e| e.seq > after)) {
                    assert_eq!(g.json, e.json);
                }
            }
            for (a, b) in [
                (0, 20_000),
                (1000, 4000),
                (3333, 3390),
                (-5, 200),
                (9000, 1),
            ] {
                let exp = want(&|e| e.timestamp >= a && e.timestamp <= b);
                assert_eq!(
                    st.count_time_range(s, a, b),
                    exp.len() as u64,
                    "{s} {a}..{b}"
                );
                for (off, lim) in [(0, 10_000), (0, 7), (5, 70), (63, 64), (200, 3)] {
                    let got = st.time_range(s, a, b, off, lim).unwrap_or_default();
                    let e: Vec<u64> = exp.iter().copied().skip(off).take(lim).collect();
                    assert_eq!(seqs(&got), e, "{s} {a}..{b} off {off} lim {lim}");
                }
                // Paging through in order (the store resumes where the last page ended).
                let mut paged = Vec::new();
                loop {
                    let page = st.time_range(s, a, b, paged.len(), 9).unwrap_or_default();
                    if page.is_empty() {
                        break;
                    }
                    paged.extend(seqs(&page));
                }
                assert_eq!(paged, exp, "{s} {a}..{b} paged");
            }
            for at in [-1, 100, 2500, 7777, 20_000] {
                let (_, traces) = st.state_at(s, at, 30).unwrap_or_else(|e| panic!("{e}"));
                let exp = want(&|e| e.timestamp <= at);
                let tail: Vec<u64> = exp
                    .iter()
                    .copied()
                    .skip(exp.len().saturating_sub(30))
                    .collect();
                assert_eq!(seqs(&traces), tail, "{s} traces at {at}");
            }
        }
    };
    check(&st, &all);
    // Retention, one segment at a time: the first block of a session is cut into.
    for keep in [8usize, 6, 4] {
        st.retention_bytes = (keep as u64) * (24 << 10);
        let rep = st.enforce_retention(0);
        assert!(rep.segments > 0, "keep {keep}");
        check(&st, &all);
    }
    drop(st);
    let (st, _) = open(dir.path(), &c);
    check(&st, &all);
}

/// The position the lazy fold of a session has reached.
fn fold_pos(st: &LogStore, id: &str) -> u64 {
    st.sessions
        .get(id)
        .map_or(0, |s| s.tt.borrow().as_ref().map_or(0, |t| t.live_pos()))
}

#[test]
fn saved_checkpoints_answer_the_first_time_travel_after_a_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = StorageConfig {
        segment_bytes: 16 << 10,
        retention_bytes: 0,
        retention_ms: 0,
        ..cfg()
    };
    let (mut st, _) = open(dir.path(), &c);
    for b in 0..60 {
        append(&mut st, (0..10).map(|i| task_event(b * 10 + i)).collect());
    }
    let ats = [999, 1000, 1123, 1300, 1455, 1599, 1600, 5000];
    let want: Vec<String> = ats
        .iter()
        .map(|&at| reference_state(&st, "s", at))
        .collect();
    assert_eq!(state_json(&st, "s", 1599), want[5]);
    drop(st); // saves the checkpoints
    assert!(dir.path().join(saved::FILE).exists());
    let (st, _) = open(dir.path(), &c);
    assert!(st.saved.get("s").is_some_and(|sv| sv.snaps.len() > 2));
    // The first answer starts from a saved snapshot: the fold does not walk the session
    // from its first event.
    assert_eq!(state_json(&st, "s", 1455), want[4]);
    assert!(fold_pos(&st, "s") > 400, "{}", fold_pos(&st, "s"));
    for (at, w) in ats.iter().zip(&want) {
        assert_eq!(&state_json(&st, "s", *at), w, "at {at}");
    }
    assert!(st.prepare_state("s", 1300, 200).unwrap_or(false));
    drop(st);

    // A damaged file is never trusted and never fatal: every state is flipped.
    let path = dir.path().join(saved::FILE);
    let mut bytes = std::fs::read(&path).unwrap_or_default();
    for x in bytes.iter_mut().skip(300).step_by(97) {
        *x ^= 0x21;
    }
    std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let (st, _) = open(dir.path(), &c);
    for (at, w) in ats.iter().zip(&want) {
        assert_eq!(&state_json(&st, "s", *at), w, "damaged file, at {at}");
    }
    drop(st); // the lazy fold ran: a good file is written again
    let (st, _) = open(dir.path(), &c);
    assert!(st.saved.get("s").is_some_and(|sv| sv.state(0).is_some()));
    drop(st);

    // A snapshot past the end of the log (its events lost with a torn tail) is skipped.
    let seg = segment_files(dir.path()).pop().unwrap_or_default();
    let len = std::fs::metadata(&seg).map_or(0, |m| m.len());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap_or_else(|e| panic!("{e}"));
    f.set_len(len - 40).unwrap_or_else(|e| panic!("{e}"));
    drop(f);
    let (mut st, rep) = open(dir.path(), &c);
    assert!(rep.truncated.is_some());
    for at in ats {
        assert_eq!(
            state_json(&st, "s", at),
            reference_state(&st, "s", at),
            "torn, at {at}"
        );
    }
    // And garbage in place of the file is ignored.
    drop(st);
    std::fs::write(&path, b"garbage").unwrap_or_else(|e| panic!("{e}"));
    let (st2, _) = open(dir.path(), &c);
    st = st2;
    assert!(st.saved.is_empty());
    assert_eq!(state_json(&st, "s", 1300), reference_state(&st, "s", 1300));
}
