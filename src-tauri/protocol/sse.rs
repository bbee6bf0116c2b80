//! Server-sent events: an incremental parser for upstream streams and an encoder for
//! the frames the gateway writes to clients.
//!
//! The parser follows the WHATWG "event stream interpretation" rules, because upstreams
//! differ in the details the spec allows: `\r\n`, `\n` or bare `\r` line ends, comments
//! (`: keep-alive`), `data` split over several lines, a single optional space after the
//! colon, a UTF-8 BOM. Network reads split the byte stream anywhere — inside a line, inside
//! a `\r\n` pair, inside a multi-byte UTF-8 character — so the parser keeps the unfinished
//! line as bytes and decodes only complete lines (a line end is ASCII and can never be
//! part of a multi-byte sequence, so a complete line is always complete UTF-8).

use crate::error::{Code, Error, Result};

/// One dispatched event. `event` is `None` for the default type ("message"), which is
/// what OpenAI streams use; Anthropic names every event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
    pub id: Option<String>,
}

/// Upper bound on one event's buffered size. An upstream that never ends a line would
/// otherwise grow the buffer without limit; real events are far below this.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Incremental SSE parser: feed byte chunks as they arrive, collect complete events.
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a leading `\n` in the next chunk belongs to it.
    after_cr: bool,
    /// Only the very first line of the stream may start with a BOM.
    seen_first_line: bool,
    event: Option<String>,
    data: String,
    /// `data` had at least one `data` field (an empty `data:` still dispatches).
    has_data: bool,
    /// The buffer of the last dispatched event's name, for the next one.
    spare_name: Option<String>,
    last_id: Option<String>,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the next chunk; returns the events completed by it, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        self.feed(chunk, &mut |ev| {
            out.push(std::mem::take(ev));
            Ok(())
        })?;
        Ok(out)
    }

    /// Feed the next chunk and hand each event it completes to `f`, in order, without
    /// allocating: the event's buffers are the parser's own, reused for the next one.
    /// An error from `f` stops the reading and is returned.
    pub fn push_each(
        &mut self,
        chunk: &[u8],
        mut f: impl FnMut(&Event) -> Result<()>,
    ) -> Result<()> {
        self.feed(chunk, &mut |ev| f(ev))
    }

    /// The reading behind both: `f` may take what it wants out of the event.
    fn feed(&mut self, chunk: &[u8], f: &mut dyn FnMut(&mut Event) -> Result<()>) -> Result<()> {
        let mut rest = chunk;
        if self.after_cr {
            self.after_cr = false;
            if let [b'\n', tail @ ..] = rest {
                rest = tail;
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, tail) = rest.split_at(pos);
            let was_cr = tail[0] == b'\r';
            rest = &tail[1..];
            if was_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
            if self.line.is_empty() {
                // The whole line is in this chunk (the usual case): read it in place.
                self.process_line(head, f)?;
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                let r = self.process_line(&line, f);
                line.clear();
                self.line = line; // keeps its capacity for the next split line
                r?;
            }
        }
        self.line.extend_from_slice(rest);
        if self.line.len() + self.data.len() > MAX_EVENT_BYTES {
            return Err(Error::new(
                Code::ProviderBadResponse,
                format!("upstream sent a server-sent event larger than {MAX_EVENT_BYTES} bytes"),
            ));
        }
        Ok(())
    }

    /// The stream ended. Per the spec an event without its terminating blank line is
    /// discarded; this reports whether such a partial event was pending, so a caller can
    /// tell a clean end from a truncated one.
    pub fn finish(&mut self) -> bool {
        let pending = !self.line.is_empty() || self.has_data;
        self.line.clear();
        self.data.clear();
        self.has_data = false;
        self.event = None;
        pending
    }

    fn process_line(
        &mut self,
        raw: &[u8],
        f: &mut dyn FnMut(&mut Event) -> Result<()>,
    ) -> Result<()> {
        let mut line = raw;
        if !self.seen_first_line {
            self.seen_first_line = true;
            line = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line);
        }
        // The line is read as bytes: `:` and the field names are ASCII, which never occurs
        // inside a multi-byte UTF-8 sequence, so only values need decoding.
        let Some(&first) = line.first() else {
            return self.dispatch(f);
        };
        if first == b':' {
            return Ok(()); // comment / keep-alive
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"event" => {
                // The last event's name buffer, when the reader left it, is reused.
                let mut name = self.spare_name.take().unwrap_or_default();
                name.clear();
                name.push_str(&text(value));
                self.event = Some(name);
            }
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&text(value));
                self.has_data = true;
            }
            b"id" if !value.contains(&0) => self.last_id = Some(text(value).into_owned()),
            _ => {} // `retry` and unknown fields mean nothing to a proxy
        }
        Ok(())
    }

    fn dispatch(&mut self, f: &mut dyn FnMut(&mut Event) -> Result<()>) -> Result<()> {
        let event = self.event.take().filter(|e| !e.is_empty());
        if !self.has_data {
            return Ok(());
        }
        self.has_data = false;
        let mut ev = Event {
            event,
            data: std::mem::take(&mut self.data),
            id: self.last_id.clone(),
        };
        let r = f(&mut ev);
        // Whatever the reader did not take is kept for the next event.
        self.data = ev.data;
        self.data.clear();
        self.spare_name = ev.event;
        r
    }
}

