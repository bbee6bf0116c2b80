//! Cross-protocol tests: round trips through each wire format and through the other
//! API, streams under every chunking, and the invariants the gateway relies on
//! (temperature 0, tools and images survive; client-supplied endpoints and keys do not).

use super::anthropic::{self, UpstreamOptions};
use super::canonical::*;
use super::openai::{self, Dialect};
use super::sse;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use serde_json::{Value, json};

// ------------------------------------------------------------------ helpers

pub(crate) fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/protocol/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Parse a complete SSE body; it must end cleanly.
pub(crate) fn sse_events(bytes: &[u8]) -> Vec<sse::Event> {
    let mut p = sse::Parser::new();
    let events = p.push(bytes).unwrap();
    assert!(!p.finish(), "stream ended inside an event");
    events
}

fn chunked(bytes: &[u8], cuts: &[usize]) -> Vec<sse::Event> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut p = sse::Parser::new();
    let mut out = Vec::new();
    let mut last = 0;
    for c in cuts {
        out.extend(p.push(&bytes[last..c]).unwrap());
        last = c;
    }
    out.extend(p.push(&bytes[last..]).unwrap());
    assert!(!p.finish());
    out
}

fn aggregate(events: &[Event]) -> Response {
    let mut a = Aggregator::new();
    for e in events {
        a.push(e).unwrap();
    }
    a.finish().unwrap()
}

// ------------------------------------------------------------------ strategies

#[derive(Debug, Clone, Copy, PartialEq)]
enum Flavor {
    /// What an OpenAI client can say (and an OpenAI upstream receive).
    OpenAi,
    /// What an Anthropic client can say.
    Anthropic,
    /// What both can say: the subset that crosses protocols without loss.
    Common,
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,.!?'\"{}\\n\\\\é世🙂]{0,16}"
}

fn word() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_]{1,10}"
}

/// Floats that print and parse exactly (k/8), so equality is meaningful.
fn num() -> impl Strategy<Value = f64> {
    (0u32..=16).prop_map(|k| f64::from(k) / 8.0)
}

