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

/// Decode the bench chat stream and write what `encode` makes of its events; the bytes
/// written.
fn chat_stream_through(mut encode: impl FnMut(&Event) -> Vec<sse::Frame>) -> usize {
    let mut p = sse::Parser::new();
    let mut dec = openai::stream::ChatStreamDecoder::new();
    let mut out = Vec::with_capacity(512);
    for ev in p.push(BENCH_CHAT_STREAM.as_bytes()).unwrap() {
        for e in dec.push(&ev).unwrap() {
            for f in encode(&e) {
                f.write_to(&mut out);
            }
        }
    }
    out.len()
}

/// Median nanoseconds per call of `f` over 15 batches of `n` calls; NaN (not run) when
/// the command line names measurements and not this one.
fn measure(name: &str, n: u32, mut f: impl FnMut() -> usize) -> f64 {
    let only: Vec<String> = std::env::args().skip(1).collect();
    if !only.is_empty() && !only.iter().any(|o| name.contains(o.as_str())) {
        return f64::NAN;
    }
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

fn main() {
    let mut results: Vec<(&str, f64, &str)> = Vec::new();

    let ns = measure("openai_request_to_anthropic_body", 2000, || {
        let req = openai::decode_chat_request(OA_REQ.as_bytes()).unwrap();
        let wire = anthropic::encode_request(&req, &anthropic::UpstreamOptions::default()).unwrap();
        serde_json::to_vec(&wire).unwrap().len()
    });
    results.push(("openai_request_to_anthropic_body", ns, "ns/request"));

    let ns = measure("anthropic_request_to_openai_body", 2000, || {
        let req = anthropic::decode_request(AN_REQ.as_bytes()).unwrap();
        let wire = openai::encode_chat_request(&req, openai::Dialect::Compatible).unwrap();
        serde_json::to_vec(&wire).unwrap().len()
    });
    results.push(("anthropic_request_to_openai_body", ns, "ns/request"));

    let ns = measure("anthropic_response_to_openai_body", 5000, || {
        let resp = anthropic::decode_response(AN_RESP.as_bytes()).unwrap();
        serde_json::to_vec(&openai::encode_chat_response(&resp, 1))
            .unwrap()
            .len()
    });
    results.push(("anthropic_response_to_openai_body", ns, "ns/response"));

    let an_events = sse::Parser::new().push(AN_STREAM.as_bytes()).unwrap().len() as f64;
    let ns = measure("anthropic_stream_to_openai_chunks", 2000, || {
        let mut p = sse::Parser::new();
        let mut dec = anthropic::stream::StreamDecoder::new();
        let mut enc = openai::stream::ChatStreamEncoder::new(true, 1);
        let mut out = Vec::new();
        for ev in p.push(AN_STREAM.as_bytes()).unwrap() {
            for e in dec.push(&ev).unwrap() {
                for f in enc.encode(&e) {
                    f.write_to(&mut out);
                }
            }
        }
        out.len()
    });
    results.push((
        "anthropic_stream_to_openai_chunks",
        ns / an_events,
        "ns/upstream event",
    ));

    let oa_events = sse::Parser::new().push(OA_STREAM.as_bytes()).unwrap().len() as f64;
    let ns = measure("openai_stream_to_anthropic_events", 2000, || {
        let mut p = sse::Parser::new();
        let mut dec = openai::stream::ChatStreamDecoder::new();
        let mut enc = anthropic::stream::StreamEncoder::new();
        let mut out = Vec::new();
        for ev in p.push(OA_STREAM.as_bytes()).unwrap() {
            let events = dec.push(&ev).unwrap();
            for f in enc.encode_all(&events) {
                f.write_to(&mut out);
            }
        }
        out.len()
    });
    results.push((
        "openai_stream_to_anthropic_events",
        ns / oa_events,
        "ns/upstream event",
    ));

    // A whole request of `make bench-gateway`'s API comparison, as the gateway handles
    // it (minus the network): the client's body in, the upstream body out, the
    // upstream's chat stream in, the client's stream out.
    let q = "What is the capital of France?";
    let chat_body = format!(
        r#"{{"model":"bench-sse","messages":[{{"role":"user","content":"{q}"}}],"stream":true}}"#
    );
    let ns = measure("bench_chat_relayed", 5000, || {
        let peek = passthrough::peek(chat_body.as_bytes()).unwrap();
        let up = peek.rewrite(chat_body.as_bytes(), "up-model", true);
        let mut tap = StreamTap::new(Api::OpenAiChat).hide_usage_chunk();
        up.len()
            + tap
                .push(bytes::Bytes::from_static(BENCH_CHAT_STREAM.as_bytes()))
                .len()
    });
    results.push(("bench_chat_relayed", ns, "ns/request"));

    let resp_body = format!(r#"{{"model":"bench-sse","input":"{q}","store":false,"stream":true}}"#);
    let ns = measure("bench_responses_over_chat", 5000, || {
        let mut w = responses::parse_request(resp_body.as_bytes()).unwrap();
        let items = responses::input_items(&mut w).unwrap();
        let (req, opts) = responses::to_canonical(&w, &[], &items).unwrap();
        let up = serde_json::to_vec(
            &openai::encode_chat_request(&req, openai::Dialect::Compatible).unwrap(),
        )
        .unwrap();
        let mut enc = responses::stream::ResponsesEncoder::new("resp_0123".into(), 1, opts);
        up.len() + chat_stream_through(|e| enc.encode(e))
    });
    results.push(("bench_responses_over_chat", ns, "ns/request"));

    let msg_body = format!(
        r#"{{"model":"bench-sse","max_tokens":256,"messages":[{{"role":"user","content":"{q}"}}],"stream":true}}"#
    );
    let ns = measure("bench_messages_over_chat", 5000, || {
        let req = anthropic::decode_request(msg_body.as_bytes()).unwrap();
        let up = serde_json::to_vec(
            &openai::encode_chat_request(&req, openai::Dialect::Compatible).unwrap(),
        )
        .unwrap();
        let mut enc = anthropic::stream::StreamEncoder::new();
        up.len() + chat_stream_through(|e| enc.encode_all(std::slice::from_ref(e)))
    });
    results.push(("bench_messages_over_chat", ns, "ns/request"));

    results.retain(|(_, ns, _)| !ns.is_nan());
    for (name, ns, unit) in &results {
        println!("{name}: {ns:.0} {unit}");
    }
    let summary: serde_json::Map<String, serde_json::Value> = results
        .iter()
        .map(|(name, ns, _)| (format!("{name}_ns"), serde_json::json!(ns.round())))
        .collect();
    println!("{}", serde_json::Value::Object(summary));
}
