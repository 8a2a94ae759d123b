//! `tracecast tail`: a blocking WebSocket client that follows one session and prints
//! every event as one NDJSON line on stdout; notices (dropped events, errors) go to stderr.
//!
//! The protocol handling is the pure [`Tail`] state machine (text in, lines and replies
//! out) so it is tested without a socket; [`run`] is the thin tungstenite loop around it.
//! Events are de-duplicated by `seq`, which is what makes "history, then subscribe from the
//! last seq seen" gap-free and duplicate-free.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use serde_json::{json, Map, Value};

use super::bearer::{self, BearerArgs};
use super::duration::{parse_since, Since};
use super::CliError;

#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    /// WebSocket URL of the server.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,
    /// Session to follow.
    #[arg(long)]
    pub session: String,
    /// Only this agent's events.
    #[arg(long)]
    pub agent: Option<String>,
    /// Start after this seq (a number) or this long ago (5m, 1h).
    #[arg(long, value_parser = parse_since)]
    pub since: Option<Since>,
    /// Only events matching this condition (SPEC §7), e.g. 'data.status === "error"';
    /// the server filters live events, catch-up and history alike.
    #[arg(long)]
    pub filter: Option<String>,
    #[command(flatten)]
    pub bearer: BearerArgs,
}

/// What the loop must do after a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// One NDJSON line for stdout.
    Line(String),
    /// A notice for stderr.
    Note(String),
    /// A JSON text frame to send to the server.
    Send(String),
    /// Stop: `Ok` on a clean end (server shutdown), `Err` on a fatal error.
    Stop(Result<(), String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    History,
    Live,
}

const HISTORY_REQUEST_ID: &str = "tail-history";

/// The client's protocol state for one session.
#[derive(Debug)]
pub struct Tail {
    session: String,
    agent: Option<String>,
    since: Option<Since>,
    now_ms: u64,
    phase: Phase,
    last_seq: Option<u64>,
    /// Events older than this are skipped (the `--since DURATION` window's start).
    min_timestamp: Option<u64>,
    /// `--filter`: sent with the subscription and the history request.
    filter: Option<String>,
}

impl Tail {
    pub fn new(session: &str, agent: Option<&str>, since: Option<Since>, now_ms: u64) -> Tail {
        Tail {
            session: session.to_string(),
            agent: agent.map(str::to_string),
            since,
            now_ms,
            phase: Phase::Live,
            last_seq: None,
            min_timestamp: None,
            filter: None,
        }
    }

    /// Follows only events matching `condition` (`--filter`).
    pub fn with_filter(mut self, condition: Option<&str>) -> Tail {
        self.filter = condition.map(str::to_string);
        self
    }

    /// The messages to send once connected.
    pub fn start(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        if let Some(agent) = &self.agent {
            out.push(Out::Send(
                json!({"type": "filter_agents", "agentIds": [agent]}).to_string(),
            ));
        }
        match self.since {
            Some(Since::Ago(window)) => {
                let start = self
                    .now_ms
                    .saturating_sub(u64::try_from(window.as_millis()).unwrap_or(u64::MAX));
                self.min_timestamp = Some(start);
                self.phase = Phase::History;
                let mut msg = json!({
                    "type": "request_history",
                    "sessionId": self.session,
                    "timeRange": {"start": start, "end": self.now_ms},
                    "requestId": HISTORY_REQUEST_ID,
                });
                if let (Some(f), Some(map)) = (&self.filter, msg.as_object_mut()) {
                    map.insert("filter".into(), f.as_str().into());
                }
                out.push(Out::Send(msg.to_string()));
            }
            Some(Since::Seq(seq)) => {
                self.last_seq = Some(seq);
                out.push(self.subscribe(Some(seq)));
            }
            None => out.push(self.subscribe(None)),
        }
        out
    }

    fn subscribe(&self, since_seq: Option<u64>) -> Out {
        let mut msg = json!({"type": "subscribe_session", "sessionId": self.session});
        if let (Some(seq), Some(map)) = (since_seq, msg.as_object_mut()) {
            map.insert("sinceSeq".into(), seq.into());
        }
        if let (Some(f), Some(map)) = (&self.filter, msg.as_object_mut()) {
            map.insert("filter".into(), f.as_str().into());
        }
        Out::Send(msg.to_string())
    }

