//! Translation cost of the protocol layer, per request and per stream event.
//!
//! `cargo run --release --no-default-features --example protocol_bench`
//! Prints one line per measurement (median of 15 batches) and a JSON summary last.
//! Arguments, if any, pick the measurements whose names contain one of them.

use std::hint::black_box;
use std::time::Instant;
use switchyard::protocol::canonical::Event;
use switchyard::protocol::passthrough::{self, Api, StreamTap};
use switchyard::protocol::{anthropic, openai, responses, sse};

const OA_REQ: &str = include_str!("../tests/fixtures/protocol/openai_chat_request.json");
const AN_REQ: &str = include_str!("../tests/fixtures/protocol/anthropic_request.json");
const AN_STREAM: &str =
    include_str!("../tests/fixtures/protocol/anthropic_stream_thinking_tool.sse");
const OA_STREAM: &str = include_str!("../tests/fixtures/protocol/openai_stream_tool_calls.sse");
const AN_RESP: &str = include_str!("../tests/fixtures/protocol/anthropic_message_response.json");

/// The bench upstream's chat stream (`scripts/bench/gateway/nginx.conf`, `/sse`).
const BENCH_CHAT_STREAM: &str = concat!(
    r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"up-model","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"up-model","choices":[{"index":0,"delta":{"content":"The capital"},"finish_reason":null}]}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"up-model","choices":[{"index":0,"delta":{"content":" of France is Paris."},"finish_reason":null}]}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"up-model","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}"#,
    "\n\n",
    "data: [DONE]\n\n",
);

