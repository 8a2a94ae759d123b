//! The OTLP trace messages we read and write, derived here with `prost` (protobuf) and
//! `serde` (OTLP/JSON) from `opentelemetry-proto`'s `.proto` files, v1.
//!
//! Only the fields the mapping reads are declared: protobuf skips any other field by
//! its wire type, and serde ignores unknown JSON keys, which is exactly what OTLP asks of
//! a receiver (the spec's "unknown fields MUST be ignored"). The field numbers below are
//! the ones of `opentelemetry/proto/trace/v1/trace.proto`,
//! `.../common/v1/common.proto`, `.../resource/v1/resource.proto` and
//! `.../collector/trace/v1/trace_service.proto`; docs/ARCHITECTURE.md says why these are
//! derived here rather than taken from the `opentelemetry-proto` crate.
//!
//! Strings and ids are [`Bytes`] slices of the request body (protobuf's `string` and
//! `bytes` share one wire type): decoding a 100-span export then allocates per list, not
//! per key and value, which was a third of its cost. Their UTF-8 is checked where the
//! mapping reads them ([`text`]).
//!
//! OTLP/JSON differs from the protobuf JSON mapping in three ways the helpers at the end
//! implement: trace and span ids are hex (not base64), enums are integers, and 64-bit
//! integers may come as strings or numbers. Keys are lowerCamelCase.

use bytes::Bytes;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    #[serde(deserialize_with = "seq_or_null")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `opentelemetry.proto.trace.v1.ResourceSpans`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    #[serde(deserialize_with = "seq_or_null")]
    pub scope_spans: Vec<ScopeSpans>,
}

/// `opentelemetry.proto.resource.v1.Resource`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    #[serde(deserialize_with = "seq_or_null")]
    pub attributes: Vec<KeyValue>,
}

/// `opentelemetry.proto.trace.v1.ScopeSpans`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ScopeSpans {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    #[serde(deserialize_with = "seq_or_null")]
    pub spans: Vec<Span>,
}

/// `opentelemetry.proto.common.v1.InstrumentationScope`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InstrumentationScope {
    #[prost(bytes = "bytes", tag = "1")]
    #[serde(deserialize_with = "text_or_null")]
    pub name: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    #[serde(deserialize_with = "text_or_null")]
    pub version: Bytes,
}

/// `opentelemetry.proto.trace.v1.Span`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Span {
    #[prost(bytes = "bytes", tag = "1")]
    #[serde(deserialize_with = "hex_id")]
    pub trace_id: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    #[serde(deserialize_with = "hex_id")]
    pub span_id: Bytes,
    #[prost(bytes = "bytes", tag = "4")]
    #[serde(deserialize_with = "hex_id")]
    pub parent_span_id: Bytes,
    #[prost(bytes = "bytes", tag = "5")]
    #[serde(deserialize_with = "text_or_null")]
    pub name: Bytes,
    #[prost(int32, tag = "6")]
    #[serde(deserialize_with = "enum_int")]
    pub kind: i32,
    #[prost(fixed64, tag = "7")]
    #[serde(deserialize_with = "int64_u")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    #[serde(deserialize_with = "int64_u")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    #[serde(deserialize_with = "seq_or_null")]
    pub attributes: Vec<KeyValue>,
    #[prost(message, repeated, tag = "11")]
    #[serde(deserialize_with = "seq_or_null")]
    pub events: Vec<SpanEvent>,
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

/// `opentelemetry.proto.trace.v1.Span.Event`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SpanEvent {
    #[prost(fixed64, tag = "1")]
    #[serde(deserialize_with = "int64_u")]
    pub time_unix_nano: u64,
    #[prost(bytes = "bytes", tag = "2")]
    #[serde(deserialize_with = "text_or_null")]
    pub name: Bytes,
    #[prost(message, repeated, tag = "3")]
    #[serde(deserialize_with = "seq_or_null")]
    pub attributes: Vec<KeyValue>,
}

/// `opentelemetry.proto.trace.v1.Status`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Status {
    #[prost(bytes = "bytes", tag = "2")]
    #[serde(deserialize_with = "text_or_null")]
    pub message: Bytes,
    /// `STATUS_CODE_UNSET` 0, `STATUS_CODE_OK` 1, `STATUS_CODE_ERROR` 2.
    #[prost(int32, tag = "3")]
    #[serde(deserialize_with = "enum_int")]
    pub code: i32,
}

