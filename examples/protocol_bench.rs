//! Translation cost of the protocol layer, per request and per stream event.
//!
//! `cargo run --release --no-default-features --example protocol_bench`
//! Prints one line per measurement (median of 15 batches) and a JSON summary last.

use std::hint::black_box;
use std::time::Instant;
use switchyard::protocol::{anthropic, openai, sse};

const OA_REQ: &str = include_str!("../tests/fixtures/protocol/openai_chat_request.json");
const AN_REQ: &str = include_str!("../tests/fixtures/protocol/anthropic_request.json");
const AN_STREAM: &str =
    include_str!("../tests/fixtures/protocol/anthropic_stream_thinking_tool.sse");
const OA_STREAM: &str = include_str!("../tests/fixtures/protocol/openai_stream_tool_calls.sse");
const AN_RESP: &str = include_str!("../tests/fixtures/protocol/anthropic_message_response.json");

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

fn main() {
    let mut results: Vec<(&str, f64, &str)> = Vec::new();

    let ns = measure(2000, || {
        let req = openai::decode_chat_request(OA_REQ.as_bytes()).unwrap();
        let wire = anthropic::encode_request(&req, &anthropic::UpstreamOptions::default()).unwrap();
        serde_json::to_vec(&wire).unwrap().len()
    });
    results.push(("openai_request_to_anthropic_body", ns, "ns/request"));

    let ns = measure(2000, || {
        let req = anthropic::decode_request(AN_REQ.as_bytes()).unwrap();
        let wire = openai::encode_chat_request(&req, openai::Dialect::Compatible).unwrap();
        serde_json::to_vec(&wire).unwrap().len()
    });
    results.push(("anthropic_request_to_openai_body", ns, "ns/request"));

    let ns = measure(5000, || {
        let resp = anthropic::decode_response(AN_RESP.as_bytes()).unwrap();
        serde_json::to_vec(&openai::encode_chat_response(&resp, 1))
            .unwrap()
            .len()
    });
    results.push(("anthropic_response_to_openai_body", ns, "ns/response"));

    let an_events = sse::Parser::new().push(AN_STREAM.as_bytes()).unwrap().len() as f64;
    let ns = measure(2000, || {
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
    let ns = measure(2000, || {
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

    for (name, ns, unit) in &results {
        println!("{name}: {ns:.0} {unit}");
    }
    let summary: serde_json::Map<String, serde_json::Value> = results
        .iter()
        .map(|(name, ns, _)| (format!("{name}_ns"), serde_json::json!(ns.round())))
        .collect();
    println!("{}", serde_json::Value::Object(summary));
}
