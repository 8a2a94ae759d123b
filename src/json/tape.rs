//! simd-json's flat tape, shared by the two readers of inbound JSON: the client-message
//! parser (in `protocol`) and the publish-body validator (in `ingest`).
//!
//! A WebSocket `publish` carries its events inside a client message, and ingest
//! validates them straight from that message's tape: so the tape, the reusable parse
//! buffers and the "batch of values" type both sides pass around live below both, here.
//!
//! - [`JsonBuffers`] parses in place (simd-json unescapes strings over its input), after
//!   keeping a copy of the input as sent, and keeps every allocation for the next parse.
//! - [`Events`] is a batch cut out of a tape: the nodes, where each value starts, and
//!   enough to find each object's bytes as sent ([`Events::object_bytes`]). The tape has
//!   no offsets, but every string on it points into the parsed buffer at the string's
//!   own position, so an object's first key locates its `{`, and its `}` is the last
//!   byte before the next value's `{` (or the container's end), whitespace and a comma
//!   aside. Every step is cross-checked against the copy: an unexpected byte means "not
//!   located", never a wrong slice.
//! - [`TapeWriter`] prints a tape value back as compact JSON, byte for byte as
//!   simd-json's own serializer does, so bytes do not depend on the path that made them.

use super::scan::{find_byte, last_non_ws};
use super::write::{write_f64_stored, write_i64, write_str, write_u64};
use simd_json::{Node, StaticNode, Tape};
use std::fmt;

/// How many tape nodes the value at `node` occupies: itself and everything inside it.
pub fn span(node: Option<&Node<'_>>) -> usize {
    match node {
        Some(Node::Object { count, .. } | Node::Array { count, .. }) => count + 1,
        _ => 1,
    }
}

/// How the values of an [`Events`] sit in the input, which says where each one ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Layout {
    /// Not known: no value is located.
    #[default]
    Unknown,
    /// Comma-separated in one container (or a lone value); `ends[0]` is an offset whose
    /// last non-blank byte before it is the last value's `}`.
    Sequence,
    /// One per line; `ends[i]` is where value `i`'s line ends.
    Lines,
}

/// A parsed batch of values, not yet interpreted: simd-json tape nodes borrowing from
/// the parsed buffer, the node index where each value starts, and the input as sent.
#[derive(Debug, Default)]
pub struct Events<'a> {
    nodes: Vec<Node<'a>>,
    starts: Vec<usize>,
    raw: Vec<u8>,
    /// Address of the parsed buffer: a tape string's address minus this is its offset.
    base: usize,
    layout: Layout,
    ends: Vec<usize>,
    /// Number tokens masked before parsing (`(offset, len)` in `raw`, in order): the
    /// tape holds a placeholder `0` for each (see [`crate::json::numbers`]).
    masked: Vec<(usize, usize)>,
}

/// Whether a value of an [`Events`] holds a masked out-of-range number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Masked<'e> {
    /// No: its tape is the value as sent.
    No,
    /// Yes, and these are its bytes as sent (from its `{` to its `}`).
    Located(&'e [u8]),
    /// Perhaps: the batch has masked numbers and this value was not located.
    Unlocated,
}

impl<'a> Events<'a> {
    /// How many values the batch holds.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The whole tape the values are cut from.
    pub fn nodes(&self) -> &[Node<'a>] {
        &self.nodes
    }

    /// The node index where each value starts, in order.
    pub fn starts(&self) -> &[usize] {
        &self.starts
    }

    /// Forgets where the values' bytes are, so every [`Events::object_bytes`] is `None`
    /// (a reader then works from the tape alone; tests and fuzzing compare the two).
    pub fn compact(&mut self) {
        self.layout = Layout::Unknown;
    }

    /// The bytes of value `i` as sent, from its `{` to its `}`, when it is a non-empty
    /// object the parse could locate.
    pub fn object_bytes(&self, i: usize) -> Option<&[u8]> {
        let open = self.open_of(*self.starts.get(i)?)?;
        let limit = match self.layout {
            Layout::Unknown => return None,
            Layout::Lines => *self.ends.get(i)?,
            Layout::Sequence => match self.starts.get(i + 1) {
                // This value ends at the comma before the next one's `{`.
                Some(&next) => match last_non_ws(&self.raw, self.open_of(next)?)? {
                    (comma, b',') => comma,
                    _ => return None,
                },
                None => *self.ends.first()?,
            },
        };
        match last_non_ws(&self.raw, limit)? {
            (close, b'}') if open < close => self.raw.get(open..=close),
            _ => None,
        }
    }