/// `Status.code` for an error.
pub const STATUS_CODE_ERROR: i32 = 2;

/// `opentelemetry.proto.common.v1.KeyValue`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyValue {
    #[prost(bytes = "bytes", tag = "1")]
    #[serde(deserialize_with = "text_or_null")]
    pub key: Bytes,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// `opentelemetry.proto.common.v1.AnyValue`: a oneof, `None` when empty.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<Value>,
}

/// The `value` oneof of [`AnyValue`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(bytes = "bytes", tag = "1")]
    String(Bytes),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
    #[prost(message, tag = "5")]
    Array(ArrayValue),
    #[prost(message, tag = "6")]
    Kvlist(KeyValueList),
    #[prost(bytes = "bytes", tag = "7")]
    Bytes(Bytes),
}

/// `opentelemetry.proto.common.v1.ArrayValue`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    #[serde(deserialize_with = "seq_or_null")]
    pub values: Vec<AnyValue>,
}

/// `opentelemetry.proto.common.v1.KeyValueList`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct KeyValueList {
    #[prost(message, repeated, tag = "1")]
    #[serde(deserialize_with = "seq_or_null")]
    pub values: Vec<KeyValue>,
}

/// `opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceResponse {
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<ExportTracePartialSuccess>,
}

/// `opentelemetry.proto.collector.trace.v1.ExportTracePartialSuccess`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTracePartialSuccess {
    #[prost(int64, tag = "1")]
    pub rejected_spans: i64,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error (no `details`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

// ---- OTLP/JSON ----------------------------------------------------------------------

/// An `AnyValue` object: `{"stringValue":"x"}`, `{"intValue":"3"}`, `{"arrayValue":
/// {"values":[…]}}`, …; `{}` (or only unknown keys) is an empty value.
impl<'de> Deserialize<'de> for AnyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an AnyValue object")
            }
            fn visit_unit<E: de::Error>(self) -> Result<AnyValue, E> {
                Ok(AnyValue { value: None })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<AnyValue, A::Error> {
                let mut value = None;
                while let Some(k) = m.next_key::<AnyKey>()? {
                    let v = match k {
                        AnyKey::StringValue => m
                            .next_value::<Option<String>>()?
                            .map(|s| Value::String(s.into())),
                        AnyKey::BoolValue => m.next_value::<Option<bool>>()?.map(Value::Bool),
                        AnyKey::IntValue => m.next_value::<Int64>()?.0.map(Value::Int),
                        AnyKey::DoubleValue => m.next_value::<Double>()?.0.map(Value::Double),
                        AnyKey::ArrayValue => {
                            m.next_value::<Option<ArrayValue>>()?.map(Value::Array)
                        }
                        AnyKey::KvlistValue => {
                            m.next_value::<Option<KeyValueList>>()?.map(Value::Kvlist)
                        }
                        AnyKey::BytesValue => {
                            m.next_value::<Base64>()?.0.map(|b| Value::Bytes(b.into()))
                        }
                        AnyKey::Other => {
                            m.next_value::<de::IgnoredAny>()?;
                            None
                        }
                    };
                    if v.is_some() {
                        value = v;
                    }
                }
                Ok(AnyValue { value })
            }
        }
        d.deserialize_any(V)
    }
}

/// The keys of an `AnyValue` object (any other is ignored).
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum AnyKey {
    StringValue,
    BoolValue,
    IntValue,
    DoubleValue,
    ArrayValue,
    KvlistValue,
    BytesValue,
    #[serde(other)]
    Other,
}

fn seq_or_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

fn text_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default().into())
}

/// A trace or span id: hex in OTLP/JSON (not base64), any case; `""` or `null` is none.
fn hex_id<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Bytes;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an id as a hex string")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Bytes, E> {
            decode_hex(s)
                .map(Bytes::from)
                .ok_or_else(|| E::custom(format!("id \"{s}\" is not hex")))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Bytes, E> {
            Ok(Bytes::new())
        }
    }
    d.deserialize_any(V)
}

/// Hex digits (any case) to bytes; `None` for an odd count or a non-hex digit.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let digits = s.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    digits
        .chunks_exact(2)
        .map(|p| Some((nibble(p[0])? << 4) | nibble(p[1])?))
        .collect()
}

