//! The mapping, row by row, and the decoders on the specification's own examples.

use super::map::*;
use super::proto::*;
use super::*;
use crate::ingest::IngestContext;
use serde_json::Value as Json;

fn ctx() -> IngestContext {
    IngestContext::new(65536, 1_700_000_000_000, 0xabc)
}

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.to_string().into(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

fn s(key: &str, v: &str) -> KeyValue {
    kv(key, Value::String(v.to_string().into()))
}

const T0: u64 = 1_700_000_000_123_000_000;

fn span(attrs: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![0x5b; 16].into(),
        span_id: vec![0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74].into(),
        parent_span_id: vec![0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x73].into(),
        name: "op".into(),
        kind: 1,
        start_time_unix_nano: T0,
        end_time_unix_nano: T0 + 250_000_000,
        attributes: attrs,
        events: vec![],
        status: None,
    }
}

fn request(resource: Vec<KeyValue>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "agent-lib".into(),
                    version: "1.2".into(),
                }),
                spans,
            }],
        }],
    }
}

/// The stored events of a request, as JSON, and the mapping's verdict.
fn run(req: &ExportTraceServiceRequest) -> (Vec<Json>, Mapped) {
    let mut c = ctx();
    let m = map_request(req, &MapConfig::default(), &mut c);
    let events = m
        .events
        .iter()
        .map(|p| {
            let mut full = b"{\"seq\":1,".to_vec();
            full.extend_from_slice(&p.json_tail[p.headroom..]);
            serde_json::from_slice(&full).unwrap()
        })
        .collect();
    (events, m)
}