/// A field value as text: borrowed when it is valid UTF-8 (checked fast), else with
/// U+FFFD for each invalid sequence, as the spec's decoding step says.
fn text(value: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(value) {
        Ok(t) => std::borrow::Cow::Borrowed(t),
        Err(_) => String::from_utf8_lossy(value),
    }
}

/// One frame the gateway writes: an optional event name and the data (usually one JSON
/// document, or OpenAI's `[DONE]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub event: Option<&'static str>,
    pub data: String,
}

impl Frame {
    pub fn data(data: impl Into<String>) -> Self {
        Frame {
            event: None,
            data: data.into(),
        }
    }

    pub fn named(event: &'static str, data: impl Into<String>) -> Self {
        Frame {
            event: Some(event),
            data: data.into(),
        }
    }

    /// Append the wire form (`event: …\ndata: …\n\n`) to `out`. Data containing line
    /// breaks is split over several `data:` lines so that the parser rebuilds it exactly.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let data = self.data.as_bytes();
        out.reserve(data.len() + self.event.map_or(0, str::len) + 16);
        if !data.iter().any(|&b| b == b'\n' || b == b'\r') {
            // One line (all JSON the gateway writes): as it is.
            out.frame_with(self.event, |b| b.extend_from_slice(data));
            return;
        }
        if let Some(e) = self.event {
            write_event_name(out, e);
        }
        let mut lines = self.data.split('\n').peekable();
        while let Some(l) = lines.next() {
            // A bare `\r` would end the line for a parser; JSON never contains one raw.
            let l = l.strip_suffix('\r').unwrap_or(l);
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(l.as_bytes());
            out.push(b'\n');
            if lines.peek().is_none() {
                break;
            }
        }
        out.push(b'\n');
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.data.len() + 32);
        self.write_to(&mut v);
        v
    }
}

/// Where the stream encoders put their frames.
///
/// The gateway gives a byte buffer: each frame goes there in wire form, its JSON
/// serialized straight into it, so that what one batch of events makes is one buffer
/// (one network write) with no frame allocated on the way. Tests give a `Vec<Frame>`,
/// to look at the frames one by one.
pub trait FrameSink {
    /// One frame named `event` (`None`: the default type, as OpenAI streams use) whose
    /// data `write` appends to the buffer it is given. The data must be one line:
    /// JSON as serde_json writes it compactly always is (it escapes line breaks).
    fn frame_with(&mut self, event: Option<&'static str>, write: impl FnOnce(&mut Vec<u8>));

    /// A frame made whole elsewhere (an error frame, `[DONE]`).
    fn frame(&mut self, f: Frame);

    /// A frame whose data is `value` as compact JSON.
    fn json<T: serde::Serialize + ?Sized>(&mut self, event: Option<&'static str>, value: &T) {
        self.frame_with(event, |out| {
            let at = out.len();
            if serde_json::to_writer(&mut *out, value).is_err() {
                // (Our wire types are plain data: not reached.) An empty frame, not
                // half a document.
                out.truncate(at);
            }
        });
    }
}

/// Append `value` as compact JSON text (a string escaped as serde_json escapes it).
/// For the hand-written events, whose values are strings, numbers and JSON values;
/// should one fail to serialize anyway, `null` stands in its place, not half a value.
/// Inlined: it runs for every value of every hand-written event (not inlining it cost
/// ~5 % of a translated Responses request in `protocol_bench`).
#[inline]
pub(crate) fn put_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let at = out.len();
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(at);
        out.extend_from_slice(b"null");
    }
}