    /// Whether value `i` holds a masked number, and if so its bytes as sent: the
    /// placeholder on the tape must then be neither stored nor interpreted.
    pub fn masked(&self, i: usize) -> Masked<'_> {
        if self.masked.is_empty() {
            return Masked::No;
        }
        let Some(object) = self.object_bytes(i) else {
            return Masked::Unlocated;
        };
        let start = (object.as_ptr() as usize).wrapping_sub(self.raw.as_ptr() as usize);
        let end = start + object.len();
        if self
            .masked
            .iter()
            .any(|&(at, len)| start <= at && at + len <= end)
        {
            Masked::Located(object)
        } else {
            Masked::No
        }
    }

    /// The offset of the `{` that opens the object at `nodes[at]`, found from its first
    /// key.
    fn open_of(&self, at: usize) -> Option<usize> {
        let Some(&Node::Object { len, .. }) = self.nodes.get(at) else {
            return None;
        };
        if len == 0 {
            return None;
        }
        let Some(Node::String(key)) = self.nodes.get(at + 1) else {
            return None;
        };
        let quote = offset_of(key, self.base, self.raw.len())?.checked_sub(1)?;
        if self.raw.get(quote) != Some(&b'"') {
            return None;
        }
        match last_non_ws(&self.raw, quote)? {
            (open, b'{') => Some(open),
            _ => None,
        }
    }
}

/// The offset of `s` in the parsed buffer that started at address `base`, when `s`
/// points into it (simd-json's in-place strings do).
fn offset_of(s: &str, base: usize, len: usize) -> Option<usize> {
    let off = (s.as_ptr() as usize).checked_sub(base)?;
    (off + s.len() <= len).then_some(off)
}

/// Largest tape [`JsonBuffers`] keeps between batches (24 bytes a node: 1.5 MiB), ...
const KEEP_NODES: usize = 64 * 1024;
/// ... value-start and line-end lists (a few thousand values a batch is plenty) ...
const KEEP_EVENTS: usize = 8 * 1024;
/// ... and input copy.
const KEEP_RAW_BYTES: usize = 1 << 20;

/// Everything a parse allocates, kept from one batch to the next: simd-json's buffers,
/// the tape, the value starts, and the copy of the input that located values are read
/// from. A steady producer then allocates nothing per batch but its events. The server
/// holds one; hand each [`Events`] back through [`JsonBuffers::recycle`] when done.
#[derive(Default)]
pub struct JsonBuffers {
    simd: simd_json::Buffers,
    nodes: Vec<Node<'static>>,
    line: Vec<Node<'static>>,
    starts: Vec<usize>,
    raw: Vec<u8>,
    ends: Vec<usize>,
    /// Address of the buffer last parsed: a tape string's address minus this is its
    /// offset in `raw`.
    base: usize,
    /// The last parse failed on a number simd-json cannot hold: `raw` is that input.
    number_failed: bool,
    /// [`JsonBuffers::mask_numbers`] masked the buffer for the next parse; `raw` keeps
    /// the input as sent, and `masked` where the masks are.
    remasked: bool,
    masked: Vec<(usize, usize)>,
}

impl fmt::Debug for JsonBuffers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonBuffers")
            .field("tape_capacity", &self.nodes.capacity())
            .field("raw_capacity", &self.raw.capacity())
            .finish()
    }
}

impl JsonBuffers {
    /// Keeps `buf` as sent, then remembers where it lives.
    fn keep_input(&mut self, buf: &[u8]) {
        self.number_failed = false;
        self.base = buf.as_ptr() as usize;
        if std::mem::take(&mut self.remasked) && self.raw.len() == buf.len() {
            // The masked retry of the last input: `raw` already holds it as sent.
            return;
        }
        self.masked.clear();
        self.raw.clear();
        self.raw.extend_from_slice(buf);
    }

