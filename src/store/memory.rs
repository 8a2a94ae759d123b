//! A bounded in-memory ring per session behind [`super::Store`] (all three of its traits).
//!
//! Used by tests and by `storage.persist = false`: the last `memory_events_per_session`
//! events of each session, with the same seq/time index and time-travel checkpoints as
//! the durable log, so both stores answer every read the same way. Nothing survives a
//! restart, seqs included. Events pushed out of a ring count as retention for
//! [`super::SessionReads::first_seq`]. A ring never empties, so nothing here forgets a
//! session: once `max_sessions` are held, batches that would start another are refused
//! until a restart.

use super::index::{Entry, SeqTimeIndex};
use super::sessions::{admit, Agents, SessionOrder};
use super::{
    delivered, Appended, Deleted, DeletedRuns, EventLog, Pending, SessionPage, SessionReads,
    SessionSummary, StoreError, TimeTravel,
};
use crate::config::StorageConfig;
use crate::event::{Event, EventRef};
use crate::timetravel::{Checkpoints, EventFacts, SessionState};
use std::sync::Arc;

impl Entry for EventRef {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn ts(&self) -> i64 {
        self.timestamp
    }
}

/// One session; the id is the map's key (its creation seq lives in the order list, as a
/// ring never forgets a session). Boxed in the map, like the log's.
struct Session {
    idx: SeqTimeIndex<EventRef>,
    tt: Checkpoints,
    agents: Agents,
    /// Evicted from the ring: reported to `sinceSeq` resumes as retention.
    deleted: DeletedRuns,
}

impl Session {
    fn summary(&self, id: &Arc<str>) -> SessionSummary {
        SessionSummary {
            id: id.clone(),
            event_count: self.idx.len() as u64,
            agent_count: self.agents.len() as u64,
            first_timestamp: self.idx.front().map(|e| e.timestamp),
            last_timestamp: self.idx.max_ts(),
            last_seq: self.idx.back().map(|e| e.seq),
        }
    }
}

/// The in-memory store.
pub struct MemoryStore {
    next_seq: u64,
    per_session: usize,
    checkpoint_every: u64,
    max_sessions: usize,
    sessions: crate::hash::Map<Arc<str>, Box<Session>>,
    order: SessionOrder,
}

impl MemoryStore {
    pub fn new(config: &StorageConfig) -> Self {
        MemoryStore {
            next_seq: 1,
            per_session: config.memory_events_per_session.max(1),
            checkpoint_every: config.checkpoint_every,
            max_sessions: config.max_sessions.max(1),
            sessions: crate::hash::Map::default(),
            order: SessionOrder::default(),
        }
    }
}

impl EventLog for MemoryStore {
    fn append(&mut self, batch: Vec<Pending>) -> Result<Appended, StoreError> {
        // Past the session limit nothing lands; otherwise nothing can fail, so the whole
        // batch does.
        admit(&batch, self.sessions.len(), self.max_sessions, |id| {
            self.sessions.contains_key(id)
        })?;
        let mut events = Vec::with_capacity(batch.len());
        for p in batch {
            let seq = self.next_seq;
            self.next_seq += 1;
            let json = delivered(seq, p.json_tail, p.headroom);
            let ev: EventRef = Arc::new(Event {
                seq,
                timestamp: p.timestamp,
                session: p.session,
                agent: p.agent,
                kind: p.kind,
                json,
            });
            let every = self.checkpoint_every;
            let order = &mut self.order;
            let s = self.sessions.entry(ev.session.clone()).or_insert_with(|| {
                order.push(seq, ev.session.clone());
                Box::new(Session {
                    idx: SeqTimeIndex::default(),
                    tt: Checkpoints::new(every),
                    agents: Agents::default(),
                    deleted: DeletedRuns::default(),
                })
            });
            if let Some(a) = &ev.agent {
                s.agents.insert(a);
            }
            let pos = s.idx.end();
            s.tt.push(pos, &EventFacts::of(&ev));
            s.idx.push(ev.clone());
            while s.idx.len() > self.per_session {
                if let Some(gone) = s.idx.pop_front() {
                    s.deleted.record(gone.seq, gone.seq, 1);
                }
            }
            s.tt.trim(s.idx.base());
            events.push(ev);
        }
        Ok(Appended { events })
    }