/// `event: <name>` and its line end.
fn write_event_name(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
}

impl FrameSink for Vec<u8> {
    fn frame_with(&mut self, event: Option<&'static str>, write: impl FnOnce(&mut Vec<u8>)) {
        if let Some(e) = event {
            write_event_name(self, e);
        }
        self.extend_from_slice(b"data: ");
        let at = self.len();
        write(self);
        debug_assert!(
            !self[at..].iter().any(|&b| b == b'\n' || b == b'\r'),
            "frame data must be one line"
        );
        self.extend_from_slice(b"\n\n");
    }

    fn frame(&mut self, f: Frame) {
        f.write_to(self);
    }
}

impl FrameSink for Vec<Frame> {
    fn frame_with(&mut self, event: Option<&'static str>, write: impl FnOnce(&mut Vec<u8>)) {
        let mut data = Vec::new();
        write(&mut data);
        self.push(Frame {
            event,
            // What the encoders write is JSON text: UTF-8.
            data: String::from_utf8(data).unwrap_or_default(),
        });
    }

    fn frame(&mut self, f: Frame) {
        self.push(f);
    }
}

/// Encode several frames into one buffer (one network write).
pub fn encode_frames(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        f.write_to(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::new();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(p.push(c).unwrap());
        }
        out
    }

    fn ev(event: Option<&str>, data: &str) -> Event {
        Event {
            event: event.map(str::to_owned),
            data: data.to_owned(),
            id: None,
        }
    }

    #[test]
    fn the_byte_sink_writes_what_the_frames_would() {
        fn fill<S: FrameSink>(s: &mut S) {
            s.json(
                Some("message_start"),
                &serde_json::json!({"text": "two\nlines\r\u{e9}", "n": [1, 2]}),
            );
            s.frame_with(None, |b| b.extend_from_slice(br#"{"x":1}"#));
            s.frame(Frame::data("[DONE]"));
        }
        let mut bytes: Vec<u8> = Vec::new();
        fill(&mut bytes);
        let mut frames: Vec<Frame> = Vec::new();
        fill(&mut frames);
        assert_eq!(frames.len(), 3);
        assert_eq!(bytes, encode_frames(&frames));
        let back = parse_all(&[&bytes]);
        assert_eq!(back[0].event.as_deref(), Some("message_start"));
        let v: serde_json::Value = serde_json::from_str(&back[0].data).unwrap();
        assert_eq!(v["text"], "two\nlines\r\u{e9}");
        assert_eq!(back[1], ev(None, r#"{"x":1}"#));
        assert_eq!(back[2], ev(None, "[DONE]"));
    }

    #[test]
    fn parses_named_and_unnamed_events_with_every_line_ending() {
        for nl in ["\n", "\r\n", "\r"] {
            let s = format!(
                "event: ping{nl}data: {{\"type\":\"ping\"}}{nl}{nl}data: a{nl}data: b{nl}{nl}: comment{nl}data:no-space{nl}{nl}"
            );
            assert_eq!(
                parse_all(&[s.as_bytes()]),
                vec![
                    ev(Some("ping"), "{\"type\":\"ping\"}"),
                    ev(None, "a\nb"),
                    ev(None, "no-space")
                ],
                "line ending {nl:?}"
            );
        }
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_end() {
        let out = parse_all(&[b"data: x\r", b"\n\r", b"\n"]);
        assert_eq!(out, vec![ev(None, "x")]);
    }

    #[test]
    fn multibyte_utf8_split_across_chunks_survives() {
        let s = "data: héllo → 世界\n\n".as_bytes();
        let out = parse_all(&[&s[..8], &s[8..14], &s[14..]]);
        assert_eq!(out, vec![ev(None, "héllo → 世界")]);
    }

    #[test]
    fn invalid_utf8_in_a_value_becomes_replacement_characters() {
        let out = parse_all(&[b"event: a\xffb\ndata: x\xc3(y\n\n"]);
        assert_eq!(out, vec![ev(Some("a\u{fffd}b"), "x\u{fffd}(y")]);
    }

    #[test]
    fn event_without_data_is_not_dispatched_and_empty_data_is() {
        let out = parse_all(&[b"event: x\n\ndata:\n\n"]);
        assert_eq!(out, vec![ev(None, "")]);
    }

    #[test]
    fn bom_only_stripped_at_stream_start_and_only_one_space_removed() {
        let out = parse_all(&["\u{feff}data:  two\n\n".as_bytes()]);
        assert_eq!(out, vec![ev(None, " two")]);
    }

    #[test]
    fn id_field_is_kept_and_field_without_colon_is_a_name_with_empty_value() {
        let out = parse_all(&[b"id: 7\ndata\n\n"]);
        assert_eq!(
            out,
            vec![Event {
                event: None,
                data: String::new(),
                id: Some("7".into())
            }]
        );
    }

    #[test]
    fn finish_reports_a_truncated_event() {
        let mut p = Parser::new();
        assert!(p.push(b"data: partial").unwrap().is_empty());
        assert!(p.finish());
        let mut p = Parser::new();
        assert_eq!(p.push(b"data: x\n\n").unwrap().len(), 1);
        assert!(!p.finish());
    }

    #[test]
    fn oversized_event_is_an_error_not_unbounded_memory() {
        let mut p = Parser::new();
        let big = vec![b'a'; MAX_EVENT_BYTES + 1];
        let err = p.push(&big).unwrap_err();
        assert_eq!(err.code, Code::ProviderBadResponse);
    }

    #[test]
    fn encoder_output_parses_back_to_the_same_frames() {
        let frames = vec![
            Frame::named("message_start", "{\"a\":1}"),
            Frame::data("line1\nline2"),
            Frame::data("[DONE]"),
        ];
        let bytes = encode_frames(&frames);
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            "event: message_start\ndata: {\"a\":1}\n\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n"
        );
        let back = parse_all(&[&bytes]);
        assert_eq!(
            back,
            vec![
                ev(Some("message_start"), "{\"a\":1}"),
                ev(None, "line1\nline2"),
                ev(None, "[DONE]")
            ]
        );
    }

    #[test]
    fn a_readers_error_stops_the_chunk_and_is_returned() {
        let mut p = Parser::new();
        let mut seen = Vec::new();
        let r = p.push_each(b"data: 1\n\ndata: 2\n\ndata: 3\n\n", |e| {
            seen.push(e.data.clone());
            match e.data.as_str() {
                "2" => Err(Error::new(Code::ProviderBadResponse, "no 2")),
                _ => Ok(()),
            }
        });
        assert_eq!(r.unwrap_err().message, "no 2");
        assert_eq!(seen, ["1", "2"]);
    }

    /// A realistic mixed stream: named events, CRLF, comments, multi-line data, non-ASCII.
    const STREAM: &str = "event: message_start\r\ndata: {\"type\":\"message_start\"}\r\n\r\n: keep-alive\r\n\r\nevent: content_block_delta\r\ndata: {\"text\":\"日本語 ✓\"}\r\n\r\ndata: multi\ndata: line\n\nevent: ping\rdata: {}\r\r";

    proptest! {
        /// Whatever the network does to chunk boundaries, the events are the same.
        #[test]
        fn every_chunking_of_a_stream_yields_the_same_events(cuts in proptest::collection::vec(0usize..STREAM.len(), 0..12)) {
            let bytes = STREAM.as_bytes();
            let whole = parse_all(&[bytes]);
            prop_assert_eq!(whole.len(), 4);
            let mut cuts = cuts;
            cuts.sort_unstable();
            cuts.dedup();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut last = 0;
            for c in cuts {
                chunks.push(&bytes[last..c]);
                last = c;
            }
            chunks.push(&bytes[last..]);
            prop_assert_eq!(parse_all(&chunks), whole.clone());
            // Read in place, from the parser's reused buffers, the events are the same
            // (a name left from the last event never reaches the next).
            let mut p = Parser::new();
            let mut seen = Vec::new();
            for c in &chunks {
                p.push_each(c, |e| {
                    seen.push(e.clone());
                    Ok(())
                })
                .unwrap();
            }
            prop_assert_eq!(seen, whole);
        }

        /// Byte-at-a-time feeding of arbitrary encoded frames round-trips their data.
        #[test]
        fn encoded_arbitrary_data_round_trips_byte_by_byte(datas in proptest::collection::vec("[^\r]{0,40}", 1..5)) {
            let frames: Vec<Frame> = datas.iter().map(|d| Frame::data(d.clone())).collect();
            let bytes = encode_frames(&frames);
            let mut p = Parser::new();
            let mut out = Vec::new();
            for b in &bytes {
                out.extend(p.push(std::slice::from_ref(b)).unwrap());
            }
            let got: Vec<String> = out.into_iter().map(|e| e.data).collect();
            prop_assert_eq!(got, datas);
        }
    }
}