fn types(events: &[Json]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// Every row of [`OPERATIONS`] (and the default): the events it makes, ok and failed.
#[test]
fn every_operation_row() {
    let mut rows: Vec<Operation> = OPERATIONS.to_vec();
    rows.push(DEFAULT_OPERATION);
    for row in rows {
        for failed in [false, true] {
            let mut attrs = vec![s("gen_ai.conversation.id", "conv-1")];
            if !row.name.is_empty() {
                attrs.push(s("gen_ai.operation.name", row.name));
            }
            let mut sp = span(attrs);
            if failed {
                sp.status = Some(Status {
                    message: "boom".into(),
                    code: STATUS_CODE_ERROR,
                });
            }
            let (events, m) = run(&request(vec![s("service.name", "svc")], vec![sp]));
            assert_eq!(m.rejected_spans, 0, "{row:?}: {}", m.error_message);
            let mut want = vec![row.start];
            match (failed, row.end_ok) {
                (true, _) => want.push(row.end_error),
                (false, Some(end)) => want.push(end),
                (false, None) => {}
            }
            assert_eq!(types(&events), want, "{row:?} failed={failed}");
            let start = &events[0];
            assert_eq!(start["timestamp"], 1_700_000_000_123i64);
            assert_eq!(start["data"]["taskId"], "eee19b7ec3c1b174");
            if let Some(end) = events.get(1) {
                assert_eq!(end["timestamp"], 1_700_000_000_373i64);
                assert_eq!(end["duration"], 250.0);
                assert_eq!(end["data"]["taskId"], "eee19b7ec3c1b174");
                if failed {
                    assert_eq!(end["data"]["status"], "error");
                    assert_eq!(end["data"]["error"], "boom");
                }
            }
        }
    }
}

/// Every row of [`SPAN_EVENTS`] (and the default), at its own time.
#[test]
fn every_span_event_row() {
    let mut rows: Vec<(&str, SpanEventRule)> = SPAN_EVENTS.to_vec();
    rows.push(("my.event", SpanEventRule::Own(DEFAULT_SPAN_EVENT)));
    for (name, rule) in rows {
        let mut sp = span(vec![]);
        sp.events.push(SpanEvent {
            time_unix_nano: T0 + 100_000_000,
            name: name.to_string().into(),
            attributes: vec![s("exception.message", "bad"), s("content", "hi")],
        });
        let (events, m) = run(&request(vec![s("service.name", "svc")], vec![sp]));
        assert_eq!(m.rejected_spans, 0);
        match rule {
            SpanEventRule::Own(kind) => {
                assert_eq!(
                    types(&events),
                    ["TASK_START", kind, "TASK_COMPLETE"],
                    "{name}"
                );
                assert_eq!(events[1]["timestamp"], 1_700_000_000_223i64);
                assert_eq!(events[1]["data"]["name"], name);
                assert_eq!(events[1]["data"]["attributes"]["content"], "hi");
                assert_eq!(events[1]["spanId"], "eee19b7ec3c1b174");
            }
            SpanEventRule::IntoEnd => {
                assert_eq!(types(&events), ["TASK_START", "TASK_COMPLETE"], "{name}");
                assert_eq!(events[1]["data"]["exception"]["exception.message"], "bad");
            }
        }
    }
}

/// Session and agent: each rule of the fallback chain, in order.
#[test]
fn session_and_agent_fallbacks() {
    let res_all = vec![s("service.name", "svc"), s("service.instance.id", "inst-7")];
    let cases: Vec<(Vec<KeyValue>, Vec<KeyValue>, &str, &str)> = vec![
        (
            vec![
                s("gen_ai.conversation.id", "conv"),
                s("session.id", "sess"),
                s("gen_ai.agent.id", "aid"),
                s("gen_ai.agent.name", "aname"),
            ],
            res_all.clone(),
            "conv",
            "aid",
        ),
        (
            vec![s("session.id", "sess"), s("gen_ai.agent.name", "aname")],
            res_all.clone(),
            "sess",
            "aname",
        ),
        (vec![], res_all.clone(), "inst-7", "svc"),
        (vec![], vec![s("service.name", "svc")], "svc", "svc"),
        // An empty string does not count.
        (
            vec![s("gen_ai.conversation.id", ""), s("gen_ai.agent.id", "")],
            vec![s("service.name", "svc")],
            "svc",
            "svc",
        ),
    ];
    for (attrs, res, session, agent) in cases {
        let (events, m) = run(&request(res, vec![span(attrs)]));
        assert_eq!(m.rejected_spans, 0);
        assert_eq!(events[0]["sessionId"], session);
        assert_eq!(events[0]["agentId"], agent);
    }
    // A configured resource attribute.
    let mut c = ctx();
    let cfg = MapConfig {
        session_resource_attribute: "deployment.id".into(),
    };
    let m = map_request(
        &request(vec![s("deployment.id", "d1")], vec![span(vec![])]),
        &cfg,
        &mut c,
    );
    assert_eq!(&*m.events[0].session, "d1");
    assert_eq!(m.events[0].agent, None);
}

#[test]
fn ids_attributes_and_metadata_keep_their_types() {
    let attrs = vec![
        s("gen_ai.operation.name", "chat"),
        kv("gen_ai.usage.input_tokens", Value::Int(120)),
        kv("gen_ai.usage.output_tokens", Value::Int(42)),
        kv("temperature", Value::Double(0.5)),
        kv("stream", Value::Bool(true)),
        kv(
            "list",
            Value::Array(ArrayValue {
                values: vec![
                    AnyValue {
                        value: Some(Value::Int(1)),
                    },
                    AnyValue {
                        value: Some(Value::String("x".into())),
                    },
                ],
            }),
        ),
        kv(
            "map",
            Value::Kvlist(KeyValueList {
                values: vec![kv("k", Value::Double(2.0))],
            }),
        ),
        kv("raw", Value::Bytes(vec![1, 2, 3].into())),
        KeyValue {
            key: "empty".into(),
            value: None,
        },
        kv("nan", Value::Double(f64::NAN)),
    ];
    let (events, _) = run(&request(
        vec![s("service.name", "svc"), kv("pid", Value::Int(7))],
        vec![span(attrs)],
    ));
    assert_eq!(types(&events), ["MESSAGE_SEND", "MESSAGE_RECEIVE"]);
    let e = &events[0];
    assert_eq!(e["traceId"], "5b".repeat(16));
    assert_eq!(e["spanId"], "eee19b7ec3c1b174");
    assert_eq!(e["parentId"], "eee19b7ec3c1b173");
    assert_eq!(e["id"], "eee19b7ec3c1b174:start");
    let a = &e["data"]["attributes"];
    assert!(a["gen_ai.usage.input_tokens"].is_i64());
    assert!(a["temperature"].is_f64());
    assert_eq!(a["stream"], true);
    assert_eq!(a["list"], serde_json::json!([1, "x"]));
    assert_eq!(a["map"]["k"], 2.0);
    assert!(a["map"]["k"].is_f64());
    assert_eq!(a["raw"], "AQID");
    assert!(a["empty"].is_null());
    assert!(a["nan"].is_null());
    assert_eq!(e["metadata"]["service.name"], "svc");
    assert_eq!(e["metadata"]["pid"], 7);
    assert_eq!(e["metadata"]["otel.scope.name"], "agent-lib");
    let end = &events[1];
    assert_eq!(end["data"]["usage"]["inputTokens"], 120);
    assert_eq!(end["data"]["usage"]["outputTokens"], 42);
    assert_eq!(end["id"], "eee19b7ec3c1b174:end");
    // A root span has no parentId.
    let mut root = span(vec![]);
    root.parent_span_id = Default::default();
    let (events, _) = run(&request(vec![s("service.name", "svc")], vec![root]));
    assert!(events[0].get("parentId").is_none());
}

#[test]
fn a_bad_span_is_rejected_alone() {
    let mut no_trace = span(vec![]);
    no_trace.trace_id = vec![0; 16].into();
    let mut short_span = span(vec![]);
    short_span.span_id = vec![1, 2].into();
    let mut too_long_session = span(vec![s("session.id", &"s".repeat(300))]);
    too_long_session.name = "long".into();
    let good = span(vec![]);
    let (events, m) = run(&request(
        vec![s("service.name", "svc")],
        vec![no_trace, good, short_span, too_long_session],
    ));
    assert_eq!(m.spans, 4);
    assert_eq!(m.rejected_spans, 3);
    assert_eq!(types(&events), ["TASK_START", "TASK_COMPLETE"]);
    assert!(
        m.error_message.contains("3 spans rejected"),
        "{}",
        m.error_message
    );
    assert!(
        m.error_message.contains("span 0: traceId"),
        "{}",
        m.error_message
    );
    // No session anywhere.
    let (events, m) = run(&request(vec![], vec![span(vec![])]));
    assert!(events.is_empty());
    assert!(
        m.error_message.contains("no session"),
        "{}",
        m.error_message
    );
}

#[test]
fn a_request_is_stored_in_time_order() {
    // A child that ended first, listed after its parent.
    let mut parent = span(vec![]);
    parent.start_time_unix_nano = T0;
    parent.end_time_unix_nano = T0 + 900_000_000;
    let mut child = span(vec![]);
    child.span_id = vec![9; 8].into();
    child.start_time_unix_nano = T0 + 100_000_000;
    child.end_time_unix_nano = T0 + 200_000_000;
    let (events, _) = run(&request(
        vec![s("service.name", "svc")],
        vec![parent, child],
    ));
    let ts: Vec<i64> = events
        .iter()
        .map(|e| e["timestamp"].as_i64().unwrap())
        .collect();
    let mut sorted = ts.clone();
    sorted.sort();
    assert_eq!(ts, sorted);
}

/// The specification's OTLP/JSON example (examples/trace.json in opentelemetry-proto),
/// plus what OTLP/JSON allows: int64 as strings or numbers, unknown fields.
pub const SPEC_EXAMPLE: &str = r#"{
  "resourceSpans": [
    {
      "resource": {
        "attributes": [
          { "key": "service.name", "value": { "stringValue": "my.service" } }
        ]
      },
      "scopeSpans": [
        {
          "scope": {
            "name": "my.library",
            "version": "1.0.0",
            "attributes": [
              { "key": "my.scope.attribute", "value": { "stringValue": "some scope attribute" } }
            ]
          },
          "spans": [
            {
              "traceId": "5B8EFFF798038103D269B633813FC60C",
              "spanId": "EEE19B7EC3C1B174",
              "parentSpanId": "EEE19B7EC3C1B173",
              "name": "I'm a server span",
              "startTimeUnixNano": "1544712660000000000",
              "endTimeUnixNano": 1544712661000000000,
              "kind": 2,
              "attributes": [
                { "key": "my.span.attr", "value": { "stringValue": "some value" } },
                { "key": "n", "value": { "intValue": "9007199254740993" } },
                { "key": "m", "value": { "intValue": 5 } },
                { "key": "d", "value": { "doubleValue": 1.5 } }
              ],
              "status": { "code": 2, "message": "failed" },
              "futureField": { "anything": [1, 2, 3] }
            }
          ]
        }
      ]
    }
  ]
}"#;

