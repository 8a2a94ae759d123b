//! The end of a loop turn: everything that is cheaper done once per turn than per event.
//!
//! Acks that became durable are released, the hub's batches are closed and fanned out,
//! paced jobs take one step for clients with room, every connection that got frames is
//! flushed once, and connections that died are removed — in that order, so a resumed
//! client joins the live stream only after the turn's batches went out.

use super::conn::Phase;
use super::*;
use crate::app::commit::Ack;
use crate::app::dispatch::history::step_job;
use crate::app::queue::Admit;
use crate::protocol::server as enc;

impl Server {
    pub(super) fn end_turn(&mut self) {
        self.poll_store();
        self.release_acks();
        let due = self.app.batches_due();
        if due {
            self.app.flush_hub();
        }
        self.apply_outbox();
        self.run_jobs();
        // A catch-up that joined the live stream may have closed open batches early.
        self.apply_outbox();
        self.flush_dirty();
        self.app.note_delivered(due);
        self.reap();
    }

    pub(super) fn release_acks(&mut self) {
        let mut acks = Vec::new();
        self.app.take_acks(&mut acks);
        for ack in acks {
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
        let mut outbox = self.app.take_outbox();
        for d in outbox.drain(..) {
            let Some(conn) = self.conns.get_mut(d.conn.key as usize) else {
                continue;
            };
            if conn.id.gen != d.conn.gen || conn.dead || conn.out.closing {
                continue;
            }
            if let (Some(note), Phase::Ws(ws)) = (&d.hit, &mut conn.phase) {
                // A breakpoint hit pauses the subscription; its frame is never dropped.
                crate::app::dispatch::breakpoints::on_hit(&mut ws.client, note);
                ws.client.messages_out += 1;
                self.app.metrics.messages_sent += 1;
                conn.out.queue_catch_up(d.frame, d.span.count);
            } else {
                if conn.out.queue.would_congest(d.frame.len()) {
                    // Write what is queued before judging: only a client whose socket is
                    // also full is slow.
                    if let Err(e) = conn.flush(&mut self.app.metrics.bytes_sent) {
                        tracing::debug!(conn = d.conn.key, error = %e, "write failed");
                        conn.kill(&mut self.dying);
                        continue;
                    }
                }
                match conn.out.queue.push_events(d.frame, d.span) {
                    Admit::Queued => {
                        self.app.metrics.messages_sent += 1;
                        if let Phase::Ws(ws) = &mut conn.phase {
                            ws.client.messages_out += 1;
                        }
                    }
                    Admit::Dropped => {}
                    Admit::Disconnect => {
                        conn.out.queue.discard_unsent();
                        conn.out.close_with(close_frame(
                            close_code::BACKPRESSURE,
                            "client too slow; resume with sinceSeq",
                        ));
                    }
                }
            }
            // What the policy dropped here is tallied when the connection is flushed
            // at the end of this turn (a connection that met the policy is listed).
            note_io(
                &mut conn.out,
                d.conn,
                self.app.now,
                &mut self.dirty,
                &mut self.app.timers,
            );
        }
        self.app.return_outbox(outbox);
    }

    /// Steps paced jobs of clients whose queues have room.
    pub(super) fn run_jobs(&mut self) {
        for id in self.app.take_job_conns() {
            let Some(conn) = live(&mut self.conns, id) else {
                continue;
            };
            let Phase::Ws(ws) = &mut conn.phase else {
                continue;
            };
            if conn.out.closing {
                continue;
            }
            if !conn.out.queue.below_low_water() {
                // Waits for the queue to drain: `flush_conn` lists it again then, so a
                // client that never reads costs nothing while its job waits.
                continue;
            }
            if let Some(mut job) = ws.client.jobs.pop_front() {
                let mut call = Call {
                    app: &mut self.app,
                    client: &mut ws.client,
                    out: &mut conn.out,
                    id,
                    rid: None,
                };
                if !step_job(&mut job, &mut call) {
                    ws.client.jobs.push_front(job);
                }
            }
            if !ws.client.jobs.is_empty() {
                self.app.jobs_pending(id);
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
        match conn.flush(&mut self.app.metrics.bytes_sent) {
            Ok(drained) => {
                if let Some(drops) = conn.out.queue.take_drops() {
                    if let Phase::Ws(ws) = &mut conn.phase {
                        let mut call = Call {
                            app: &mut self.app,
                            client: &mut ws.client,
                            out: &mut conn.out,
                            id,
                            rid: None,
                        };
                        for d in drops {
                            call.app.scratch.clear();
                            enc::encode_events_dropped(
                                &mut call.app.scratch,
                                &d.session,
                                d.count,
                                d.first_seq,
                                d.last_seq,
                                Some("backpressure"),
                            );
                            call.send_scratch();
                        }
                    }
                    let _ = conn.flush(&mut self.app.metrics.bytes_sent);
                }
                if drained && conn.out.closing && conn.out.queue.is_empty() {
                    // Everything said: half-close and let the peer finish (its close frame
                    // or EOF ends it; the close deadline bounds the wait).
                    let _ = conn.sock.shutdown(std::net::Shutdown::Write);
                    if matches!(conn.phase, Phase::Http) || conn.out.peer_closed {
                        conn.kill(&mut self.dying);
                    }
                }
                if let Phase::Ws(ws) = &conn.phase {
                    if !ws.client.jobs.is_empty() && conn.out.queue.below_low_water() {
                        self.app.jobs_pending(id);
                    }
                }
            }
            Err(e) => {
                tracing::debug!(conn = id.key, error = %e, "write failed");
                conn.kill(&mut self.dying);
            }
        }
        tally(&mut self.app, &mut conn.out);
    }

    /// Removes the connections that died this turn: out of the hub, out of the limiter,
    /// out of the slab. Only the listed ones are visited, never the whole slab.
    pub(super) fn reap(&mut self) {
        for id in std::mem::take(&mut self.dying) {
            match self.conns.get(id.key as usize) {
                Some(c) if c.id.gen == id.gen && c.dead => {}
                _ => continue,
            }
            let mut conn = self.conns.remove(id.key as usize);
            // What was still queued was never written: it counts as dropped.
            conn.out.queue.discard_unsent();
            tally(&mut self.app, &mut conn.out);
            if let Phase::Ws(ws) = &conn.phase {
                for s in &ws.client.subs {
                    self.app.hub.unsubscribe(s, conn.id);
                }
                self.ws_count -= 1;
            }
            if conn.ip_counted {
                self.ip_limiter.release(conn.peer.ip());
            }
            let _ = self.poll.registry().deregister(&mut conn.sock);
            self.app.metrics.connections_closed += 1;
        }
    }
}

/// Moves what a queue wrote and dropped into the server's metrics: delivered means
/// written to the socket, dropped means what the notices (or a disconnect) account for.
fn tally(app: &mut App, out: &mut Out) {
    let t = out.queue.take_tally();
    app.metrics.events_delivered += t.events_written;
    app.metrics.events_dropped += t.events_dropped;
}