/// The bench upstream's chat completion (`/plain`).
const BENCH_CHAT_JSON: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"up-model","choices":[{"index":0,"message":{"role":"assistant","content":"The capital of France is Paris."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}"#;

/// Decode the bench chat stream and write what `encode` makes of its events, given
/// together as the gateway gives them (all that one read of the upstream brought: here
/// the whole body); the bytes written.
fn chat_stream_through(encode: impl FnOnce(&[Event], &mut Vec<u8>)) -> usize {
    let mut p = sse::Parser::new();
    let mut dec = openai::stream::ChatStreamDecoder::new();
    let mut events = Vec::new();
    // As `upstream::sse_events` reads a chunk: each event decoded from the parser's buffer.
    p.push_each(BENCH_CHAT_STREAM.as_bytes(), |ev| {
        dec.push_data_to(&ev.data, &mut events)
    })
    .unwrap();
    let mut out = Vec::with_capacity(1024);
    encode(&events, &mut out);
    out.len()
}

/// A client's Responses body as the chat body the gateway sends upstream, with what
/// the answer's encoder needs.
fn responses_to_chat(body: &[u8]) -> (Vec<u8>, responses::EncodeOptions) {
    let mut w = responses::parse_request(body).unwrap();
    let items = responses::input_items(&mut w).unwrap();
    let (req, opts) = responses::to_canonical(&w, &[], &items).unwrap();
    let wire = openai::encode_chat_request(&req, openai::Dialect::Compatible).unwrap();
    (serde_json::to_vec(&wire).unwrap(), opts)
}

/// Median nanoseconds per call of `f` over 15 batches of `n` calls.
fn measure(n: u32, mut f: impl FnMut() -> usize) -> f64 {
    let mut batches: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                black_box(f());
            }
            t.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[batches.len() / 2]
}

/// The measurements the command line picks (all when it names none), and their results.
struct Bench {
    only: Vec<String>,
    results: Vec<(&'static str, f64, &'static str)>,
}

impl Bench {
    /// Measure `f` as `name` (nanoseconds per call over `per` units of `unit`) if picked.
    fn run(
        &mut self,
        name: &'static str,
        unit: &'static str,
        per: f64,
        n: u32,
        f: impl FnMut() -> usize,
    ) {
        if self.only.is_empty() || self.only.iter().any(|o| name.contains(o.as_str())) {
            self.results.push((name, measure(n, f) / per, unit));
        }
    }
}

fn main() {
    let mut bench = Bench {
        only: std::env::args().skip(1).collect(),
        results: Vec::new(),
    };

    bench.run(
        "openai_request_to_anthropic_body",
        "ns/request",
        1.0,
        2000,
        || {
            let req = openai::decode_chat_request(OA_REQ.as_bytes()).unwrap();
            let wire =
                anthropic::encode_request(&req, &anthropic::UpstreamOptions::default()).unwrap();
            serde_json::to_vec(&wire).unwrap().len()
        },
    );

    bench.run(
        "anthropic_request_to_openai_body",
        "ns/request",
        1.0,
        2000,
        || {
            let req = anthropic::decode_request(AN_REQ.as_bytes()).unwrap();
            let wire = openai::encode_chat_request(&req, openai::Dialect::Compatible).unwrap();
            serde_json::to_vec(&wire).unwrap().len()
        },
    );

    bench.run(
        "anthropic_response_to_openai_body",
        "ns/response",
        1.0,
        5000,
        || {
            let resp = anthropic::decode_response(AN_RESP.as_bytes()).unwrap();
            serde_json::to_vec(&openai::encode_chat_response(&resp, 1))
                .unwrap()
                .len()
        },
    );

    let an_events = sse::Parser::new().push(AN_STREAM.as_bytes()).unwrap().len() as f64;
    bench.run(
        "anthropic_stream_to_openai_chunks",
        "ns/upstream event",
        an_events,
        2000,
        || {
            let mut p = sse::Parser::new();
            let mut dec = anthropic::stream::StreamDecoder::new();
            let mut enc = openai::stream::ChatStreamEncoder::new(true, 1);
            let mut out: Vec<u8> = Vec::new();
            for ev in p.push(AN_STREAM.as_bytes()).unwrap() {
                for e in dec.push(&ev).unwrap() {
                    enc.encode_to(&e, &mut out);
                }
            }
            out.len()
        },
    );

    let oa_events = sse::Parser::new().push(OA_STREAM.as_bytes()).unwrap().len() as f64;
    bench.run(
        "openai_stream_to_anthropic_events",
        "ns/upstream event",
        oa_events,
        2000,
        || {
            let mut p = sse::Parser::new();
            let mut dec = openai::stream::ChatStreamDecoder::new();
            let mut enc = anthropic::stream::StreamEncoder::new();
            let mut out: Vec<u8> = Vec::new();
            for ev in p.push(OA_STREAM.as_bytes()).unwrap() {
                let events = dec.push(&ev).unwrap();
                enc.encode_all_to(&events, &mut out);
            }
            out.len()
        },
    );

    // A whole request of `make bench-gateway`'s API comparison, as the gateway handles
    // it (minus the network): the client's body in, the upstream body out, the
    // upstream's chat stream in, the client's stream out.
    let q = "What is the capital of France?";
    let chat_body = format!(
        r#"{{"model":"bench-sse","messages":[{{"role":"user","content":"{q}"}}],"stream":true}}"#
    );
    bench.run("bench_chat_relayed", "ns/request", 1.0, 5000, || {
        let peek = passthrough::peek(chat_body.as_bytes()).unwrap();
        let up = peek.rewrite(chat_body.as_bytes(), "up-model", true);
        let mut tap = StreamTap::new(Api::OpenAiChat).hide_usage_chunk();
        up.len()
            + tap
                .push(bytes::Bytes::from_static(BENCH_CHAT_STREAM.as_bytes()))
                .len()
    });

    let resp_body = format!(r#"{{"model":"bench-sse","input":"{q}","store":false,"stream":true}}"#);
    bench.run("bench_responses_over_chat", "ns/request", 1.0, 5000, || {
        let (up, opts) = responses_to_chat(resp_body.as_bytes());
        let mut enc = responses::stream::ResponsesEncoder::new("resp_0123".into(), 1, opts);
        up.len() + chat_stream_through(|evs, out| evs.iter().for_each(|e| enc.encode_to(e, out)))
    });

    let msg_body = format!(
        r#"{{"model":"bench-sse","max_tokens":256,"messages":[{{"role":"user","content":"{q}"}}],"stream":true}}"#
    );
    bench.run("bench_messages_over_chat", "ns/request", 1.0, 5000, || {
        let req = anthropic::decode_request(msg_body.as_bytes()).unwrap();
        let up = serde_json::to_vec(
            &openai::encode_chat_request(&req, openai::Dialect::Compatible).unwrap(),
        )
        .unwrap();
        let mut enc = anthropic::stream::StreamEncoder::new();
        up.len() + chat_stream_through(|evs, out| enc.encode_all_to(evs, out))
    });

    // The same request not streamed: the upstream's chat completion in, the client's
    // answer out (relayed, its usage read on the side; or as a Responses object).
    let plain_chat = format!(
        r#"{{"model":"bench-plain","messages":[{{"role":"user","content":"{q}"}}],"stream":false}}"#
    );
    bench.run("bench_plain_chat_relayed", "ns/request", 1.0, 5000, || {
        let peek = passthrough::peek(plain_chat.as_bytes()).unwrap();
        let up = peek.rewrite(plain_chat.as_bytes(), "up-model", true);
        serde_json::from_slice::<serde::de::IgnoredAny>(BENCH_CHAT_JSON.as_bytes()).unwrap();
        let usage = passthrough::usage_of_json(Api::OpenAiChat, BENCH_CHAT_JSON.as_bytes());
        up.len() + usage.output_tokens.unwrap_or(0) as usize
    });
    let plain_resp = format!(r#"{{"model":"bench-plain","input":"{q}","store":false}}"#);
    bench.run(
        "bench_plain_responses_over_chat",
        "ns/request",
        1.0,
        5000,
        || {
            let (up, opts) = responses_to_chat(plain_resp.as_bytes());
            let resp = openai::decode_chat_response(BENCH_CHAT_JSON.as_bytes()).unwrap();
            let mut enc =
                responses::stream::ResponsesEncoder::new("resp_0123".into(), 1, opts).silent();
            for e in switchyard::protocol::canonical::response_to_events(&resp) {
                enc.encode(&e);
            }
            up.len() + enc.response_text().len()
        },
    );

    let results = bench.results;
    for (name, ns, unit) in &results {
        println!("{name}: {ns:.0} {unit}");
    }
    let summary: serde_json::Map<String, serde_json::Value> = results
        .iter()
        .map(|(name, ns, _)| (format!("{name}_ns"), serde_json::json!(ns.round())))
        .collect();
    println!("{}", serde_json::Value::Object(summary));
}
