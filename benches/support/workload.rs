//! The append workload shared by `benches/pipeline.rs` and perf/loadgen's `append-soak`,
//! so the criterion figure and the sustained one measure the same bytes.

/// A JSON-array body of `batch` ~250-byte events over 4 sessions, 7 agents, 17 tasks.
pub fn body(batch: usize) -> Vec<u8> {
    let events: Vec<String> = (0..batch)
        .map(|i| {
            format!(
                r#"{{"type":"TASK_START","sessionId":"swarm-{s}","agentId":"agent-{a}","traceId":"trace-{i:08}","spanId":"span-{i:08}","timestamp":1732550000{i:03},"data":{{"taskId":"task-{t}","tool":"web.search","attempt":1}},"metadata":{{"model":"planner-v2","region":"eu-west"}}}}"#,
                s = i % 4,
                a = i % 7,
                t = i % 17
            )
        })
        .collect();
    format!("[{}]", events.join(",")).into_bytes()
}
