//! Realistic ~250-byte agent trace events, written straight into a publish message.
//!
//! Events vary in type, agent, ids and tool like a swarm's would, so neither server gets
//! an unrealistically compressible or cache-friendly stream. Each carries the loadgen's
//! send time as `data.lg_ns` (see `scan`), the only field the measurement relies on.

use std::io::Write;

const TYPES: [&str; 8] = [
    "TASK_START",
    "TASK_COMPLETE",
    "MESSAGE_SEND",
    "MESSAGE_RECEIVE",
    "STATE_CHANGE",
    "PERFORMANCE_METRIC",
    "COORDINATION_EVENT",
    "TASK_FAIL",
];
const TOOLS: [&str; 6] = [
    "web.search",
    "code.exec",
    "fs.read",
    "llm.complete",
    "db.query",
    "http.fetch",
];
const REGIONS: [&str; 3] = ["eu-west-1", "us-east-2", "ap-south-1"];

/// Generates events; one per publisher connection keeps ids distinct.
pub struct EventGen {
    state: u64,
    counter: u64,
    epoch_ms: u64,
}

impl EventGen {
    pub fn new(seed: u64, epoch_ms: u64) -> Self {
        EventGen {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            counter: 0,
            epoch_ms,
        }
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*: plenty for ids that only need to look random.
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A 4-byte mask for the next client frame.
    pub fn mask(&mut self) -> [u8; 4] {
        (self.next_rand() as u32).to_ne_bytes()
    }

    /// Writes `{"type":"publish","events":[…k events…]}` for `session` into `out`.
    pub fn write_publish(&mut self, session: &str, k: usize, now_ns: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"type\":\"publish\",\"events\":[");
        for i in 0..k {
            if i > 0 {
                out.push(b',');
            }
            self.write_event(session, now_ns, out);
        }
        out.extend_from_slice(b"]}");
    }

    fn write_event(&mut self, session: &str, now_ns: u64, out: &mut Vec<u8>) {
        self.counter += 1;
        let r = self.next_rand();
        let r2 = self.next_rand();
        let ty = TYPES[(r % TYPES.len() as u64) as usize];
        let tool = TOOLS[((r >> 8) % TOOLS.len() as u64) as usize];
        let region = REGIONS[((r >> 16) % REGIONS.len() as u64) as usize];
        let agent = (r >> 24) % 64;
        let ts = self.epoch_ms + now_ns / 1_000_000;
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "{{\"type\":\"{ty}\",\"sessionId\":\"{session}\",\"agentId\":\"agent-{agent}\",\
             \"traceId\":\"{r:016x}{r2:016x}\",\"spanId\":\"{:016x}\",\"timestamp\":{ts},\
             \"data\":{{\"taskId\":\"task-{}\",\"tool\":\"{tool}\",\"lg_ns\":{now_ns}}},\
             \"metadata\":{{\"host\":\"worker-{:02}\",\"region\":\"{region}\"}}}}",
            r2.rotate_left(17),
            self.counter,
            (r >> 32) % 32,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan;

    #[test]
    fn publish_is_valid_json_of_realistic_size() {
        let mut g = EventGen::new(7, 1_732_550_000_000);
        let mut out = Vec::new();
        g.write_publish("s-3", 5, 123_456_789, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(v["type"], "publish");
        let evs = v["events"].as_array().expect("events array");
        assert_eq!(evs.len(), 5);
        for e in evs {
            assert_eq!(e["sessionId"], "s-3");
            assert_eq!(e["data"]["lg_ns"], 123_456_789);
            let len = serde_json::to_vec(e).map(|b| b.len()).unwrap_or(0);
            assert!((230..=290).contains(&len), "event is {len} bytes");
        }
    }

    #[test]
    fn scanner_reads_what_generator_writes() {
        let mut g = EventGen::new(1, 0);
        let mut ev = Vec::new();
        g.write_publish("s-0", 2, 42, &mut ev);
        // Make it look like a delivered batch: seq spliced in front of each event.
        let text = String::from_utf8(ev)
            .expect("utf8")
            .replace("[{\"type\"", "[{\"seq\":1,\"type\"")
            .replace(",{\"type\"", ",{\"seq\":2,\"type\"");
        let mut lgs = Vec::new();
        let n = scan::scan_batch(text.as_bytes(), |s| lgs.push(s.lg_ns));
        assert_eq!(n, 2);
        assert_eq!(lgs, vec![Some(42), Some(42)]);
    }
}