#[test]
fn the_specification_json_example() {
    let req = decode(Format::Json, None, SPEC_EXAMPLE.as_bytes(), 1 << 20).unwrap();
    assert_eq!(span_count(&req), 1);
    let sp = &req.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(
        sp.span_id,
        &[0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74][..]
    );
    assert_eq!(sp.start_time_unix_nano, 1_544_712_660_000_000_000);
    assert_eq!(sp.end_time_unix_nano, 1_544_712_661_000_000_000);
    assert_eq!(sp.kind, 2);
    let (events, m) = run(&req);
    assert_eq!(m.rejected_spans, 0);
    assert_eq!(types(&events), ["TASK_START", "TASK_FAIL"]);
    let e = &events[0];
    assert_eq!(e["sessionId"], "my.service");
    assert_eq!(e["traceId"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(e["timestamp"], 1_544_712_660_000i64);
    assert_eq!(
        e["data"]["attributes"]["n"].as_u64(),
        Some(9_007_199_254_740_993)
    );
    assert_eq!(e["data"]["attributes"]["m"], 5);
    // The same request as protobuf decodes to the same message.
    let bytes = prost::Message::encode_to_vec(&req);
    assert_eq!(
        decode(Format::Protobuf, None, &bytes, 1 << 20).unwrap(),
        req
    );
}

#[test]
fn malformed_bodies_say_what_was_wrong() {
    let cases: &[(Format, &[u8], &str)] = &[
        (Format::Json, b"{", "JSON"),
        (
            Format::Json,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"xyz1"}]}]}]}"#,
            "not hex",
        ),
        (
            Format::Json,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}"#,
            "64-bit",
        ),
        (Format::Json, br#"{"resourceSpans":{}}"#, "JSON"),
        (Format::Protobuf, b"\x0a\xff\xff\xff\xff\x0f", "protobuf"),
        (Format::Protobuf, b"\x0a\x05\x12\x03\x12\x01", "protobuf"),
    ];
    for (format, body, needle) in cases {
        let e = decode(*format, None, body, 1 << 20).unwrap_err();
        assert_eq!(e.status(), 400, "{e}");
        assert!(e.to_string().contains(needle), "{e}");
    }
    let e = decode(Format::Json, Some("br"), b"{}", 1 << 20).unwrap_err();
    assert_eq!(e.status(), 415);
    let e = decode(Format::Json, None, &[b' '; 100], 10).unwrap_err();
    assert_eq!(e, OtlpError::TooLarge { limit: 10 });
    // Empty bodies are empty requests, in both formats.
    assert_eq!(
        span_count(&decode(Format::Protobuf, None, b"", 10).unwrap()),
        0
    );
    assert_eq!(
        span_count(&decode(Format::Json, None, b"{}", 10).unwrap()),
        0
    );
}

#[test]
fn content_types_and_responses() {
    assert_eq!(Format::of("application/x-protobuf"), Some(Format::Protobuf));
    assert_eq!(
        Format::of("Application/JSON; charset=utf-8"),
        Some(Format::Json)
    );
    assert_eq!(Format::of("text/plain"), None);
    assert_eq!(response::success(Format::Json, 0, ""), b"{}");
    assert!(response::success(Format::Protobuf, 0, "").is_empty());
    let j: Json = serde_json::from_slice(&response::success(Format::Json, 2, "why")).unwrap();
    assert_eq!(j["partialSuccess"]["rejectedSpans"], 2);
    assert_eq!(j["partialSuccess"]["errorMessage"], "why");
    let p = response::success(Format::Protobuf, 2, "why");
    let back: ExportTraceServiceResponse = prost::Message::decode(&p[..]).unwrap();
    assert_eq!(back.partial_success.unwrap().rejected_spans, 2);
    let st: RpcStatus =
        prost::Message::decode(&response::status(Format::Protobuf, 3, "bad")[..]).unwrap();
    assert_eq!((st.code, st.message.as_str()), (3, "bad"));
}
