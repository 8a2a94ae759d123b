//! What both stores keep about their sessions besides the per-session index: the compact
//! agent set, the creation order that pages `GET /v1/sessions`, the `max_sessions`
//! admission check, and the short memory of sessions retention forgot.
//!
//! A server may hold a million sessions, most with a handful of events (SPEC §8: "per-
//! session memory is small and bounded"), so everything here is sized for the session with
//! one event: nothing is allocated until a second agent, a listing, or a deletion needs
//! it, and no read walks every session.

use super::{
    Deleted, DeletedRuns, Pending, SessionPage, SessionSummary, StoreError, MAX_SESSIONS_PAGE,
};
use std::collections::VecDeque;
use std::sync::Arc;

/// The distinct agents of a session: the first inline, the rest in a set allocated when a
/// second one appears. Most sessions have one agent or none; a `HashSet` for each of
/// them cost a table allocation apiece.
#[derive(Debug, Default)]
pub(crate) struct Agents {
    first: Option<Arc<str>>,
    // Boxed on purpose: 8 bytes in every session instead of a 48-byte empty set.
    #[allow(clippy::box_collection)]
    more: Option<Box<crate::hash::Set<Arc<str>>>>,
}

impl Agents {
    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.as_ref().map_or(0, |m| m.len())
    }

    /// The held `Arc` equal to `name`, for sharing it with events read back from disk.
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<str>> {
        match &self.first {
            Some(f) if **f == *name => Some(f),
            _ => self.more.as_ref().and_then(|m| m.get(name)),
        }
    }

    /// Adds `name` unless it is known; the `Arc` is cloned only when it is new.
    pub(crate) fn insert(&mut self, name: &Arc<str>) {
        self.insert_with(name, || name.clone());
    }

    /// Adds `name`, making its `Arc` only when it is new (recovery reads `&str`s).
    pub(crate) fn insert_str(&mut self, name: &str) {
        self.insert_with(name, || Arc::from(name));
    }

    fn insert_with(&mut self, name: &str, make: impl FnOnce() -> Arc<str>) {
        match &self.first {
            None => self.first = Some(make()),
            Some(f) if **f == *name => {}
            Some(_) => {
                let more = self.more.get_or_insert_with(Box::default);
                if !more.contains(name) {
                    more.insert(make());
                }
            }
        }
    }
}

/// Sessions in the order the store created them, each under the seq of the first event
/// it held then (its *creation seq*), which is the `/v1/sessions` cursor.
///
/// Seqs are unique and appends come in seq order, so the list is sorted by construction
/// and a page is a binary search plus the page itself: `O(log n + page)`, never a walk of
/// every session. A removed session leaves no hole (retention compacts the list in the
/// sweep that removed it, a sweep that already visits every session), and removal never
/// renumbers the others, so a cursor stays valid across retention: it means "sessions
/// created after that seq". After a restart each session is numbered by the first event
/// recovery found for it, which is the same seq or — when retention had deleted its first
/// events — a later one, so an old cursor skips nothing (it may repeat a session).
#[derive(Debug, Default)]
pub(crate) struct SessionOrder {
    list: Vec<(u64, Arc<str>)>,
}

impl SessionOrder {
    /// Records a new session; `created` exceeds every creation seq recorded before.
    pub(crate) fn push(&mut self, created: u64, id: Arc<str>) {
        debug_assert!(self.list.last().is_none_or(|(c, _)| *c < created));
        self.list.push((created, id));
    }

    /// Drops the sessions created at `removed` (ascending): one pass over the list.
    pub(crate) fn remove(&mut self, removed: &[u64]) {
        if removed.is_empty() {
            return;
        }
        debug_assert!(removed.windows(2).all(|w| w[0] < w[1]));
        let mut gone = removed.iter().peekable();
        self.list.retain(|(created, _)| {
            while gone.next_if(|g| **g < *created).is_some() {}
            gone.next_if_eq(&created).is_none()
        });
    }

    /// Gives back the room of sessions removed (after many were).
    pub(crate) fn shrink(&mut self) {
        self.list.shrink_to_fit();
    }

    /// Up to `limit` sessions created after `after`, oldest first, and whether any
    /// follow them.
    pub(crate) fn page(&self, after: u64, limit: usize) -> (&[(u64, Arc<str>)], bool) {
        let from = self.list.partition_point(|(c, _)| *c <= after);
        let rest = self.list.get(from..).unwrap_or_default();
        let n = rest.len().min(limit);
        (rest.get(..n).unwrap_or_default(), rest.len() > n)
    }