    fn next_seq(&self) -> u64 {
        self.next_seq
    }
    fn append_at(&mut self, batch: Vec<Pending>, first: u64) -> Result<Appended, StoreError> {
        if first < self.next_seq {
            return Err(StoreError::Invalid(format!(
                "seq {first} is below the next free seq {}",
                self.next_seq
            )));
        }
        let before = self.next_seq;
        self.next_seq = first;
        let r = self.append(batch);
        if r.is_err() {
            self.next_seq = before;
        }
        r
    }
    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl SessionReads for MemoryStore {
    fn session(&self, id: &str) -> Option<SessionSummary> {
        self.sessions.get_key_value(id).map(|(k, s)| s.summary(k))
    }

    fn session_count(&self) -> usize {
        self.sessions.len()
    }

    fn sessions_page(&self, after: u64, limit: usize, keep: &dyn Fn(&str) -> bool) -> SessionPage {
        self.order.summaries(after, limit, keep, |id| {
            self.sessions.get(id).map(|s| s.summary(id))
        })
    }

    fn recent(&self, session: &str, n: usize) -> Vec<EventRef> {
        let Some(s) = self.sessions.get(session) else {
            return Vec::new();
        };
        let from = s.idx.end().saturating_sub(n as u64).max(s.idx.base());
        (from..s.idx.end())
            .filter_map(|p| s.idx.at(p).cloned())
            .collect()
    }

    fn after_seq(
        &self,
        session: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventRef>, StoreError> {
        let Some(s) = self.sessions.get(session) else {
            return Ok(Vec::new());
        };
        let from = s.idx.pos_after_seq(after);
        let to = from.saturating_add(limit as u64).min(s.idx.end());
        Ok((from..to).filter_map(|p| s.idx.at(p).cloned()).collect())
    }

    fn time_range(
        &self,
        session: &str,
        start: i64,
        end: i64,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<EventRef>, StoreError> {
        let Some(s) = self.sessions.get(session) else {
            return Ok(Vec::new());
        };
        Ok(s.idx
            .time_range(start, end, offset, limit)
            .into_iter()
            .filter_map(|p| s.idx.at(p).cloned())
            .collect())
    }

    fn count_time_range(&self, session: &str, start: i64, end: i64) -> u64 {
        self.sessions
            .get(session)
            .map_or(0, |s| s.idx.count_time_range(start, end))
    }

    fn first_seq(&self, session: &str) -> Option<u64> {
        self.sessions
            .get(session)
            .and_then(|s| s.idx.front())
            .map(|e| e.seq)
    }

    fn deleted_after(&self, session: &str, after: u64) -> Option<Deleted> {
        self.sessions.get(session)?.deleted.after(after)
    }
}

impl TimeTravel for MemoryStore {
    fn state_at(
        &self,
        session: &str,
        at: i64,
        traces: usize,
    ) -> Result<(SessionState, Vec<EventRef>), StoreError> {
        let s = self
            .sessions
            .get(session)
            .ok_or_else(|| StoreError::NotFound(format!("session {session}")))?;
        let (mut state, from) = s.tt.start_for(at, s.idx.base());
        let upper = s.idx.upper_for_ts(at);
        let mut scratch = Vec::new();
        for p in from..upper {
            if let Some(e) = s.idx.at(p).filter(|e| e.timestamp <= at) {
                state.apply_facts(&EventFacts::of(e), &mut scratch);
            }
        }
        let recent = s
            .idx
            .last_le(at, upper, traces)
            .into_iter()
            .filter_map(|p| s.idx.at(p).cloned())
            .collect();
        Ok((state, recent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn pending(
        session: &str,
        ts: i64,
        agent: Option<&str>,
        kind: &str,
        extra: &str,
    ) -> Pending {
        let mut tail =
            format!("\"type\":\"{kind}\",\"sessionId\":\"{session}\",\"timestamp\":{ts}");
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

    #[test]
    fn ring_bounds_and_reads() {
        let cfg = StorageConfig {
            memory_events_per_session: 10,
            checkpoint_every: 4,
            ..StorageConfig::default()
        };
        let mut st = MemoryStore::new(&cfg);
        let batch: Vec<_> = (0..25)
            .map(|i| pending(if i % 2 == 0 { "a" } else { "b" }, 1000 + i, None, "X", ""))
            .collect();
        let app = st.append(batch).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((app.first_seq(), app.last_seq()), (Some(1), Some(25)));
        assert_eq!(
            &app.events[0].json[..],
            b"{\"seq\":1,\"type\":\"X\",\"sessionId\":\"a\",\"timestamp\":1000}"
        );
        assert_eq!(st.next_seq(), 26);
        // Session a got 13 events, keeps the last 10: seqs 7,9,…,25.
        assert_eq!(st.first_seq("a"), Some(7));
        assert_eq!(st.session("a").map(|s| s.event_count), Some(10));
        let r: Vec<u64> = st.recent("a", 3).iter().map(|e| e.seq).collect();
        assert_eq!(r, vec![21, 23, 25]);
        let p1: Vec<u64> = st
            .after_seq("a", 0, 4)
            .unwrap_or_default()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(p1, vec![7, 9, 11, 13]);
        let p2: Vec<u64> = st
            .after_seq("a", 13, 4)
            .unwrap_or_default()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(p2, vec![15, 17, 19, 21]);
        assert_eq!(st.count_time_range("a", 1010, 1020), 6);
        let t: Vec<u64> = st
            .time_range("a", 1010, 1020, 2, 3)
            .unwrap_or_default()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(t, vec![15, 17, 19]);
        assert!(st.session("nope").is_none());
        assert!(st.state_at("nope", 0, 10).is_err());
        let (state, traces) = st.state_at("a", 1014, 2).unwrap_or_else(|e| panic!("{e}"));
        // The ring dropped a's first 3 events; time travel sees the 10 retained + checkpoints.
        assert_eq!(state.last_seq, Some(15));
        assert_eq!(
            traces.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![13, 15]
        );
    }

    /// The server holds a `Box<dyn Store>` and lends `&dyn Store`: every method of the
    /// three traits must stay callable through both (the server imports only `Store`).
    #[test]
    fn every_method_is_callable_through_dyn_store() {
        use crate::store::Store;
        let mut st: Box<dyn Store> = Box::new(MemoryStore::new(&StorageConfig::default()));
        let app = st
            .append(vec![pending("s", 5, Some("a"), "X", "")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(app.last_seq(), Some(1));
        assert_eq!(st.next_seq(), 2);
        assert!(st.sync().is_ok() && st.poll_sync().is_ok());
        assert_eq!(st.durable_seq(), 1);
        assert_eq!(st.enforce_retention(0), Default::default());
        let r: &dyn Store = &*st;
        assert_eq!(r.session("s").map(|s| s.event_count), Some(1));
        assert_eq!(r.sessions().len(), 1);
        assert_eq!(r.recent("s", 5).len(), 1);
        assert_eq!(r.after_seq("s", 0, 5).map(|v| v.len()).ok(), Some(1));
        assert_eq!(r.time_range("s", 0, 9, 0, 5).map(|v| v.len()).ok(), Some(1));
        assert_eq!(r.count_time_range("s", 0, 9), 1);
        assert_eq!(r.first_seq("s"), Some(1));
        assert_eq!(r.deleted_after("s", 0), None);
        assert!(r.prepare_state("s", 9, 10).unwrap_or(false));
        assert_eq!(
            r.state_at("s", 9, 5).map(|(s, _)| s.last_seq).ok(),
            Some(Some(1))
        );
    }

    #[test]
    fn sessions_are_counted_paged_and_bounded() {
        let cfg = StorageConfig {
            max_sessions: 3,
            ..StorageConfig::default()
        };
        let mut st = MemoryStore::new(&cfg);
        let ok = |st: &mut MemoryStore, b| st.append(b).unwrap_or_else(|e| panic!("{e}"));
        ok(&mut st, vec![pending("b", 1, Some("x"), "X", "")]);
        ok(
            &mut st,
            vec![
                pending("a", 2, Some("x"), "X", ""),
                pending("b", 3, Some("y"), "X", ""),
            ],
        );
        assert_eq!(st.session_count(), 2);
        assert_eq!(st.session("b").map(|s| s.agent_count), Some(2));
        // Refused whole, no seq used: "c" fits, "d" does not.
        let next = st.next_seq();
        let refused = st.append(vec![
            pending("a", 4, None, "X", ""),
            pending("c", 4, None, "X", ""),
            pending("d", 4, None, "X", ""),
        ]);
        assert!(matches!(
            refused,
            Err(StoreError::SessionLimit { limit: 3 })
        ));
        assert_eq!(st.next_seq(), next);
        assert_eq!(st.session("a").map(|s| s.event_count), Some(1));
        ok(&mut st, vec![pending("c", 5, None, "X", "")]);
        // Pages: creation order (b first), cursors are creation seqs.
        let p1 = st.sessions_page(0, 2, &|_| true);
        let ids: Vec<&str> = p1.sessions.iter().map(|s| &*s.id).collect();
        assert_eq!((ids, p1.next), (vec!["b", "a"], Some(2)));
        let p2 = st.sessions_page(2, 2, &|_| true);
        let ids: Vec<&str> = p2.sessions.iter().map(|s| &*s.id).collect();
        assert_eq!((ids, p2.next), (vec!["c"], None));
        let hidden = st.sessions_page(0, 2, &|id: &str| id == "c");
        assert!(hidden.sessions.is_empty() && hidden.next == Some(2));
        assert_eq!(st.sessions().len(), 3);
    }

    #[test]
    fn empty_tail_gets_no_dangling_comma() {
        assert_eq!(super::super::delivered_json(3, b"}"), b"{\"seq\":3}");
        assert_eq!(
            super::super::delivered_json(3, b"\"a\":1}"),
            b"{\"seq\":3,\"a\":1}"
        );
    }
}