fn json_object() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i32>().prop_map(|i| json!(i)),
        text().prop_map(Value::String),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        vec(any::<u8>(), 0..3).prop_map(|v| json!(v)),
    ];
    proptest::collection::btree_map(word(), leaf, 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn cache_control(on: bool) -> BoxedStrategy<Option<CacheControl>> {
    if on {
        option::of(option::of(prop_oneof![
            Just("5m".to_string()),
            Just("1h".to_string())
        ]))
        .prop_map(|o| o.map(|ttl| CacheControl { ttl }))
        .boxed()
    } else {
        Just(None).boxed()
    }
}

fn image(f: Flavor) -> BoxedStrategy<Block> {
    let source = prop_oneof![
        ("image/(png|jpeg|gif|webp)", "[A-Za-z0-9+/]{4,24}={0,2}")
            .prop_map(|(media_type, data)| ImageSource::Base64 { media_type, data }),
        "https://[a-z]{1,8}\\.example/[a-z]{1,8}\\.png".prop_map(|url| ImageSource::Url { url }),
    ];
    let detail: BoxedStrategy<Option<String>> = if f == Flavor::OpenAi {
        option::of(prop_oneof![
            Just("low".to_string()),
            Just("high".to_string()),
            Just("auto".to_string())
        ])
        .boxed()
    } else {
        Just(None).boxed()
    };
    (source, detail, cache_control(f == Flavor::Anthropic))
        .prop_map(|(source, detail, cache_control)| Block::Image {
            source,
            detail,
            cache_control,
        })
        .boxed()
}

fn text_block(f: Flavor) -> BoxedStrategy<Block> {
    (text(), cache_control(f == Flavor::Anthropic))
        .prop_map(|(text, cache_control)| Block::Text {
            text,
            cache_control,
        })
        .boxed()
}

fn tool_use(f: Flavor) -> BoxedStrategy<Block> {
    (
        word(),
        word(),
        json_object(),
        cache_control(f == Flavor::Anthropic),
    )
        .prop_map(|(id, name, input, cache_control)| Block::ToolUse {
            id,
            name,
            input,
            cache_control,
        })
        .boxed()
}

fn name(f: Flavor) -> BoxedStrategy<Option<String>> {
    if f == Flavor::OpenAi {
        option::of(word()).boxed()
    } else {
        Just(None).boxed()
    }
}

fn user_message(f: Flavor) -> BoxedStrategy<Message> {
    (vec(prop_oneof![text_block(f), image(f)], 1..4), name(f))
        .prop_map(|(content, name)| Message {
            role: Role::User,
            content,
            name,
        })
        .boxed()
}

/// Assistant text is never empty: an empty text block says nothing, and both decoders
/// and the Anthropic encoder leave it out.
fn assistant_text(f: Flavor) -> BoxedStrategy<Block> {
    (
        "[a-zA-Z0-9 ,.!?'\"{}\\n\\\\é世🙂]{1,16}",
        cache_control(f == Flavor::Anthropic),
    )
        .prop_map(|(text, cache_control)| Block::Text {
            text,
            cache_control,
        })
        .boxed()
}

fn assistant_message(f: Flavor) -> BoxedStrategy<Message> {
    if f == Flavor::Anthropic {
        let thinking =
            // Never empty in a request: an empty signature marks another vendor's
            // reasoning, which is left out for Anthropic.
            (text(), "[A-Za-z0-9+/=]{1,24}").prop_map(|(thinking, sig)| Block::Thinking {
                thinking,
                signature: Some(sig),
            });
        let redacted = "[A-Za-z0-9+/=]{1,24}".prop_map(|data| Block::RedactedThinking { data });
        vec(
            prop_oneof![assistant_text(f), tool_use(f), thinking, redacted],
            1..5,
        )
        .prop_map(|content| Message::new(Role::Assistant, content))
        .boxed()
    } else {
        // OpenAI carries text and tool calls in separate fields: text first. A turn says
        // something (an empty assistant turn is dropped on the way to Anthropic).
        (
            vec(assistant_text(f), 0..3),
            vec(tool_use(f), 0..3),
            name(f),
            assistant_text(f),
        )
            .prop_map(|(mut content, tools, name, fallback)| {
                content.extend(tools);
                if content.is_empty() {
                    content.push(fallback);
                }
                Message {
                    role: Role::Assistant,
                    content,
                    name,
                }
            })
            .boxed()
    }
}

fn tool_message(f: Flavor) -> BoxedStrategy<Message> {
    let inner: BoxedStrategy<Block> = if f == Flavor::Anthropic {
        prop_oneof![text_block(f), image(f)].boxed()
    } else {
        text_block(f)
    };
    let is_error: BoxedStrategy<bool> = if f == Flavor::Anthropic {
        any::<bool>().boxed()
    } else {
        Just(false).boxed()
    };
    let result = (
        word(),
        vec(inner, 0..3),
        is_error,
        cache_control(f == Flavor::Anthropic),
    )
        .prop_map(
            |(tool_use_id, content, is_error, cache_control)| Block::ToolResult {
                tool_use_id,
                content,
                is_error,
                cache_control,
            },
        );
    vec(result, 1..4)
        .prop_map(|content| Message::new(Role::Tool, content))
        .boxed()
}

fn system_message() -> BoxedStrategy<Message> {
    (vec(text_block(Flavor::OpenAi), 1..3), name(Flavor::OpenAi))
        .prop_map(|(content, name)| Message {
            role: Role::System,
            content,
            name,
        })
        .boxed()
}

/// Consecutive tool messages are one turn in canonical form (OpenAI decoding merges them).
fn merge_tool_runs(messages: Vec<Message>) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    for m in messages {
        match out.last_mut() {
            Some(last) if last.role == Role::Tool && m.role == Role::Tool => {
                last.content.extend(m.content)
            }
            _ => out.push(m),
        }
    }
    out
}

fn messages(f: Flavor) -> BoxedStrategy<Vec<Message>> {
    let any_msg: BoxedStrategy<Message> = match f {
        Flavor::OpenAi => prop_oneof![
            3 => user_message(f),
            3 => assistant_message(f),
            2 => tool_message(f),
            1 => system_message()
        ]
        .boxed(),
        _ => prop_oneof![user_message(f), assistant_message(f), tool_message(f)].boxed(),
    };
    // The first message is a user turn — or, for OpenAI, a *named* system message, which
    // keeps its place (unnamed leading system messages are the system prompt).
    let first: BoxedStrategy<Message> = match f {
        Flavor::OpenAi => prop_oneof![
            3 => user_message(f),
            1 => (system_message(), word()).prop_map(|(m, n)| Message { name: Some(n), ..m })
        ]
        .boxed(),
        _ => user_message(f),
    };
    (first, vec(any_msg, 0..6), user_message(f))
        .prop_map(move |(first, rest, last_user)| {
            let mut all: Vec<Message> = std::iter::once(first).chain(rest).collect();
            // A final assistant message asks the model to continue it (prefill), which
            // only Anthropic and local models do: end such conversations with a user turn
            // where they must cross to OpenAI.
            if f != Flavor::Anthropic && all.last().is_some_and(|m| m.role == Role::Assistant) {
                all.push(last_user);
            }
            if f == Flavor::Anthropic {
                all
            } else {
                merge_tool_runs(all)
            }
        })
        .boxed()
}