    fn go_live(&mut self, out: &mut Vec<Out>) {
        if self.phase == Phase::History {
            self.phase = Phase::Live;
            out.push(self.subscribe(self.last_seq));
        }
    }

    fn emit(&mut self, event: &Value, out: &mut Vec<Out>) {
        if let Some(seq) = event.get("seq").and_then(Value::as_u64) {
            if self.last_seq.is_some_and(|last| seq <= last) {
                return;
            }
            self.last_seq = Some(seq);
        }
        if let Some(min) = self.min_timestamp {
            if event
                .get("timestamp")
                .and_then(Value::as_u64)
                .is_some_and(|t| t < min)
            {
                return;
            }
        }
        if let Some(agent) = &self.agent {
            if event.get("agentId").and_then(Value::as_str) != Some(agent.as_str()) {
                return;
            }
        }
        out.push(Out::Line(event.to_string()));
    }

    fn emit_all(&mut self, events: Option<&Value>, out: &mut Vec<Out>) {
        for event in events
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            self.emit(event, out);
        }
    }

    /// Handles one text frame from the server.
    pub fn on_text(&mut self, text: &str) -> Vec<Out> {
        let mut out = Vec::new();
        let Ok(msg) = serde_json::from_str::<Value>(text) else {
            out.push(Out::Note(format!(
                "tail: unreadable message from server: {}",
                clip(text)
            )));
            return out;
        };
        let kind = msg.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "trace_batch" => {
                let delta = msg.get("compression").and_then(Value::as_str) == Some("delta");
                let events = msg
                    .get("events")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let events = if delta { undelta(events) } else { events };
                for e in &events {
                    self.emit(e, &mut out);
                }
            }
            "initial_traces" => self.emit_all(msg.get("traces"), &mut out),
            "historical_data" => {
                self.emit_all(msg.get("traces"), &mut out);
                let is_last = msg
                    .pointer("/chunkInfo/isLast")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                if is_last && request_id(&msg).is_none_or(|id| id == HISTORY_REQUEST_ID) {
                    self.go_live(&mut out);
                }
            }
            "breakpoint_hit" => {
                if let Some(event) = msg.get("event") {
                    self.emit(event, &mut out);
                }
            }
            "events_dropped" => {
                out.push(Out::Note(format!("tail: events dropped: {}", fields(&msg))))
            }
            "auth_response" if msg.get("authenticated").and_then(Value::as_bool) == Some(false) => {
                out.push(Out::Stop(Err("tail: authentication refused".into())));
            }
            "error" => {
                let code = msg
                    .pointer("/error/code")
                    .and_then(Value::as_str)
                    .unwrap_or("error");
                let message = msg
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                out.push(Out::Note(format!("tail: server error {code}: {message}")));
                match code {
                    "not_authenticated" | "forbidden" => {
                        out.push(Out::Stop(Err(format!("tail: {code}: {message}"))));
                    }
                    // A failed history request still leaves the live stream worth following.
                    _ if request_id(&msg) == Some(HISTORY_REQUEST_ID) => self.go_live(&mut out),
                    _ => {}
                }
            }
            "system_event" => {
                let event = msg.get("event").and_then(Value::as_str).unwrap_or("");
                out.push(Out::Note(format!(
                    "tail: server notice {event}: {}",
                    fields(&msg)
                )));
                if event == "shutdown" {
                    out.push(Out::Stop(Ok(())));
                }
            }
            _ => {}
        }
        out
    }
}

fn request_id(msg: &Value) -> Option<&str> {
    msg.get("requestId").and_then(Value::as_str)
}

fn fields(msg: &Value) -> String {
    let mut m = msg.as_object().cloned().unwrap_or_default();
    m.remove("type");
    clip(&Value::Object(m).to_string())
}

fn clip(text: &str) -> String {
    if text.len() > 200 {
        format!("{}…", text.chars().take(200).collect::<String>())
    } else {
        text.to_string()
    }
}

