//! An in-memory stand-in for the loop, in the spirit of quiche's `Pipe`: clients whose
//! messages go straight into [`dispatch`](super::dispatch) and whose frames are read back
//! out of their write queues, with a turn that does what the shell's end of turn does
//! (release acks, close batches, fan out, step jobs). No socket anywhere.

use super::commit::Ack;
use super::dispatch::{self, history::step_job};
use super::queue::Admit;
use super::{App, Call, Client, Out};
use crate::auth::Authenticator;
use crate::config::Config;
use crate::hub::ConnId;
use crate::limits::RateLimiter;
use crate::store::MemoryStore;
use crate::ws::{Message, WireFormat};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

/// One test client: its protocol state and outbound half.
pub struct Peer {
    pub id: ConnId,
    pub client: Client,
    pub out: Out,
}

pub struct Pipe {
    pub app: App,
    pub peers: Vec<Peer>,
    pub http_acks: Vec<(ConnId, Vec<u8>)>,
}

impl Pipe {
    /// An application over a memory store with `tweak` applied to the default config.
    pub fn new(tweak: impl FnOnce(&mut Config)) -> Pipe {
        let mut config = Config::default();
        config.storage.persist = false;
        tweak(&mut config);
        let store = Box::new(MemoryStore::new(&config.storage));
        Pipe::with_store(config, store)
    }

    /// An application over the given store.
    pub fn with_store(config: Config, store: Box<dyn crate::store::Store>) -> Pipe {
        let auth = Authenticator::from_config(&config.auth).expect("test auth config is valid");
        let app = App::new(Arc::new(config), store, auth);
        Pipe {
            app,
            peers: Vec::new(),
            http_acks: Vec::new(),
        }
    }

    /// Adds an upgraded, authenticated client (plain JSON, no deflate); returns its index.
    pub fn connect(&mut self) -> usize {
        let key = self.peers.len() as u32;
        let id = ConnId { key, gen: 1 };
        let mut client = Client::new(
            WireFormat::Json,
            false,
            false,
            Some(crate::auth::Principal::anonymous_full()),
            RateLimiter::new(&self.app.config.rate_limit, self.app.mono_ms()),
        );
        let mut out = self.app.new_out();
        self.app.welcome(id, &mut client, &mut out);
        self.peers.push(Peer { id, client, out });
        let _ = self.frames(key as usize); // the `connection` message
        key as usize
    }

    fn call(&mut self, i: usize) -> Call<'_> {
        let p = &mut self.peers[i];
        Call {
            app: &mut self.app,
            client: &mut p.client,
            out: &mut p.out,
            id: p.id,
            rid: None,
        }
    }

    /// Client `i` sends one text message; the turn then ends as the loop's would.
    pub fn send(&mut self, i: usize, json: &str) {
        self.app.begin_turn(Instant::now(), super::wall_ms());
        let mut buf = json.as_bytes().to_vec();
        dispatch::on_message(Message::Text(&mut buf), &mut self.call(i));
        self.end_turn();
    }

    /// What the shell does at the end of a turn, minus the sockets.
    pub fn end_turn(&mut self) {
        let mut acks = Vec::new();
        self.app.take_acks(&mut acks);
        for ack in acks {
            match ack {
                Ack::Ws { conn, frame } => self.peers[conn.key as usize].out.control(frame),
                Ack::Http { conn, response, .. } => self.http_acks.push((conn, response)),
            }
        }
        if self.app.batches_due() {
            self.app.flush_hub();
        }
        self.apply_outbox();
        for id in self.app.take_job_conns() {
            let p = &mut self.peers[id.key as usize];
            if p.out.queue.below_low_water() {
                if let Some(mut job) = p.client.jobs.pop_front() {
                    let mut call = Call {
                        app: &mut self.app,
                        client: &mut p.client,
                        out: &mut p.out,
                        id,
                        rid: None,
                    };
                    if !step_job(&mut job, &mut call) {
                        p.client.jobs.push_front(job);
                    }
                }
            }
            if !p.client.jobs.is_empty() {
                self.app.jobs_pending(id);
            }
        }
        self.apply_outbox();
    }

    fn apply_outbox(&mut self) {
        for d in self.app.take_outbox() {
            let p = &mut self.peers[d.conn.key as usize];
            if let Some(note) = &d.hit {
                super::dispatch::breakpoints::on_hit(&mut p.client, note);
                p.client.messages_out += 1;
                p.out.queue_catch_up(d.frame, d.span.count);
                continue;
            }
            if p.out.queue.push_events(d.frame, d.span) == Admit::Queued {
                p.client.messages_out += 1;
            }
        }
    }

    /// Runs turns until no paced job is left (bounded).
    pub fn settle(&mut self) -> Vec<Vec<Value>> {
        let mut seen = vec![Vec::new(); self.peers.len()];
        for _ in 0..1000 {
            // Reading makes room, as a client that keeps up would.
            for (i, s) in seen.iter_mut().enumerate() {
                s.extend(self.frames(i));
            }
            if !self.app.has_jobs() {
                return seen;
            }
            self.end_turn();
        }
        panic!("jobs did not finish");
    }

    /// Every frame queued for client `i` so far, written out and parsed as JSON.
    pub fn frames(&mut self, i: usize) -> Vec<Value> {
        let mut wire = Vec::new();
        let q = &mut self.peers[i].out.queue;
        q.flush(&mut wire).expect("a Vec takes every byte");
        let t = q.take_tally();
        self.app.metrics.events_delivered += t.events_written;
        self.app.metrics.events_dropped += t.events_dropped;
        decode_frames(&wire)
    }

    /// The frames of client `i` whose `type` is `kind`.
    pub fn of_type(&mut self, i: usize, kind: &str) -> Vec<Value> {
        self.frames(i)
            .into_iter()
            .filter(|v| v["type"] == kind)
            .collect()
    }
}

/// Parses unmasked, uncompressed server frames; control frames (ping, close) are skipped.
pub fn decode_frames(mut wire: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    while wire.len() >= 2 {
        let opcode = wire[0] & 0x0f;
        let (len, head) = match wire[1] & 0x7f {
            126 => (u16::from_be_bytes([wire[2], wire[3]]) as usize, 4),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&wire[2..10]);
                (u64::from_be_bytes(b) as usize, 10)
            }
            n => (n as usize, 2),
        };
        let payload = &wire[head..head + len];
        if opcode == 1 {
            out.push(serde_json::from_slice(payload).expect("server text frames are JSON"));
        }
        wire = &wire[head + len..];
    }
    out
}