fn tools(f: Flavor) -> BoxedStrategy<Vec<Tool>> {
    let schema: BoxedStrategy<Option<Value>> = if f == Flavor::OpenAi {
        option::of(json_object()).boxed()
    } else {
        json_object().prop_map(Some).boxed()
    };
    vec(
        (
            word(),
            option::of(text()),
            schema,
            option::of(any::<bool>()),
            cache_control(f == Flavor::Anthropic),
        )
            .prop_map(
                |(name, description, input_schema, strict, cache_control)| Tool {
                    name,
                    description,
                    input_schema,
                    strict,
                    cache_control,
                },
            ),
        0..3,
    )
    .boxed()
}

fn tool_choice(f: Flavor) -> BoxedStrategy<(Option<ToolChoice>, Option<bool>)> {
    let choice = option::of(prop_oneof![
        Just(ToolChoice::Auto),
        Just(ToolChoice::None),
        Just(ToolChoice::Required),
        word().prop_map(ToolChoice::Tool),
    ]);
    (choice, option::of(any::<bool>()))
        .prop_map(move |(c, p)| {
            // Anthropic carries the parallel flag inside tool_choice (not with `none`).
            let p = match (&c, f) {
                (_, Flavor::OpenAi) => p,
                (Some(ToolChoice::None) | None, _) => None,
                _ => p,
            };
            (c, p)
        })
        .boxed()
}

fn system(f: Flavor) -> BoxedStrategy<Vec<SystemBlock>> {
    vec(
        (text(), cache_control(f == Flavor::Anthropic)).prop_map(|(text, cache_control)| {
            SystemBlock {
                text,
                cache_control,
            }
        }),
        0..3,
    )
    .boxed()
}

fn sampling(f: Flavor) -> BoxedStrategy<Sampling> {
    let openai = f == Flavor::OpenAi;
    (
        option::of(num()),
        option::of(num()),
        option::of(1u32..100),
        if openai {
            option::of(any::<i64>()).boxed()
        } else {
            Just(None).boxed()
        },
        if openai {
            option::of(num()).boxed()
        } else {
            Just(None).boxed()
        },
        if openai {
            option::of(num()).boxed()
        } else {
            Just(None).boxed()
        },
    )
        .prop_map(
            move |(temperature, top_p, top_k, seed, presence_penalty, frequency_penalty)| {
                Sampling {
                    temperature,
                    // Anthropic takes temperature or top_p, not both, and top_p 1 is its
                    // default (left out on the way there).
                    top_p: match f {
                        Flavor::OpenAi => top_p,
                        _ => top_p.filter(|p| temperature.is_none() && *p != 1.0),
                    },
                    top_k,
                    seed,
                    presence_penalty,
                    frequency_penalty,
                }
            },
        )
        .boxed()
}

#[derive(Debug, Clone)]
struct OpenAiOnly {
    include_usage: bool,
    reasoning_effort: Option<String>,
    verbosity: Option<String>,
    response_format: Option<ResponseFormat>,
    logprobs: bool,
    top_logprobs: Option<u32>,
}

