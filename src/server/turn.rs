//! The end of a loop turn: everything that is cheaper done once per turn than per event.
//!
//! Acks that became durable are released, the hub's batches are closed and fanned out,
//! paced jobs take one step for clients with room, every connection that got frames is
//! flushed once, and connections that died are removed — in that order, so a resumed
//! client joins the live stream only after the turn's batches went out.

use super::conn::Phase;
use super::queue::Admit;
use super::*;
use crate::protocol::server as enc;
use crate::ws::{close_code, close_frame};
use bytes::Bytes;

impl Server {
    pub(super) fn end_turn(&mut self) {
        self.poll_store();
        self.release_acks();
        let due = self.ctx.config.batch_timeout_ms == 0
            || self.ctx.hub.pending() >= self.ctx.config.batch_size
            || self.ctx.batch_deadline.is_some_and(|d| d <= self.ctx.now)
            || self.ctx.shutting_down;
        if due {
            self.ctx.flush_hub();
        }
        self.apply_outbox();
        self.run_jobs();
        self.flush_dirty();
        if let Some(t) = self.ctx.ingested_at.take() {
            if due {
                self.ctx
                    .metrics
                    .record_deliver(t.elapsed().as_micros() as u64);
            } else {
                self.ctx.ingested_at = Some(t);
            }
        }
        self.reap();
    }

    pub(super) fn release_acks(&mut self) {
        let durable = self.ctx.store.durable_seq();
        while let Some((seq, _)) = self.ctx.held.front() {
            if *seq > durable {
                break;
            }
            let Some((_, ack)) = self.ctx.held.pop_front() else {
                break;
            };
            match ack {
                Ack::Ws { conn, frame } => {
                    if let Some(c) = live(&mut self.conns, conn) {
                        c.out.control(frame);
                        self.after_io(conn);
                    }
                }
                Ack::Http {
                    conn,
                    response,
                    close,
                } => {
                    if let Some(c) = live(&mut self.conns, conn) {
                        c.out.control(Bytes::from(response));
                        if close {
                            c.out.closing = true;
                        } else if c.http_wait {
                            c.http_wait = false;
                            self.pending_reads.push(conn);
                        }
                        self.after_io(conn);
                    }
                }
            }
        }
    }

    pub(super) fn apply_outbox(&mut self) {
        let mut outbox = std::mem::take(&mut self.ctx.outbox);
        for d in outbox.drain(..) {
            let Some(conn) = self.conns.get_mut(d.conn.key as usize) else {
                continue;
            };
            if conn.id.gen != d.conn.gen || conn.dead || conn.out.closing {
                continue;
            }
            let count = d.span.count;
            if conn.out.queue.would_congest(d.frame.len()) {
                // Write what is queued before judging: only a client whose socket is
                // also full is slow.
                if let Err(e) = conn.flush(&mut self.ctx.metrics.bytes_sent) {
                    tracing::debug!(conn = d.conn.key, error = %e, "write failed");
                    conn.dead = true;
                    continue;
                }
            }
            match conn.out.queue.push_events(d.frame, d.span) {
                Admit::Queued => {
                    self.ctx.metrics.events_delivered += count;
                    self.ctx.metrics.messages_sent += 1;
                }
                Admit::Dropped => self.ctx.metrics.events_dropped += count,
                Admit::Disconnect => {
                    self.ctx.metrics.events_dropped += count;
                    conn.out.queue.discard_unsent();
                    conn.out.control(close_frame(
                        close_code::BACKPRESSURE,
                        "client too slow; resume with sinceSeq",
                    ));
                    conn.out.closing = true;
                }
            }
            note_io(
                &mut conn.out,
                d.conn,
                self.ctx.now,
                &mut self.dirty,
                &mut self.ctx.timers,
            );
        }
        self.ctx.outbox = outbox;
    }

    /// Steps paced jobs of clients whose queues have room.
    pub(super) fn run_jobs(&mut self) {
        let ids = std::mem::take(&mut self.ctx.job_conns);
        for id in ids {
            let Some(conn) = live(&mut self.conns, id) else {
                continue;
            };
            let Phase::Ws(ws) = &mut conn.phase else {
                continue;
            };
            if conn.out.closing {
                continue;
            }
            if conn.out.queue.below_low_water() {
                if let Some(mut job) = ws.client.jobs.pop_front() {
                    if !dispatch::step_job(
                        &mut job,
                        &mut ws.client,
                        &mut conn.out,
                        &mut self.ctx,
                        id,
                    ) {
                        ws.client.jobs.push_front(job);
                    }
                }
            }
            if !ws.client.jobs.is_empty() {
                self.ctx.job_conns.push(id);
            }
            self.after_io(id);
        }
    }

    pub(super) fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for id in &dirty {
            if let Some(conn) = self.conns.get_mut(id.key as usize) {
                if conn.id.gen == id.gen {
                    conn.out.listed = false;
                }
            }
            self.flush_conn(*id);
        }
        let mut dirty = dirty;
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    pub(super) fn flush_conn(&mut self, id: ConnId) {
        let Some(conn) = live(&mut self.conns, id) else {
            return;
        };
        match conn.flush(&mut self.ctx.metrics.bytes_sent) {
            Ok(drained) => {
                if let Some(drops) = conn.out.queue.take_drops() {
                    if let Phase::Ws(ws) = &mut conn.phase {
                        for d in drops {
                            self.ctx.scratch.clear();
                            enc::encode_events_dropped(
                                &mut self.ctx.scratch,
                                &d.session,
                                d.count,
                                d.first_seq,
                                d.last_seq,
                                Some("backpressure"),
                            );
                            dispatch::send_scratch(&mut self.ctx, &mut ws.client, &mut conn.out);
                        }
                    }
                    let _ = conn.flush(&mut self.ctx.metrics.bytes_sent);
                }
                if drained && conn.out.closing && conn.out.queue.is_empty() {
                    // Everything said: half-close and let the peer finish (its close frame
                    // or EOF ends it; the close deadline bounds the wait).
                    let _ = conn.sock.shutdown(std::net::Shutdown::Write);
                    if matches!(conn.phase, Phase::Http) || conn.out.peer_closed {
                        conn.dead = true;
                    }
                }
                if let Phase::Ws(ws) = &conn.phase {
                    if !ws.client.jobs.is_empty()
                        && conn.out.queue.below_low_water()
                        && !self.ctx.job_conns.contains(&id)
                    {
                        self.ctx.job_conns.push(id);
                    }
                }
            }
            Err(e) => {
                tracing::debug!(conn = id.key, error = %e, "write failed");
                conn.dead = true;
            }
        }
    }

    /// Removes dead connections: out of the hub, out of the limiter, out of the slab.
    pub(super) fn reap(&mut self) {
        let dead: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.dead)
            .map(|(k, _)| k)
            .collect();
        for key in dead {
            let mut conn = self.conns.remove(key);
            if let Phase::Ws(ws) = &conn.phase {
                for s in &ws.client.subs {
                    self.ctx.hub.unsubscribe(s, conn.id);
                }
                self.ws_count -= 1;
            }
            if conn.ip_counted {
                self.ip_limiter.release(conn.peer.ip());
            }
            let _ = self.poll.registry().deregister(&mut conn.sock);
            self.ctx.metrics.connections_closed += 1;
        }
    }
}