    /// One page of `GET /v1/sessions` for either store: `limit` sessions looked at after
    /// the cursor, those `keep` admits summarized by `summary`, and the cursor that
    /// follows them (so a page progresses even when `keep` admits none).
    pub(crate) fn summaries(
        &self,
        after: u64,
        limit: usize,
        keep: &dyn Fn(&str) -> bool,
        summary: impl Fn(&Arc<str>) -> Option<SessionSummary>,
    ) -> SessionPage {
        let (page, more) = self.page(after, limit.clamp(1, MAX_SESSIONS_PAGE));
        let sessions = page
            .iter()
            .filter(|(_, id)| keep(id))
            .filter_map(|(_, id)| summary(id))
            .collect();
        let next = more.then(|| page.last().map(|(c, _)| *c)).flatten();
        SessionPage { sessions, next }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }
}

/// Refuses a batch that would take the store past `max` sessions, before anything of it
/// is stored or sequenced. `known` says whether a session exists already.
///
/// A batch is cut into runs of one session (pointer-equal `Arc`s first, as ingest interns
/// them); when even one new session per run stays within the limit — nearly always —
/// nothing is looked up. Otherwise each run's session is looked up once.
pub(crate) fn admit(
    batch: &[Pending],
    held: usize,
    max: usize,
    known: impl Fn(&str) -> bool,
) -> Result<(), StoreError> {
    let same = |a: &Arc<str>, b: &Arc<str>| Arc::ptr_eq(a, b) || a == b;
    // The first event of each run of one session.
    let runs = || {
        let mut prev: Option<&Arc<str>> = None;
        batch.iter().filter_map(move |p| {
            let new_run = !prev.is_some_and(|l| same(l, &p.session));
            prev = Some(&p.session);
            new_run.then_some(&p.session)
        })
    };
    if held.saturating_add(runs().count()) <= max {
        return Ok(());
    }
    let mut new: crate::hash::Set<&str> = crate::hash::Set::default();
    for id in runs() {
        if !known(id) {
            new.insert(&**id);
        }
    }
    if !new.is_empty() && held.saturating_add(new.len()) > max {
        return Err(StoreError::SessionLimit { limit: max });
    }
    Ok(())
}

/// Sessions remembered after retention forgot them, for `sinceSeq` resumes.
const FORGOTTEN: usize = 4096;

/// What retention deleted of the last [`FORGOTTEN`] sessions it forgot, one merged run
/// each, so a client resuming a session that aged out entirely still hears
/// `events_dropped` instead of silence. Bounded: the oldest entry goes first.
#[derive(Debug, Default)]
pub(crate) struct Forgotten {
    runs: crate::hash::Map<Arc<str>, (u64, u64, u64, u64)>,
    /// Ids in the order they were forgotten, with the stamp of that entry (an id forgotten
    /// twice has a stale entry here that must not remove the newer one).
    order: VecDeque<(Arc<str>, u64)>,
    stamp: u64,
}

impl Forgotten {
    /// Remembers what retention deleted of a session it is forgetting.
    pub(crate) fn remember(&mut self, id: Arc<str>, deleted: &DeletedRuns) {
        let Some((first, last, count)) = deleted.total() else {
            return;
        };
        self.stamp += 1;
        self.runs
            .insert(id.clone(), (first, last, count, self.stamp));
        self.order.push_back((id, self.stamp));
        while self.order.len() > FORGOTTEN {
            if let Some((old, stamp)) = self.order.pop_front() {
                if self.runs.get(&old).is_some_and(|r| r.3 == stamp) {
                    self.runs.remove(&old);
                }
            }
        }
    }

    /// The run of a forgotten session, handed back when the session starts again: its
    /// new life inherits what was deleted of its old one.
    pub(crate) fn take(&mut self, id: &str) -> Option<DeletedRuns> {
        if self.runs.is_empty() {
            return None;
        }
        let (first, last, count, _) = self.runs.remove(id)?;
        let mut d = DeletedRuns::default();
        d.record(first, last, count);
        Some(d)
    }