fn openai_only(f: Flavor) -> BoxedStrategy<OpenAiOnly> {
    if f != Flavor::OpenAi {
        return Just(OpenAiOnly {
            include_usage: false,
            reasoning_effort: None,
            verbosity: None,
            response_format: None,
            logprobs: false,
            top_logprobs: None,
        })
        .boxed();
    }
    let rf = option::of(prop_oneof![
        Just(ResponseFormat::Text),
        Just(ResponseFormat::JsonObject),
        (
            word(),
            option::of(text()),
            option::of(json_object()),
            option::of(any::<bool>())
        )
            .prop_map(
                |(name, description, schema, strict)| ResponseFormat::JsonSchema {
                    name,
                    description,
                    schema,
                    strict
                }
            ),
    ]);
    (
        any::<bool>(),
        option::of("none|minimal|low|medium|high"),
        option::of("low|medium|high"),
        rf,
        any::<bool>(),
        option::of(0u32..20),
    )
        .prop_map(
            |(
                include_usage,
                reasoning_effort,
                verbosity,
                response_format,
                logprobs,
                top_logprobs,
            )| OpenAiOnly {
                include_usage,
                reasoning_effort,
                verbosity,
                response_format,
                logprobs,
                top_logprobs,
            },
        )
        .boxed()
}

fn request(f: Flavor) -> BoxedStrategy<Request> {
    let thinking: BoxedStrategy<(Option<ThinkingConfig>, Option<String>)> =
        if f == Flavor::Anthropic {
            let display = option::of(prop_oneof![
                Just("summarized".to_string()),
                Just("omitted".to_string())
            ]);
            prop_oneof![
                Just((None, None)),
                ((1024u64..64000), display.clone()).prop_map(|(budget_tokens, d)| (
                    Some(ThinkingConfig::Enabled { budget_tokens }),
                    d
                )),
                display.prop_map(|d| (Some(ThinkingConfig::Adaptive), d)),
                Just((Some(ThinkingConfig::Disabled), None)),
            ]
            .boxed()
        } else {
            Just((None, None)).boxed()
        };
    let max_tokens: BoxedStrategy<Option<u64>> = if f == Flavor::OpenAi {
        option::of(1u64..100_000).boxed()
    } else {
        (1u64..100_000).prop_map(Some).boxed()
    };
    (
        (
            "[a-z0-9.-]{1,16}",
            system(f),
            messages(f),
            tools(f),
            tool_choice(f),
        ),
        (
            sampling(f),
            max_tokens,
            vec(text(), 0..3),
            any::<bool>(),
            option::of(word()),
        ),
        (thinking, openai_only(f)),
    )
        .prop_map(
            move |(
                (model, system, messages, tools, (tool_choice, parallel)),
                (sampling, max_tokens, stop, stream, user),
                (thinking, o),
            )| {
                // A thinking Claude samples at temperature 1, without top_k.
                let mut sampling = sampling;
                if matches!(
                    thinking.0,
                    Some(ThinkingConfig::Enabled { .. } | ThinkingConfig::Adaptive)
                ) {
                    sampling.temperature = sampling.temperature.map(|_| 1.0);
                    sampling.top_k = None;
                }
                Request {
                    model,
                    system,
                    messages,
                    tools,
                    tool_choice,
                    parallel_tool_calls: parallel,
                    sampling,
                    max_tokens,
                    stop,
                    stream,
                    include_usage: stream && o.include_usage,
                    user,
                    thinking: thinking.0,
                    reasoning_effort: o.reasoning_effort,
                    verbosity: o.verbosity,
                    response_format: o.response_format,
                    logprobs: o.logprobs,
                    top_logprobs: o.top_logprobs,
                    raw_prompt: false,
                    thinking_display: thinking.1,
                    dropped: vec![],
                }
            },
        )
        .boxed()
}

fn usage(f: Flavor) -> BoxedStrategy<Usage> {
    (
        0u64..100_000,
        0u64..10_000,
        option::of(0u64..50_000),
        option::of(0u64..50_000),
        option::of(0u64..5_000),
    )
        .prop_map(move |(uncached, output, read, write, reasoning)| {
            let (write, reasoning) = match f {
                Flavor::Anthropic => (write, None),
                _ => (None, reasoning),
            };
            Usage {
                input_tokens: Some(uncached + read.unwrap_or(0) + write.unwrap_or(0)),
                output_tokens: Some(output),
                cache_read_tokens: read,
                cache_write_tokens: write,
                reasoning_tokens: reasoning,
            }
        })
        .boxed()
}

fn logprobs() -> BoxedStrategy<Option<Vec<TokenLogprob>>> {
    let top = (text(), num(), option::of(vec(any::<u8>(), 0..4))).prop_map(|(token, lp, bytes)| {
        TopLogprob {
            token,
            logprob: -lp,
            bytes,
        }
    });
    let one = (
        text(),
        num(),
        option::of(vec(any::<u8>(), 0..4)),
        vec(top, 0..3),
    )
        .prop_map(|(token, lp, bytes, top_logprobs)| TokenLogprob {
            token,
            logprob: -lp,
            bytes,
            top_logprobs,
        });
    option::of(vec(one, 1..4)).boxed()
}