/// Rebuilds the events of a `compression:"delta"` batch: the first is whole, each next
/// lists the fields that changed, `$removed` the ones that went away (SPEC §4).
pub fn undelta(events: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(events.len());
    let mut prev: Option<Map<String, Value>> = None;
    for event in events {
        let Value::Object(delta) = event else {
            out.push(event);
            continue;
        };
        let mut whole = match prev.take() {
            None => delta,
            Some(mut base) => {
                for (k, v) in delta {
                    if k == "$removed" {
                        for name in v.as_array().map(Vec::as_slice).unwrap_or_default() {
                            if let Some(name) = name.as_str() {
                                base.remove(name);
                            }
                        }
                    } else {
                        base.insert(k, v);
                    }
                }
                base
            }
        };
        whole.remove("$removed");
        prev = Some(whole.clone());
        out.push(Value::Object(whole));
    }
    out
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Runs the command until the server closes or shuts down.
pub fn run(args: &TailArgs) -> Result<(), CliError> {
    use tungstenite::client::IntoClientRequest;
    use tungstenite::http::HeaderValue;
    use tungstenite::Message;

    let mut request = args
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| CliError::Usage(format!("--url {}: {e}", args.url)))?;
    if let Some(token) = bearer::token(&args.bearer)? {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| CliError::Usage("the token is not a valid header value".into()))?;
        request.headers_mut().insert("Authorization", value);
    }
    let (mut socket, _) = tungstenite::connect(request).map_err(|e| match e {
        tungstenite::Error::Http(resp) => CliError::Runtime(format!(
            "tail: {} refused the upgrade: HTTP {}",
            args.url,
            resp.status()
        )),
        other => CliError::Runtime(format!("tail: cannot connect to {}: {other}", args.url)),
    })?;
    let mut tail = Tail::new(&args.session, args.agent.as_deref(), args.since, now_ms())
        .with_filter(args.filter.as_deref());
    let mut pending = tail.start();
    let stdout = std::io::stdout();
    loop {
        for out in pending.drain(..) {
            match out {
                Out::Line(line) => {
                    let mut lock = stdout.lock();
                    // A closed pipe (`tail | head`) is a normal way to stop.
                    if writeln!(lock, "{line}")
                        .and_then(|()| lock.flush())
                        .is_err()
                    {
                        return Ok(());
                    }
                }
                Out::Note(note) => eprintln!("{note}"),
                Out::Send(text) => socket
                    .send(Message::text(text))
                    .map_err(|e| CliError::Runtime(format!("tail: send: {e}")))?,
                Out::Stop(Ok(())) => return Ok(()),
                Out::Stop(Err(e)) => return Err(CliError::Runtime(e)),
            }
        }
        match socket.read() {
            Ok(Message::Text(text)) => pending = tail.on_text(text.as_str()),
            Ok(Message::Binary(_)) => {
                eprintln!("tail: ignoring a binary frame (this client speaks tracecast.json)")
            }
            Ok(Message::Close(frame)) => {
                if let Some(f) = frame {
                    eprintln!("tail: server closed: {} {}", u16::from(f.code), f.reason);
                }
                return Ok(());
            }
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return Ok(())
            }
            Err(e) => return Err(CliError::Runtime(format!("tail: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sent(outs: &[Out]) -> Vec<Value> {
        outs.iter()
            .filter_map(|o| match o {
                Out::Send(s) => serde_json::from_str(s).ok(),
                _ => None,
            })
            .collect()
    }

    fn lines(outs: &[Out]) -> Vec<u64> {
        outs.iter()
            .filter_map(|o| match o {
                Out::Line(s) => serde_json::from_str::<Value>(s).ok()?.get("seq")?.as_u64(),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn filter_rides_with_the_subscription_and_the_history_request() {
        let mut t = Tail::new("s", None, Some(Since::Seq(3)), 0).with_filter(Some("seq > 1"));
        let s = sent(&t.start());
        assert_eq!(
            s,
            vec![json!({"type":"subscribe_session","sessionId":"s","sinceSeq":3,"filter":"seq > 1"})]
        );
        let mut t = Tail::new("s", None, Some(Since::Ago(Duration::from_secs(1))), 10_000)
            .with_filter(Some("a"));
        assert_eq!(sent(&t.start())[0]["filter"], json!("a"));
    }

    #[test]
    fn plain_and_since_seq_subscribe() {
        let mut t = Tail::new("s1", None, None, 0);
        assert_eq!(
            sent(&t.start()),
            vec![json!({"type":"subscribe_session","sessionId":"s1"})]
        );
        let out = t.on_text(r#"{"type":"initial_traces","traces":[{"seq":1},{"seq":2}]}"#);
        assert_eq!(lines(&out), vec![1, 2]);
        // A replayed duplicate is dropped.
        let out = t.on_text(r#"{"type":"trace_batch","sessionId":"s1","events":[{"seq":2},{"seq":3}],"compression":"none"}"#);
        assert_eq!(lines(&out), vec![3]);

        let mut t = Tail::new("s1", Some("a"), Some(Since::Seq(7)), 0);
        let s = sent(&t.start());
        assert_eq!(s[0], json!({"type":"filter_agents","agentIds":["a"]}));
        assert_eq!(
            s[1],
            json!({"type":"subscribe_session","sessionId":"s1","sinceSeq":7})
        );
        let out = t.on_text(
            r#"{"type":"trace_batch","events":[{"seq":8,"agentId":"a"},{"seq":9,"agentId":"b"}]}"#,
        );
        assert_eq!(lines(&out), vec![8]);
    }

    #[test]
    fn since_duration_reads_history_then_subscribes_from_its_last_seq() {
        let mut t = Tail::new(
            "s",
            None,
            Some(Since::Ago(Duration::from_secs(300))),
            1_000_000,
        );
        let s = sent(&t.start());
        assert_eq!(s[0]["type"], "request_history");
        assert_eq!(
            s[0]["timeRange"],
            json!({"start": 700_000, "end": 1_000_000})
        );
        let out = t.on_text(r#"{"type":"historical_data","traces":[{"seq":4,"timestamp":800000}],"chunkInfo":{"current":1,"total":2,"isLast":false},"requestId":"tail-history"}"#);
        assert_eq!((lines(&out), sent(&out).len()), (vec![4], 0));
        let out = t.on_text(r#"{"type":"historical_data","traces":[{"seq":5,"timestamp":900000}],"chunkInfo":{"current":2,"total":2,"isLast":true},"requestId":"tail-history"}"#);
        assert_eq!(lines(&out), vec![5]);
        assert_eq!(
            sent(&out),
            vec![json!({"type":"subscribe_session","sessionId":"s","sinceSeq":5})]
        );
    }

    #[test]
    fn empty_history_subscribes_and_filters_old_initial_traces() {
        let mut t = Tail::new("s", None, Some(Since::Ago(Duration::from_secs(1))), 10_000);
        t.start();
        let out = t.on_text(r#"{"type":"historical_data","traces":[],"chunkInfo":{"current":1,"total":1,"isLast":true},"total":0,"requestId":"tail-history"}"#);
        assert_eq!(
            sent(&out),
            vec![json!({"type":"subscribe_session","sessionId":"s"})]
        );
        let out = t.on_text(r#"{"type":"initial_traces","traces":[{"seq":1,"timestamp":5000},{"seq":2,"timestamp":9500}]}"#);
        assert_eq!(lines(&out), vec![2]);
    }

    #[test]
    fn notices_and_stops() {
        let mut t = Tail::new("s", None, None, 0);
        t.start();
        let out = t.on_text(
            r#"{"type":"events_dropped","sessionId":"s","count":3,"fromSeq":1,"toSeq":3}"#,
        );
        assert!(matches!(&out[..], [Out::Note(n)] if n.contains("\"count\":3")));
        let out = t.on_text(r#"{"type":"error","error":{"code":"forbidden","message":"no"}}"#);
        assert!(matches!(out.last(), Some(Out::Stop(Err(_)))));
        let out = t.on_text(r#"{"type":"system_event","event":"shutdown","data":{}}"#);
        assert_eq!(out.last(), Some(&Out::Stop(Ok(()))));
        assert!(matches!(&t.on_text("not json")[..], [Out::Note(_)]));
        assert!(t
            .on_text(r#"{"type":"heartbeat","timestamp":1}"#)
            .is_empty());
    }

    #[test]
    fn delta_batches_are_rebuilt() {
        let events = vec![
            json!({"seq":1,"type":"A","agentId":"x","data":{"k":1}}),
            json!({"seq":2,"type":"B"}),
            json!({"seq":3,"$removed":["agentId"],"data":{"k":2}}),
        ];
        assert_eq!(
            undelta(events),
            vec![
                json!({"seq":1,"type":"A","agentId":"x","data":{"k":1}}),
                json!({"seq":2,"type":"B","agentId":"x","data":{"k":1}}),
                json!({"seq":3,"type":"B","data":{"k":2}}),
            ]
        );
    }
}