/// An enum: an integer as OTLP/JSON requires (the name is accepted too, as the protobuf
/// JSON mapping writes it: `"STATUS_CODE_ERROR"`, `"SPAN_KIND_CLIENT"`).
fn enum_int<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = i32;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an enum as an integer")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i32, E> {
            i32::try_from(v).map_err(|_| E::custom(format!("enum value {v} out of range")))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i32, E> {
            i32::try_from(v).map_err(|_| E::custom(format!("enum value {v} out of range")))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i32, E> {
            Ok(match v {
                "STATUS_CODE_OK" | "SPAN_KIND_INTERNAL" => 1,
                "STATUS_CODE_ERROR" | "SPAN_KIND_SERVER" => 2,
                "SPAN_KIND_CLIENT" => 3,
                "SPAN_KIND_PRODUCER" => 4,
                "SPAN_KIND_CONSUMER" => 5,
                _ => 0,
            })
        }
        fn visit_unit<E: de::Error>(self) -> Result<i32, E> {
            Ok(0)
        }
    }
    d.deserialize_any(V)
}

/// A `fixed64` time: a number or a decimal string; `null` is 0.
fn int64_u<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = Int64::deserialize(d)?.0.unwrap_or(0);
    u64::try_from(v).map_err(|_| de::Error::custom(format!("time {v} is negative")))
}

/// A 64-bit integer as OTLP/JSON sends it: a number or a decimal string.
struct Int64(Option<i64>);

impl<'de> Deserialize<'de> for Int64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 64-bit integer (a number or a decimal string)")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int64, E> {
                Ok(Int64(Some(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int64, E> {
                // fixed64 times beyond i64 are past year 2262: refused as out of range.
                i64::try_from(v)
                    .map(|v| Int64(Some(v)))
                    .map_err(|_| E::custom(format!("integer {v} out of range")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Int64, E> {
                if v.fract() == 0.0 && v.abs() < 9.2e18 {
                    Ok(Int64(Some(v as i64)))
                } else {
                    Err(E::custom(format!("{v} is not a 64-bit integer")))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Int64, E> {
                v.parse::<i64>()
                    .map(|v| Int64(Some(v)))
                    .map_err(|_| E::custom(format!("\"{v}\" is not a 64-bit integer")))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Int64, E> {
                Ok(Int64(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A double: a number, or `"NaN"`, `"Infinity"`, `"-Infinity"` as the JSON mapping
/// writes those.
struct Double(Option<f64>);

impl<'de> Deserialize<'de> for Double {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Double;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Double, E> {
                Ok(Double(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Double, E> {
                Ok(Double(Some(v as f64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Double, E> {
                Ok(Double(Some(v as f64)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Double, E> {
                match v {
                    "NaN" => Ok(Double(Some(f64::NAN))),
                    "Infinity" => Ok(Double(Some(f64::INFINITY))),
                    "-Infinity" => Ok(Double(Some(f64::NEG_INFINITY))),
                    _ => v
                        .parse::<f64>()
                        .map(|v| Double(Some(v)))
                        .map_err(|_| E::custom(format!("\"{v}\" is not a number"))),
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<Double, E> {
                Ok(Double(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// `bytesValue`: base64, as in the protobuf JSON mapping (only ids are hex).
struct Base64(Option<Vec<u8>>);

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine;
        let Some(s) = Option::<std::borrow::Cow<'de, str>>::deserialize(d)? else {
            return Ok(Base64(None));
        };
        let engine = base64::engine::general_purpose::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let url = base64::engine::general_purpose::GeneralPurpose::new(
            &base64::alphabet::URL_SAFE,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        engine
            .decode(s.as_bytes())
            .or_else(|_| url.decode(s.as_bytes()))
            .map(|b| Base64(Some(b)))
            .map_err(|_| de::Error::custom("bytesValue is not base64"))
    }
}

/// A `string` field as text. Protobuf requires UTF-8; a producer's invalid bytes are
/// replaced with U+FFFD rather than failing the export.
#[inline]
pub fn text(b: &Bytes) -> std::borrow::Cow<'_, str> {
    // `from_utf8` first: the lossy decoder's chunking is several times slower on the
    // valid text that is nearly all there is.
    match std::str::from_utf8(b) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(b),
    }
}