fn response(f: Flavor) -> BoxedStrategy<Response> {
    let stop = prop_oneof![
        Just(StopReason::EndTurn),
        Just(StopReason::MaxTokens),
        Just(StopReason::ToolUse),
        Just(StopReason::Refusal),
        Just(StopReason::Other("weird_reason".into())),
    ];
    let stop: BoxedStrategy<StopReason> = if f == Flavor::Anthropic {
        prop_oneof![
            stop,
            text().prop_map(StopReason::StopSequence),
            Just(StopReason::PauseTurn),
            Just(StopReason::ContextWindowExceeded)
        ]
        .boxed()
    } else {
        stop.boxed()
    };
    let content: BoxedStrategy<Vec<Block>> = if f == Flavor::Anthropic {
        vec(
            prop_oneof![
                text().prop_map(Block::text),
                tool_use(Flavor::Common),
                (text(), "[A-Za-z0-9+/=]{0,24}").prop_map(|(thinking, s)| Block::Thinking {
                    thinking,
                    signature: Some(s)
                }),
                "[A-Za-z0-9+/=]{1,24}".prop_map(|data| Block::RedactedThinking { data }),
            ],
            0..6,
        )
        .boxed()
    } else {
        // What one OpenAI message holds: reasoning, one text, then tool calls.
        (
            option::of("[a-z ]{1,12}"),
            option::of("[a-zA-Z0-9 é]{1,12}"),
            vec(tool_use(Flavor::Common), 0..3),
        )
            .prop_map(|(thinking, text, tools)| {
                let mut c = Vec::new();
                if let Some(t) = thinking {
                    c.push(Block::Thinking {
                        thinking: t,
                        signature: None,
                    });
                }
                if let Some(t) = text {
                    c.push(Block::text(t));
                }
                c.extend(tools);
                c
            })
            .boxed()
    };
    let lp: BoxedStrategy<Option<Vec<TokenLogprob>>> = if f == Flavor::OpenAi {
        logprobs()
    } else {
        Just(None).boxed()
    };
    (word(), "[a-z0-9.-]{1,16}", content, stop, usage(f), lp)
        .prop_map(|(id, model, content, stop, usage, logprobs)| {
            // Log probabilities describe generated text; without text there are none.
            let has_text = content.iter().any(|b| matches!(b, Block::Text { .. }));
            Response {
                id,
                model,
                content,
                stop_reason: Some(stop),
                usage,
                logprobs: logprobs.filter(|_| has_text),
            }
        })
        .boxed()
}

// ------------------------------------------------------------------ round trips

fn via_openai(req: &Request, dialect: Dialect) -> Request {
    let wire = openai::encode_chat_request(req, dialect).unwrap();
    let bytes = serde_json::to_vec(&wire).unwrap();
    openai::decode_chat_request(&bytes).unwrap()
}

fn via_anthropic(req: &Request) -> Request {
    let wire = anthropic::encode_request(req, &UpstreamOptions::default()).unwrap();
    let bytes = serde_json::to_vec(&wire).unwrap();
    anthropic::decode_request(&bytes).unwrap()
}