    /// After a parse of `buf` failed on a number simd-json cannot hold (SPEC §2 allows
    /// any), restores `buf` as sent and masks each such number
    /// ([`crate::json::numbers::mask_out_of_range`]); true when the caller should parse
    /// `buf` again. The next parse's [`Events`] then read the numbers as sent from the
    /// kept copy and say where they are ([`Events::masked`]). False, touching nothing,
    /// for any other failure: the cold path costs nothing unless a number caused it.
    pub fn mask_numbers(&mut self, buf: &mut [u8]) -> bool {
        if !std::mem::take(&mut self.number_failed) || self.raw.len() != buf.len() {
            return false;
        }
        buf.copy_from_slice(&self.raw);
        self.masked.clear();
        super::numbers::mask_out_of_range(buf, &mut self.masked);
        self.remasked = !self.masked.is_empty();
        self.remasked
    }

    /// Notes whether a failed parse is one [`JsonBuffers::mask_numbers`] can retry.
    fn failed(&mut self, e: &simd_json::Error) {
        self.number_failed = *e.error() == simd_json::ErrorType::InvalidNumber;
    }

    /// Parses `buf` in place into a tape, reusing the last tape's allocation, after
    /// copying `buf` as sent.
    pub fn parse<'a>(&mut self, buf: &'a mut [u8]) -> Result<Vec<Node<'a>>, simd_json::Error> {
        self.keep_input(buf);
        let mut tape = Tape(std::mem::take(&mut self.nodes)).reset();
        match simd_json::fill_tape(buf, &mut self.simd, &mut tape) {
            Ok(()) => Ok(tape.0),
            Err(e) => {
                self.nodes = tape.reset().0;
                self.failed(&e);
                Err(e)
            }
        }
    }

    /// Parses each non-blank line of `buf` as one value (NDJSON), in place; the lines'
    /// tapes are concatenated. A line that does not parse fails the whole, with its
    /// index among the non-blank lines.
    pub fn parse_lines<'a>(
        &mut self,
        buf: &'a mut [u8],
    ) -> Result<Events<'a>, (usize, simd_json::Error)> {
        self.keep_input(buf);
        let mut nodes = Tape(std::mem::take(&mut self.nodes)).reset().0;
        let mut starts = std::mem::take(&mut self.starts);
        starts.clear();
        let mut ends = std::mem::take(&mut self.ends);
        ends.clear();
        // One tape reused for every line; its nodes are appended to the batch's.
        let mut line_tape = Tape(std::mem::take(&mut self.line)).reset();
        let mut rest: &'a mut [u8] = buf;
        let mut from = 0;
        let mut failed = None;
        loop {
            let n = find_byte(rest, b'\n').unwrap_or(rest.len());
            let (line, tail) = std::mem::take(&mut rest).split_at_mut(n);
            let line_end = from + n;
            from = line_end + 1;
            if !line.iter().all(u8::is_ascii_whitespace) {
                if let Err(e) = simd_json::fill_tape(line, &mut self.simd, &mut line_tape) {
                    failed = Some((starts.len(), e));
                    break;
                }
                starts.push(nodes.len());
                ends.push(line_end);
                nodes.extend_from_slice(&line_tape.0);
            }
            match tail.split_first_mut() {
                Some((_newline, after)) => rest = after,
                None => break,
            }
        }
        if line_tape.0.capacity() <= KEEP_NODES {
            self.line = line_tape.reset().0;
        }
        let events = Events {
            nodes,
            starts,
            raw: std::mem::take(&mut self.raw),
            base: self.base,
            layout: Layout::Lines,
            ends,
            masked: std::mem::take(&mut self.masked),
        };
        match failed {
            Some(e) => {
                let mut events = events;
                // Kept whatever its size: a masked retry restores the input from it.
                let raw = std::mem::take(&mut events.raw);
                self.recycle(events);
                self.raw = raw;
                self.failed(&e.1);
                Err(e)
            }
            None => Ok(events),
        }
    }

    /// Takes back a tape that is no longer needed.
    pub fn recycle_nodes(&mut self, nodes: Vec<Node<'_>>) {
        if nodes.capacity() > self.nodes.capacity() && nodes.capacity() <= KEEP_NODES {
            self.nodes = Tape(nodes).reset().0;
        }
    }

    /// Takes back a batch's allocations once it is read (or refused). What one unusually
    /// large message grew is let go instead, so a spike does not pin memory.
    pub fn recycle(&mut self, events: Events<'_>) {
        self.recycle_nodes(events.nodes);
        if events.starts.capacity() <= KEEP_EVENTS {
            self.starts = events.starts;
        }
        if events.ends.capacity() <= KEEP_EVENTS {
            self.ends = events.ends;
        }
        if events.raw.capacity() <= KEEP_RAW_BYTES {
            self.raw = events.raw;
        }
        if events.masked.capacity() <= KEEP_EVENTS {
            self.masked = events.masked;
            self.masked.clear();
        }
    }

    /// The elements of the array at `nodes[at]` as a batch; `None` when that node is not
    /// an array. `end` is the offset in the parsed buffer that the array's value ends
    /// before (its `]` is the last non-blank byte before it), when the caller knows it.
    pub fn array_events<'a>(
        &mut self,
        nodes: Vec<Node<'a>>,
        at: usize,
        end: Option<usize>,
    ) -> Option<Events<'a>> {
        let Some(&Node::Array { len, .. }) = nodes.get(at) else {
            return None;
        };
        let mut starts = std::mem::take(&mut self.starts);
        starts.clear();
        // `len` is bounded by the tape, which is bounded by the input.
        starts.reserve(len);
        let mut i = at + 1;
        for _ in 0..len {
            starts.push(i);
            i += span(nodes.get(i));
        }
        let tail = end
            .and_then(|e| last_non_ws(&self.raw, e))
            .and_then(|(close, b)| (b == b']').then_some(close));
        Some(self.events(nodes, starts, tail))
    }

    /// A batch of one: the value at `nodes[at]`, which ends before offset `end` of the
    /// parsed buffer when the caller knows where.
    pub fn value_event<'a>(
        &mut self,
        nodes: Vec<Node<'a>>,
        at: usize,
        end: Option<usize>,
    ) -> Events<'a> {
        let mut starts = std::mem::take(&mut self.starts);
        starts.clear();
        starts.push(at);
        self.events(nodes, starts, end)
    }

    /// Where the value of the top-level member whose span ends before `nodes[after]`
    /// ends in the parsed buffer: at the comma before the next member's key, or at the
    /// enclosing object's `}` when it was the last member.
    pub fn member_end(&self, nodes: &[Node<'_>], after: usize) -> Option<usize> {
        match nodes.get(after) {
            Some(Node::String(key)) => {
                let quote = offset_of(key, self.base, self.raw.len())?.checked_sub(1)?;
                match last_non_ws(&self.raw, quote)? {
                    (comma, b',') => Some(comma),
                    _ => None,
                }
            }
            _ => match last_non_ws(&self.raw, self.raw.len())? {
                (close, b'}') => Some(close),
                _ => None,
            },
        }
    }

    fn events<'a>(
        &mut self,
        nodes: Vec<Node<'a>>,
        starts: Vec<usize>,
        tail: Option<usize>,
    ) -> Events<'a> {
        let mut ends = std::mem::take(&mut self.ends);
        ends.clear();
        ends.extend(tail);
        Events {
            nodes,
            starts,
            raw: std::mem::take(&mut self.raw),
            base: self.base,
            layout: if tail.is_some() {
                Layout::Sequence
            } else {
                Layout::Unknown
            },
            ends,
            masked: std::mem::take(&mut self.masked),
        }
    }
}