    /// What was deleted of a forgotten session after `since`.
    pub(crate) fn after(&self, id: &str, since: u64) -> Option<Deleted> {
        let &(first, last, count, _) = self.runs.get(id)?;
        let mut d = DeletedRuns::default();
        d.record(first, last, count);
        d.after(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(session: &Arc<str>) -> Pending {
        Pending {
            timestamp: 0,
            session: session.clone(),
            agent: None,
            kind: Arc::from("X"),
            json_tail: b"}".to_vec(),
            headroom: 0,
        }
    }

    #[test]
    fn agents_count_distinct_names_and_share_the_held_arc() {
        let mut a = Agents::default();
        assert_eq!(a.len(), 0);
        let x: Arc<str> = Arc::from("x");
        a.insert(&x);
        a.insert(&Arc::from("x"));
        assert_eq!(a.len(), 1);
        assert!(a.more.is_none(), "one agent allocates no set");
        a.insert_str("y");
        a.insert_str("y");
        a.insert(&Arc::from("z"));
        assert_eq!(a.len(), 3);
        assert!(a.get("x").is_some_and(|h| Arc::ptr_eq(h, &x)));
        assert!(a.get("y").is_some() && a.get("w").is_none());
    }

    #[test]
    fn order_pages_by_creation_seq_and_survives_removal() {
        let mut o = SessionOrder::default();
        for (c, id) in [(3, "a"), (5, "b"), (9, "c"), (12, "d"), (20, "e")] {
            o.push(c, Arc::from(id));
        }
        let ids = |p: &[(u64, Arc<str>)]| p.iter().map(|(_, i)| i.to_string()).collect::<Vec<_>>();
        let (p, more) = o.page(0, 2);
        assert_eq!((ids(p), more), (vec!["a".into(), "b".into()], true));
        // The cursor is the last creation seq seen; removing that very session (and
        // others) does not move what follows it.
        o.remove(&[5, 12]);
        let (p, more) = o.page(5, 2);
        assert_eq!((ids(p), more), (vec!["c".into(), "e".into()], false));
        let (p, more) = o.page(20, 2);
        assert!(p.is_empty() && !more);
        o.remove(&[1, 3, 4, 99]);
        assert_eq!(o.len(), 2);
        assert_eq!(ids(o.page(0, 10).0), vec!["c".to_string(), "e".to_string()]);
    }

    #[test]
    fn admit_counts_new_sessions_once_and_refuses_past_the_limit() {
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) =
            (Arc::from("a"), Arc::from("b"), Arc::from("c"));
        let known = |id: &str| id == "a";
        // a, b, a, b: one known and one new session, though four runs.
        let batch: Vec<Pending> = [&a, &b, &a, &b].into_iter().map(pending).collect();
        assert!(admit(&batch, 1, 2, known).is_ok());
        assert!(admit(&batch, 2, 2, known).is_err());
        // Only known sessions: admitted even at (or past) the limit.
        assert!(admit(&[pending(&a)], 5, 2, known).is_ok());
        let two_new: Vec<Pending> = [&b, &c].into_iter().map(pending).collect();
        match admit(&two_new, 1, 2, known) {
            Err(e @ StoreError::SessionLimit { limit: 2 }) => {
                let msg = e.to_string();
                assert!(msg.contains("max_sessions") && msg.contains('2'), "{msg}");
            }
            other => panic!("expected the session limit, got {other:?}"),
        }
    }

    #[test]
    fn forgotten_sessions_are_remembered_boundedly() {
        let mut f = Forgotten::default();
        let mut runs = DeletedRuns::default();
        runs.record(1, 10, 4);
        runs.record(20, 30, 2);
        f.remember(Arc::from("s"), &runs);
        let d = f.after("s", 0).map(|d| (d.count, d.from_seq, d.to_seq));
        assert_eq!(d, Some((6, 1, 30)));
        assert_eq!(f.after("other", 0), None);
        for i in 0..FORGOTTEN {
            f.remember(Arc::from(format!("x{i}")), &runs);
        }
        assert_eq!(f.after("s", 0), None, "the oldest entry went first");
        assert!(f.runs.len() <= FORGOTTEN && f.order.len() <= FORGOTTEN);
        let back = f.take("x5").and_then(|d| d.after(0));
        assert_eq!(back.map(|d| d.count), Some(6));
        assert_eq!(f.after("x5", 0), None);
    }
}