fn normalized_events(events: Vec<Event>) -> Vec<Event> {
    events
        .into_iter()
        .filter(|e| !matches!(e, Event::Usage(_)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Everything an OpenAI client can say survives canonical → wire → canonical.
    #[test]
    fn openai_requests_round_trip_through_the_wire(mut req in request(Flavor::OpenAi), compat in any::<bool>()) {
        let dialect = if compat { Dialect::Compatible } else { Dialect::OpenAi };
        if dialect == Dialect::OpenAi {
            req.sampling.top_k = None;
        }
        prop_assert_eq!(via_openai(&req, dialect), req);
    }

    /// Everything an Anthropic client can say survives canonical → wire → canonical.
    #[test]
    fn anthropic_requests_round_trip_through_the_wire(req in request(Flavor::Anthropic)) {
        prop_assert_eq!(via_anthropic(&req), req);
    }

    /// An OpenAI client's request crosses to an Anthropic upstream without loss.
    #[test]
    fn openai_client_to_anthropic_upstream_loses_nothing(req in request(Flavor::Common)) {
        let from_client = via_openai(&req, Dialect::Compatible);
        prop_assert_eq!(&from_client, &req);
        prop_assert_eq!(via_anthropic(&from_client), from_client);
    }

    /// An Anthropic client's request crosses to an OpenAI-compatible upstream without loss.
    #[test]
    fn anthropic_client_to_openai_upstream_loses_nothing(req in request(Flavor::Common)) {
        let from_client = via_anthropic(&req);
        prop_assert_eq!(&from_client, &req);
        prop_assert_eq!(via_openai(&from_client, Dialect::Compatible), from_client);
    }

    #[test]
    fn anthropic_responses_round_trip(resp in response(Flavor::Anthropic)) {
        let bytes = serde_json::to_vec(&anthropic::encode_response(&resp)).unwrap();
        prop_assert_eq!(anthropic::decode_response(&bytes).unwrap(), resp);
    }

    #[test]
    fn openai_responses_round_trip(resp in response(Flavor::OpenAi)) {
        let bytes = serde_json::to_vec(&openai::encode_chat_response(&resp, 1)).unwrap();
        prop_assert_eq!(openai::decode_chat_response(&bytes).unwrap(), resp);
    }

    /// Canonical events → Anthropic SSE → (any chunking) → canonical events: the same
    /// stream, and it aggregates to the same response.
    #[test]
    fn anthropic_streams_round_trip_under_any_chunking(resp in response(Flavor::Anthropic), cuts in vec(any::<usize>(), 0..20)) {
        let events = response_to_events(&resp);
        let mut enc = anthropic::stream::StreamEncoder::new();
        let bytes = sse::encode_frames(&enc.encode_all(&events));
        let mut dec = anthropic::stream::StreamDecoder::new();
        let mut back = Vec::new();
        for e in chunked(&bytes, &cuts) {
            back.extend(dec.push(&e).unwrap());
        }
        back.extend(dec.finish());
        prop_assert_eq!(aggregate(&back), resp);
        prop_assert_eq!(normalized_events(back), normalized_events(events));
    }

    #[test]
    fn openai_streams_round_trip_under_any_chunking(resp in response(Flavor::OpenAi), cuts in vec(any::<usize>(), 0..20)) {
        let events = response_to_events(&resp);
        let mut enc = openai::stream::ChatStreamEncoder::new(true, 1);
        let frames: Vec<sse::Frame> = events.iter().flat_map(|e| enc.encode(e)).collect();
        let bytes = sse::encode_frames(&frames);
        let mut dec = openai::stream::ChatStreamDecoder::new();
        let mut back = Vec::new();
        for e in chunked(&bytes, &cuts) {
            back.extend(dec.push(&e).unwrap());
        }
        back.extend(dec.finish().unwrap());
        prop_assert_eq!(aggregate(&back), resp);
        prop_assert_eq!(normalized_events(back), normalized_events(events));
    }

    /// An Anthropic upstream's stream, re-encoded for an OpenAI client and read back by
    /// an OpenAI decoder, still aggregates to the same turn (minus what OpenAI has no
    /// field for: signatures, redacted thinking, stop sequence names, cache writes).
    #[test]
    fn anthropic_stream_served_to_an_openai_client_keeps_text_tools_and_reasoning(resp in response(Flavor::Anthropic)) {
        let events = response_to_events(&resp);
        let mut enc = openai::stream::ChatStreamEncoder::new(true, 1);
        let frames: Vec<sse::Frame> = events.iter().flat_map(|e| enc.encode(e)).collect();
        let mut dec = openai::stream::ChatStreamDecoder::new();
        let mut back = Vec::new();
        for e in sse_events(&sse::encode_frames(&frames)) {
            back.extend(dec.push(&e).unwrap());
        }
        let got = aggregate(&back);
        let text = |r: &Response| -> String {
            r.content.iter().filter_map(|b| match b { Block::Text { text, .. } => Some(text.as_str()), _ => None }).collect()
        };
        let tools = |r: &Response| -> Vec<(String, String, Value)> {
            r.content.iter().filter_map(|b| match b {
                Block::ToolUse { id, name, input, .. } => Some((id.clone(), name.clone(), input.clone())),
                _ => None,
            }).collect()
        };
        let thinking = |r: &Response| -> String {
            r.content.iter().filter_map(|b| match b { Block::Thinking { thinking, .. } => Some(thinking.as_str()), _ => None }).collect()
        };
        prop_assert_eq!(text(&got), text(&resp));
        prop_assert_eq!(tools(&got), tools(&resp));
        prop_assert_eq!(thinking(&got), thinking(&resp));
        prop_assert_eq!(got.usage.input_tokens, resp.usage.input_tokens);
        prop_assert_eq!(got.usage.output_tokens, resp.usage.output_tokens);
    }
}

// ------------------------------------------------------------------ invariants

fn upstream_bodies(req: &Request) -> Vec<(&'static str, Value)> {
    let mut v = vec![(
        "anthropic",
        serde_json::to_value(anthropic::encode_request(req, &UpstreamOptions::default()).unwrap())
            .unwrap(),
    )];
    for (name, d) in [
        ("openai", Dialect::OpenAi),
        ("compatible", Dialect::Compatible),
    ] {
        v.push((
            name,
            serde_json::to_value(openai::encode_chat_request(req, d).unwrap()).unwrap(),
        ));
    }
    v
}

#[test]
fn temperature_zero_survives_every_path_and_absence_is_never_defaulted() {
    let oa = openai::decode_chat_request(
        br#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":0}"#,
    )
    .unwrap();
    let an = anthropic::decode_request(br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"temperature":0}"#).unwrap();
    let legacy =
        openai::decode_completion_request(br#"{"model":"m","prompt":"x","temperature":0}"#)
            .unwrap();
    assert_eq!(legacy.sampling.temperature, Some(0.0));
    for req in [&oa, &an] {
        assert_eq!(req.sampling.temperature, Some(0.0));
        for (name, body) in upstream_bodies(req) {
            assert_eq!(body["temperature"].as_f64(), Some(0.0), "{name}: {body}");
        }
    }
    let none =
        openai::decode_chat_request(br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#)
            .unwrap();
    assert_eq!(none.sampling.temperature, None);
    for (name, body) in upstream_bodies(&none) {
        assert!(body.get("temperature").is_none(), "{name}: {body}");
        assert!(body.get("top_p").is_none(), "{name}: {body}");
    }
}

#[test]
fn tools_tool_calls_and_images_survive_every_path() {
    // OpenAI client → Anthropic upstream
    let oa = openai::decode_chat_request(fixture("openai_chat_request.json").as_bytes()).unwrap();
    let an_body =
        serde_json::to_value(anthropic::encode_request(&oa, &UpstreamOptions::default()).unwrap())
            .unwrap();
    assert_eq!(an_body["tools"][0]["name"], "get_weather");
    assert_eq!(
        an_body["tools"][0]["input_schema"]["required"],
        json!(["location"])
    );
    let user = &an_body["messages"][0]["content"];
    assert_eq!(user[1]["source"]["type"], "base64");
    assert_eq!(user[1]["source"]["media_type"], "image/png");
    assert_eq!(
        user[2]["source"],
        json!({"type": "url", "url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"})
    );
    assert_eq!(an_body["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(
        an_body["messages"][1]["content"][0]["input"],
        json!({"location": "Paris, France", "unit": "celsius"})
    );
    assert_eq!(an_body["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(
        an_body["messages"][2]["content"][1],
        json!({"type": "text", "text": "Thanks. Summarize."})
    );
    assert_eq!(
        an_body["system"],
        json!([{"type": "text", "text": "You are a terse assistant."}, {"type": "text", "text": "Answer in English."}])
    );

    // Anthropic client → OpenAI upstream
    let an = anthropic::decode_request(fixture("anthropic_request.json").as_bytes()).unwrap();
    let oa_body =
        serde_json::to_value(openai::encode_chat_request(&an, Dialect::Compatible).unwrap())
            .unwrap();
    assert_eq!(oa_body["tools"][1]["function"]["name"], "Bash");
    assert_eq!(
        oa_body["tools"][1]["function"]["parameters"]["required"],
        json!(["command"])
    );
    let parts = &oa_body["messages"][1]["content"];
    assert!(
        parts[1]["image_url"]["url"]
            .as_str()
            .unwrap()
            .starts_with("data:image/jpeg;base64,/9j/")
    );
    assert_eq!(
        parts[2]["image_url"]["url"],
        "https://example.com/diagram.png"
    );
    let asst = &oa_body["messages"][2];
    assert_eq!(
        asst["tool_calls"][0]["function"]["arguments"],
        "{\"file_path\":\"/home/user/project/README.md\"}"
    );
    assert_eq!(
        oa_body["messages"][3],
        json!({"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "# Project\nA demo."})
    );
    assert_eq!(
        oa_body["messages"][4],
        json!({"role": "user", "content": "Now summarize it."})
    );
    assert_eq!(oa_body["messages"][6]["content"], "Error: exit code 1");
    assert_eq!(oa_body["tool_choice"], "auto");
    assert_eq!(oa_body["parallel_tool_calls"], false);
    assert_eq!(oa_body["max_tokens"], 32000);
    assert_eq!(oa_body["reasoning_effort"], "high");
    assert_eq!(oa_body["user"], "user_abc123_account_def456_session_789");
}

#[test]
fn client_supplied_endpoints_and_keys_never_reach_an_upstream_body() {
    let oa = openai::decode_chat_request(fixture("openai_chat_request.json").as_bytes()).unwrap();
    let an = anthropic::decode_request(fixture("anthropic_request.json").as_bytes()).unwrap();
    for req in [&oa, &an] {
        let mut bodies: Vec<String> = upstream_bodies(req)
            .into_iter()
            .map(|(_, b)| b.to_string())
            .collect();
        bodies.push(
            serde_json::to_string(&anthropic::encode_count_tokens_request(req).unwrap()).unwrap(),
        );
        for body in bodies {
            for needle in [
                "evil.example",
                "should-vanish",
                "smuggled",
                "api_base",
                "base_url",
                "api_key",
                "extra_headers",
            ] {
                assert!(!body.contains(needle), "`{needle}` leaked into {body}");
            }
        }
    }
}

#[test]
fn a_local_token_stream_reaches_both_client_protocols() {
    // What a handler does with a local engine: pieces of text → EventBuilder → encoder.
    let mut b = EventBuilder::new();
    let mut events = vec![b.start("chatcmpl-local-1", "qwen3-0.6b")];
    for piece in ["The", " answer", " is", " 42", "."] {
        b.text(piece, &mut events);
    }
    b.usage(&Usage {
        input_tokens: Some(12),
        output_tokens: Some(5),
        ..Default::default()
    });
    b.finish(StopReason::StopSequence("\n\n".into()), &mut events);

    let mut oa = openai::stream::ChatStreamEncoder::new(true, 1);
    let frames: Vec<sse::Frame> = events.iter().flat_map(|e| oa.encode(e)).collect();
    let mut dec = openai::stream::ChatStreamDecoder::new();
    let mut back = Vec::new();
    for e in sse_events(&sse::encode_frames(&frames)) {
        back.extend(dec.push(&e).unwrap());
    }
    let r = aggregate(&back);
    assert_eq!(r.content, vec![Block::text("The answer is 42.")]);
    assert_eq!(
        r.stop_reason,
        Some(StopReason::EndTurn),
        "OpenAI says `stop` for stop sequences"
    );

    let mut an = anthropic::stream::StreamEncoder::new();
    let bytes = sse::encode_frames(&an.encode_all(&events));
    let mut dec = anthropic::stream::StreamDecoder::new();
    let mut back = Vec::new();
    for e in sse_events(&bytes) {
        back.extend(dec.push(&e).unwrap());
    }
    let r = aggregate(&back);
    assert_eq!(r.content, vec![Block::text("The answer is 42.")]);
    assert_eq!(r.stop_reason, Some(StopReason::StopSequence("\n\n".into())));
    assert_eq!(r.usage.output_tokens, Some(5));
    assert_eq!(r.usage.input_tokens, Some(12));
}

#[test]
fn a_non_streaming_openai_upstream_serves_a_streaming_anthropic_client() {
    let resp =
        openai::decode_chat_response(fixture("openai_chat_response.json").as_bytes()).unwrap();
    let mut enc = anthropic::stream::StreamEncoder::new();
    let frames = enc.encode_all(&response_to_events(&resp));
    let names: Vec<&str> = frames.iter().map(|f| f.event.unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start: Value = serde_json::from_str(&frames[0].data).unwrap();
    assert_eq!(start["message"]["usage"]["input_tokens"], 1117 - 1024);
    assert_eq!(start["message"]["usage"]["cache_read_input_tokens"], 1024);
}