/// Writes tape values as compact JSON, in the producer's key order, without recursion
/// (nesting depth is client-controlled): open containers are kept on a stack that lives
/// as long as the writer, so writing allocates nothing once it has grown.
#[derive(Debug, Clone, Default)]
pub struct TapeWriter {
    /// Per open container: whether it is an object, and how many values it still holds.
    stack: Vec<(bool, usize)>,
}

impl TapeWriter {
    /// Writes the one JSON value that `nodes` holds (exactly its span).
    pub fn write_value(&mut self, out: &mut Vec<u8>, nodes: &[Node<'_>]) {
        let stack = &mut self.stack;
        stack.clear();
        let mut i = 0;
        while let Some(node) = nodes.get(i) {
            i += 1;
            match *node {
                Node::String(s) => write_str(out, s),
                Node::Static(n) => write_static(out, n),
                Node::Object { len, .. } => {
                    out.push(b'{');
                    if len > 0 {
                        stack.push((true, len));
                        i = write_key(out, nodes, i);
                        continue;
                    }
                    out.push(b'}');
                }
                Node::Array { len, .. } => {
                    out.push(b'[');
                    if len > 0 {
                        stack.push((false, len));
                        continue;
                    }
                    out.push(b']');
                }
            }
            // A value is complete: close the containers it completes, then separate the
            // next member of the innermost one still open.
            while let Some(top) = stack.last_mut() {
                top.1 -= 1;
                if top.1 > 0 {
                    out.push(b',');
                    if top.0 {
                        i = write_key(out, nodes, i);
                    }
                    break;
                }
                out.push(if top.0 { b'}' } else { b']' });
                stack.pop();
            }
        }
    }
}

/// Writes the object key at `nodes[i]` and its colon; returns the value's index.
fn write_key(out: &mut Vec<u8>, nodes: &[Node<'_>], i: usize) -> usize {
    if let Some(Node::String(k)) = nodes.get(i) {
        write_str(out, k);
    }
    out.push(b':');
    i + 1
}

/// Writes a scalar as simd-json prints it (floats in ryu's shortest form).
pub fn write_static(out: &mut Vec<u8>, n: StaticNode) {
    match n {
        StaticNode::I64(v) => write_i64(out, v),
        StaticNode::U64(v) => write_u64(out, v),
        StaticNode::F64(v) => write_f64_stored(out, v),
        StaticNode::Null => out.extend_from_slice(b"null"),
        StaticNode::Bool(true) => out.extend_from_slice(b"true"),
        StaticNode::Bool(false) => out.extend_from_slice(b"false"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simd_json::prelude::Writable;

    /// The tape writer must print values byte for byte as simd-json's own serializer
    /// does (objects here have at most 32 keys, below which simd-json keeps key order).
    #[test]
    fn tape_writer_matches_simd_json() {
        let docs = [
            r#"{"a":[1,-2,3.5,1e300,-0.0,0.1,1e-7,18446744073709551615,-9223372036854775808]}"#,
            r#"{"s":"q\"b\\n\n\t\u0001\u001f\u007f\u2028é😀/","e":"","x":[[],{},[{}],{"k":[null,true,false]}]}"#,
            r#"{"deep":[[[[[{"a":{"b":{"c":[1,[2,[3]]]}}}]]]]],"z":{"y":{}}}"#,
            r#"{"dup":1,"dup":2,"n":{"m":1,"m":[2]}}"#,
            r#"{"f":[12.25,100.0,0.001,0.005,999999999999.999,123456.789,0.3,2.675,1.005,5e-324,1.7976931348623157e308]}"#,
            r#"[1,"x",{}]"#,
            "7",
        ];
        let mut w = TapeWriter::default();
        for doc in docs {
            let mut a = doc.as_bytes().to_vec();
            let want = simd_json::to_borrowed_value(&mut a).unwrap().encode();
            let mut b = doc.as_bytes().to_vec();
            let tape = simd_json::to_tape(&mut b).unwrap();
            let mut got = Vec::new();
            w.write_value(&mut got, &tape.0);
            assert_eq!(String::from_utf8(got).unwrap(), want, "{doc}");
        }
    }

    fn located(events: &Events<'_>) -> Vec<Option<String>> {
        (0..events.len())
            .map(|i| {
                events
                    .object_bytes(i)
                    .map(|b| String::from_utf8_lossy(b).into_owned())
            })
            .collect()
    }

    fn array(doc: &str) -> Vec<Option<String>> {
        let mut bufs = JsonBuffers::default();
        let mut buf = doc.as_bytes().to_vec();
        let end = buf.len();
        let nodes = bufs.parse(&mut buf).unwrap();
        let events = match nodes.first() {
            Some(Node::Array { .. }) => bufs.array_events(nodes, 0, Some(end)).unwrap(),
            _ => bufs.value_event(nodes, 0, Some(end)),
        };
        located(&events)
    }

    #[test]
    fn objects_are_located_as_sent() {
        assert_eq!(
            array(r#"[ {"a":1} , { "b" : "x\"}" } ,{"c":{"d":[1,{}]}}]"#),
            vec![
                Some(r#"{"a":1}"#.into()),
                Some(r#"{ "b" : "x\"}" }"#.into()),
                Some(r#"{"c":{"d":[1,{}]}}"#.into()),
            ]
        );
        assert_eq!(
            array(r#" {"t\u0079pe":"é","n":1e3} "#),
            vec![Some(r#"{"t\u0079pe":"é","n":1e3}"#.into())]
        );
        assert_eq!(
            array("[{\"a\":1},{\n\"b\":2}]"),
            vec![Some("{\"a\":1}".into()), Some("{\n\"b\":2}".into())]
        );
        // An empty object has no key to find it by; neither can its neighbour end.
        assert_eq!(array(r#"[{"a":1},{}]"#), vec![None, None]);
        assert_eq!(
            array(r#"[{},{"a":1}]"#),
            vec![None, Some(r#"{"a":1}"#.into())]
        );
        assert_eq!(array("[1]"), vec![None]);
        assert_eq!(array("[]"), Vec::<Option<String>>::new());
    }

    #[test]
    fn lines_are_located_and_a_bad_line_is_named() {
        let mut bufs = JsonBuffers::default();
        let mut buf = b"{\"a\":1}\r\n\n  {\"b\":[2]} \n{\"c\":3}".to_vec();
        let mut events = bufs.parse_lines(&mut buf).unwrap();
        assert_eq!(
            located(&events),
            vec![
                Some("{\"a\":1}".into()),
                Some("{\"b\":[2]}".into()),
                Some("{\"c\":3}".into())
            ]
        );
        events.compact();
        assert_eq!(located(&events), vec![None, None, None]);
        bufs.recycle(events);
        let mut buf = b"{\"a\":1}\n\n{\"b\":\n{}".to_vec();
        assert_eq!(
            bufs.parse_lines(&mut buf).map(|e| e.len()).unwrap_err().0,
            1
        );
    }

    #[test]
    fn member_ends() {
        let mut bufs = JsonBuffers::default();
        let mut buf = br#"{"events":[{"a":1}] , "x":1, "event" : {"b":2} }"#.to_vec();
        let nodes = bufs.parse(&mut buf).unwrap();
        // "events" value at 2 spans 4 nodes; the next key is at 6.
        assert_eq!(bufs.member_end(&nodes, 2 + span(nodes.get(2))), Some(20));
        // The last member ends at the object's `}`.
        let last = nodes.len();
        assert_eq!(bufs.member_end(&nodes, last), Some(47));
        assert_eq!(span(nodes.get(2)), 4);
        assert_eq!(span(None), 1);
    }

    #[test]
    fn buffers_are_reused_and_a_huge_batch_does_not_pin_them() {
        let mut bufs = JsonBuffers::default();
        for body in [r#"[{"a":1},{"b":2}]"#, r#"{"c":3}"#] {
            let mut buf = body.as_bytes().to_vec();
            let end = buf.len();
            let nodes = bufs.parse(&mut buf).unwrap();
            let events = bufs.value_event(nodes, 0, Some(end));
            bufs.recycle(events);
            assert!(bufs.nodes.capacity() > 0 && bufs.raw.capacity() > 0);
        }
        let one = r#"{"t":"T","x":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]}"#;
        let mut buf = format!("[{}]", vec![one; 10_000].join(",")).into_bytes();
        let end = buf.len();
        let nodes = bufs.parse(&mut buf).unwrap();
        let events = bufs.array_events(nodes, 0, Some(end)).unwrap();
        assert_eq!(events.len(), 10_000);
        assert!(events.object_bytes(9_999).is_some());
        bufs.recycle(events);
        assert!(bufs.nodes.capacity() <= KEEP_NODES);
        assert!(bufs.starts.capacity() <= KEEP_EVENTS);
        assert!(bufs.raw.capacity() <= KEEP_RAW_BYTES);
        // And the next batch still parses.
        let mut buf = one.as_bytes().to_vec();
        assert!(bufs.parse(&mut buf).is_ok());
    }

    #[test]
    fn nothing_panics_on_any_bytes() {
        let doc = r#"[{"a":1}, {"b":"}"} ,{"c":[{}]}]"#;
        for n in 0..=doc.len() {
            for mutate in [None, Some(b'{'), Some(b'"'), Some(b'\n')] {
                let mut buf = doc.as_bytes()[..n].to_vec();
                if let (Some(c), Some(last)) = (mutate, buf.last_mut()) {
                    *last = c;
                }
                let end = buf.len();
                let mut bufs = JsonBuffers::default();
                if let Ok(nodes) = bufs.parse(&mut buf) {
                    let _ = bufs.member_end(&nodes, 1);
                    if let Some(events) = bufs.array_events(nodes, 0, Some(end)) {
                        let _ = located(&events);
                    }
                }
                let mut buf = doc.as_bytes()[..n].to_vec();
                if let Ok(events) = bufs.parse_lines(&mut buf) {
                    let _ = located(&events);
                }
            }
        }
    }
}
