use super::stream::{ChatStreamDecoder, ChatStreamEncoder, CompletionStreamEncoder};
use super::*;
use crate::protocol::canonical::{
    Aggregator, BlockStart, Event, ImageSource, Response, StreamError, ToolChoice as CToolChoice,
};
use crate::protocol::sse;
use crate::protocol::tests::{fixture, sse_events};
use serde_json::{Value, json};

fn decode_err(body: Value) -> Error {
    decode_chat_request(body.to_string().as_bytes()).unwrap_err()
}

fn base(extra: Value) -> Value {
    let mut v = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

#[test]
fn decodes_a_recorded_client_request_with_tools_images_and_tool_results() {
    let req = decode_chat_request(fixture("openai_chat_request.json").as_bytes()).unwrap();
    assert_eq!(req.model, "claude-sonnet-4-5");
    assert_eq!(
        req.system
            .iter()
            .map(|b| b.text.as_str())
            .collect::<Vec<_>>(),
        ["You are a terse assistant.", "Answer in English."]
    );
    assert_eq!(req.messages.len(), 4);
    let user = &req.messages[0];
    assert_eq!(user.role, Role::User);
    assert_eq!(user.content.len(), 3);
    assert!(matches!(&user.content[1], Block::Image {
        source: ImageSource::Base64 { media_type, data },
        detail: Some(d), ..
    } if media_type == "image/png" && data.starts_with("iVBORw0KGgo") && d == "low"));
    assert!(matches!(&user.content[2], Block::Image {
        source: ImageSource::Url { url }, detail: None, ..
    } if url.ends_with("ant.jpg")));
    assert_eq!(
        req.messages[1].content,
        vec![Block::ToolUse {
            id: "call_9Yh8fIBQ0v6mJ3l3vQpCy1mU".into(),
            name: "get_weather".into(),
            input: json!({"location": "Paris, France", "unit": "celsius"}),
            cache_control: None,
        }]
    );
    assert_eq!(req.messages[2].role, Role::Tool);
    assert!(
        matches!(&req.messages[2].content[0], Block::ToolResult { tool_use_id, content, is_error: false, .. }
        if tool_use_id == "call_9Yh8fIBQ0v6mJ3l3vQpCy1mU" && content == &vec![Block::text("{\"temperature\": 18, \"condition\": \"cloudy\"}")])
    );
    assert_eq!(
        req.messages[3],
        Message::text(Role::User, "Thanks. Summarize.")
    );
    assert_eq!(req.tools.len(), 1);
    assert_eq!(
        req.tools[0].input_schema.as_ref().unwrap()["required"],
        json!(["location"])
    );
    assert_eq!(req.tool_choice, Some(CToolChoice::Auto));
    assert_eq!(req.parallel_tool_calls, Some(false));
    assert_eq!(req.sampling.temperature, Some(0.0));
    assert_eq!(req.sampling.top_p, Some(1.0));
    assert_eq!(req.max_tokens, Some(1024));
    assert_eq!(req.stop, vec!["\n\nHuman:".to_string()]);
    assert!(req.stream && req.include_usage);
    assert_eq!(req.user.as_deref(), Some("user-1234"));
}

#[test]
fn unsupported_or_malformed_requests_are_refused_with_a_code_naming_the_feature() {
    let cases: Vec<(Value, Code, &str)> = vec![
        (base(json!({"n": 2})), Code::UnsupportedFeature, "n = 2"),
        (base(json!({"n": 0})), Code::InvalidRequest, "n must be"),
        (
            base(json!({"logit_bias": {"50256": -100}})),
            Code::UnsupportedFeature,
            "logit_bias",
        ),
        (
            base(json!({"audio": {"voice": "alloy", "format": "wav"}})),
            Code::UnsupportedFeature,
            "audio",
        ),
        (
            base(json!({"modalities": ["text", "audio"]})),
            Code::UnsupportedFeature,
            "modalities",
        ),
        (
            base(json!({"prediction": {"type": "content", "content": "x"}})),
            Code::UnsupportedFeature,
            "prediction",
        ),
        (
            base(json!({"functions": [{"name": "f"}]})),
            Code::UnsupportedFeature,
            "functions",
        ),
        (
            base(json!({"web_search_options": {}})),
            Code::UnsupportedFeature,
            "web_search_options",
        ),
        (
            base(json!({"tools": [{"type": "custom", "custom": {"name": "x"}}]})),
            Code::UnsupportedFeature,
            "custom",
        ),
        (
            base(json!({"tool_choice": {"type": "allowed_tools", "allowed_tools": {}}})),
            Code::UnsupportedFeature,
            "allowed_tools",
        ),
        (
            base(json!({"tool_choice": "sometimes"})),
            Code::InvalidRequest,
            "sometimes",
        ),
        (
            base(
                json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]}),
            ),
            Code::UnsupportedFeature,
            "input_audio",
        ),
        (
            base(
                json!({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]}),
            ),
            Code::UnsupportedFeature,
            "file",
        ),
        (
            base(json!({"messages": [{"role": "function", "name": "f", "content": "x"}]})),
            Code::UnsupportedFeature,
            "function",
        ),
        (
            base(
                json!({"messages": [{"role": "user", "content": [{"type": "video", "video": {}}]}]}),
            ),
            Code::InvalidRequest,
            "video",
        ),
        (
            base(
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]}),
            ),
            Code::InvalidRequest,
            "base64",
        ),
        (
            base(json!({"messages": [{"role": "wizard", "content": "x"}]})),
            Code::InvalidRequest,
            "wizard",
        ),
        (json!({"messages": []}), Code::InvalidRequest, "model"),
    ];
    for (body, code, needle) in cases {
        let e = decode_err(body.clone());
        assert_eq!(e.code, code, "{body}: {}", e.message);
        assert!(
            e.message.contains(needle),
            "{body}: `{}` lacks `{needle}`",
            e.message
        );
    }
    let e = decode_chat_request(b"{not json").unwrap_err();
    assert_eq!(e.code, Code::InvalidRequest);
}

#[test]
fn harmless_defaults_of_unsupported_fields_are_accepted() {
    let req = decode_chat_request(
        base(json!({"n": 1, "logit_bias": {}, "modalities": ["text"], "audio": null, "store": false, "service_tier": "auto"}))
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(req.messages.len(), 1);
}

#[test]
fn system_messages_after_the_conversation_started_stay_in_place() {
    let req = decode_chat_request(
        base(json!({"messages": [
            {"role": "system", "content": "first"},
            {"role": "user", "content": "hi"},
            {"role": "system", "content": "reminder"}
        ]}))
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(req.system.len(), 1);
    assert_eq!(req.messages[1], Message::text(Role::System, "reminder"));

    // A named leading system message keeps its place, and so does what follows it.
    let req = decode_chat_request(
        base(json!({"messages": [
            {"role": "system", "content": "persona", "name": "bot"},
            {"role": "system", "content": "second"},
            {"role": "user", "content": "hi"}
        ]}))
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    assert!(req.system.is_empty());
    assert_eq!(req.messages[0].name.as_deref(), Some("bot"));
    assert_eq!(req.messages[1], Message::text(Role::System, "second"));
    let back = serde_json::to_value(encode_chat_request(&req, Dialect::OpenAi).unwrap()).unwrap();
    assert_eq!(back["messages"][0]["content"], "persona");
    assert_eq!(back["messages"][1]["content"], "second");
}

#[test]
fn consecutive_tool_messages_become_one_tool_turn() {
    let req = decode_chat_request(
        base(json!({"messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "a", "content": "1"},
            {"role": "tool", "tool_call_id": "b", "content": [{"type": "text", "text": "2"}]}
        ]}))
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(req.messages.len(), 3);
    assert_eq!(req.messages[2].role, Role::Tool);
    assert_eq!(req.messages[2].content.len(), 2);
}

#[test]
fn legacy_max_tokens_and_thinking_extension_decode() {
    let req = decode_chat_request(
        base(json!({"max_tokens": 77, "thinking": {"type": "enabled", "budget_tokens": 2048}, "top_k": 40}))
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(req.max_tokens, Some(77));
    assert_eq!(
        req.thinking,
        Some(ThinkingConfig::Enabled {
            budget_tokens: 2048
        })
    );
    assert_eq!(req.sampling.top_k, Some(40));
}

fn to_json(w: &ChatRequest) -> Value {
    serde_json::to_value(w).unwrap()
}

#[test]
fn dialects_differ_in_max_tokens_field_and_top_k() {
    let mut req =
        decode_chat_request(base(json!({"max_tokens": 10})).to_string().as_bytes()).unwrap();
    let oa = to_json(&encode_chat_request(&req, Dialect::OpenAi).unwrap());
    assert_eq!(oa["max_completion_tokens"], 10);
    assert!(oa.get("max_tokens").is_none());
    let compat = to_json(&encode_chat_request(&req, Dialect::Compatible).unwrap());
    assert_eq!(compat["max_tokens"], 10);
    assert!(compat.get("max_completion_tokens").is_none());

    req.sampling.top_k = Some(5);
    let e = encode_chat_request(&req, Dialect::OpenAi).unwrap_err();
    assert_eq!(e.code, Code::UnsupportedFeature);
    assert!(e.message.contains("top_k"));
    assert_eq!(
        to_json(&encode_chat_request(&req, Dialect::Compatible).unwrap())["top_k"],
        5
    );
}

#[test]
fn thinking_budget_becomes_reasoning_effort_unless_one_is_given() {
    let mut req = Request {
        model: "o3".into(),
        messages: vec![Message::text(Role::User, "x")],
        thinking: Some(ThinkingConfig::Enabled {
            budget_tokens: 10000,
        }),
        ..Default::default()
    };
    assert_eq!(
        to_json(&encode_chat_request(&req, Dialect::OpenAi).unwrap())["reasoning_effort"],
        "medium"
    );
    for (budget, effort) in [
        (1024, "low"),
        (4095, "low"),
        (4096, "medium"),
        (16384, "high"),
    ] {
        assert_eq!(effort_for_budget(budget), effort);
    }
    req.reasoning_effort = Some("minimal".into());
    assert_eq!(
        to_json(&encode_chat_request(&req, Dialect::OpenAi).unwrap())["reasoning_effort"],
        "minimal"
    );
    req.reasoning_effort = None;
    req.thinking = Some(ThinkingConfig::Disabled);
    assert!(
        to_json(&encode_chat_request(&req, Dialect::OpenAi).unwrap())
            .get("reasoning_effort")
            .is_none()
    );
}

#[test]
fn anthropic_only_content_is_encoded_as_documented() {
    let req = Request {
        model: "gpt-4o".into(),
        system: vec![SystemBlock {
            text: "sys".into(),
            cache_control: Some(Default::default()),
        }],
        messages: vec![
            Message::text(Role::User, "q"),
            Message::new(
                Role::Assistant,
                vec![
                    Block::Thinking {
                        thinking: "secret".into(),
                        signature: Some("sig".into()),
                    },
                    Block::RedactedThinking { data: "xx".into() },
                    Block::text("calling"),
                    Block::ToolUse {
                        id: "t1".into(),
                        name: "run".into(),
                        input: json!({"cmd": "false"}),
                        cache_control: None,
                    },
                ],
            ),
            Message::new(
                Role::Tool,
                vec![Block::ToolResult {
                    tool_use_id: "t1".into(),
                    content: vec![Block::text("exit 1")],
                    is_error: true,
                    cache_control: Some(Default::default()),
                }],
            ),
        ],
        ..Default::default()
    };
    let v = to_json(&encode_chat_request(&req, Dialect::OpenAi).unwrap());
    assert_eq!(
        v["messages"],
        json!([
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "calling", "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "run", "arguments": "{\"cmd\":\"false\"}"}}]},
            {"role": "tool", "content": "Error: exit 1", "tool_call_id": "t1"}
        ])
    );
    assert!(!v.to_string().contains("secret"));
}

#[test]
fn images_inside_tool_results_are_refused_for_openai() {
    let req = Request {
        model: "gpt-4o".into(),
        messages: vec![Message::new(
            Role::Tool,
            vec![Block::ToolResult {
                tool_use_id: "t".into(),
                content: vec![Block::Image {
                    source: ImageSource::Url {
                        url: "https://x/y.png".into(),
                    },
                    detail: None,
                    cache_control: None,
                }],
                is_error: false,
                cache_control: None,
            }],
        )],
        ..Default::default()
    };
    let e = encode_chat_request(&req, Dialect::Compatible).unwrap_err();
    assert_eq!(e.code, Code::UnsupportedFeature);
    assert!(e.message.contains("image inside a tool result"));
}

#[test]
fn stream_options_only_accompany_a_stream() {
    let mut req = Request {
        model: "m".into(),
        include_usage: true,
        ..Default::default()
    };
    assert!(
        to_json(&encode_chat_request(&req, Dialect::OpenAi).unwrap())
            .get("stream_options")
            .is_none()
    );
    req.stream = true;
    let v = to_json(&encode_chat_request(&req, Dialect::OpenAi).unwrap());
    assert_eq!(v["stream"], true);
    assert_eq!(v["stream_options"], json!({"include_usage": true}));
}

fn decode_stream(text: &str) -> Vec<Event> {
    let mut d = ChatStreamDecoder::new();
    let mut out = Vec::new();
    for e in sse_events(text.as_bytes()) {
        out.extend(d.push(&e).unwrap());
    }
    out.extend(d.finish().unwrap());
    out
}

fn aggregate(events: &[Event]) -> Response {
    let mut a = Aggregator::new();
    for e in events {
        a.push(e).unwrap();
    }
    a.finish().unwrap()
}

#[test]
fn recorded_parallel_tool_call_stream_becomes_two_tool_use_blocks() {
    let events = decode_stream(&fixture("openai_stream_tool_calls.sse"));
    assert_eq!(
        events[..4],
        [
            Event::MessageStart {
                id: "chatcmpl-AzL5vdgkDXU8JzSyPRcrPyEY2Ns0A".into(),
                model: "gpt-4o-2024-08-06".into()
            },
            Event::BlockStart {
                index: 0,
                block: BlockStart::ToolUse {
                    id: "call_9Yh8fIBQ0v6mJ3l3vQpCy1mU".into(),
                    name: "get_weather".into()
                }
            },
            Event::ToolInputDelta {
                index: 0,
                partial_json: "{\"lo".into()
            },
            Event::ToolInputDelta {
                index: 0,
                partial_json: "cation\": \"P".into()
            },
        ]
    );
    let resp = aggregate(&events);
    assert_eq!(resp.stop_reason, Some(StopReason::ToolUse));
    assert_eq!(
        resp.content,
        vec![
            Block::ToolUse {
                id: "call_9Yh8fIBQ0v6mJ3l3vQpCy1mU".into(),
                name: "get_weather".into(),
                input: json!({"location": "Paris, France"}),
                cache_control: None
            },
            Block::ToolUse {
                id: "call_kP0mDsX3Vd7Q5bq0Lr6nTzAe".into(),
                name: "get_weather".into(),
                input: json!({"location": "Tokyo, Japan"}),
                cache_control: None
            },
        ]
    );
    assert_eq!(
        resp.usage,
        Usage {
            input_tokens: Some(80),
            output_tokens: Some(51),
            cache_read_tokens: Some(64),
            cache_write_tokens: None,
            reasoning_tokens: Some(0)
        }
    );
    // usage comes before the stop, and the stop is last
    let n = events.len();
    assert!(matches!(events[n - 2], Event::Usage(_)));
    assert!(matches!(events[n - 1], Event::MessageStop { .. }));
}

#[test]
fn recorded_reasoning_stream_becomes_a_thinking_block_then_text() {
    let events = decode_stream(&fixture("openai_stream_reasoning.sse"));
    let resp = aggregate(&events);
    assert_eq!(
        resp.content,
        vec![
            Block::Thinking {
                thinking: "9.11 vs 9.9: compare tenths: 1 < 9.".into(),
                signature: None
            },
            Block::text("9.9 is larger."),
        ]
    );
    assert_eq!(resp.stop_reason, Some(StopReason::EndTurn));
    assert_eq!(resp.usage.reasoning_tokens, Some(30));
    assert_eq!(resp.usage.input_tokens, Some(17));
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    .to_string()
}

fn feed(chunks: &[String]) -> Result<Vec<Event>> {
    let mut d = ChatStreamDecoder::new();
    let mut out = Vec::new();
    for c in chunks {
        out.extend(d.push_data(c)?);
    }
    out.extend(d.finish()?);
    Ok(out)
}

#[test]
fn a_chunk_that_fails_half_way_appends_none_of_its_events() {
    let mut d = ChatStreamDecoder::new();
    let mut out = Vec::new();
    d.push_data_to(
        &chunk(json!({"role": "assistant", "content": "Hi"}), None),
        &mut out,
    )
    .unwrap();
    let kept = out.len();
    // Text for choice 0 decodes before choice 1 is refused.
    let two = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": null},
                    {"index": 1, "delta": {"content": "x"}, "finish_reason": null}]})
    .to_string();
    let err = d.push_data_to(&two, &mut out).unwrap_err();
    assert_eq!(err.code, Code::ProviderBadResponse);
    assert_eq!(out.len(), kept);
}

#[test]
fn tool_call_id_name_and_arguments_may_arrive_in_separate_chunks_and_text_may_follow() {
    let events = feed(&[
        chunk(json!({"role": "assistant", "content": "Checking."}), None),
        chunk(json!({"tool_calls": [{"index": 0, "id": "call_1"}]}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": ":1}"}}]}),
            None,
        ),
        chunk(json!({"content": "Done."}), None),
        chunk(json!({}), Some("tool_calls")),
        "[DONE]".into(),
    ])
    .unwrap();
    let resp = aggregate(&events);
    assert_eq!(
        resp.content,
        vec![
            Block::text("Checking."),
            Block::ToolUse {
                id: "call_1".into(),
                name: "f".into(),
                input: json!({"a": 1}),
                cache_control: None
            },
            Block::text("Done."),
        ]
    );
}

#[test]
fn several_complete_tool_calls_in_one_chunk_each_become_a_block() {
    // Ollama / LM Studio send whole tool calls at once, sometimes several per delta.
    let events = feed(&[
        chunk(json!({"role": "assistant", "content": "", "tool_calls": [
            {"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}},
            {"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}), None),
        chunk(json!({}), Some("tool_calls")),
        "[DONE]".into(),
    ])
    .unwrap();
    let resp = aggregate(&events);
    assert_eq!(resp.content.len(), 2);
    assert!(
        matches!(&resp.content[1], Block::ToolUse { id, name, input, .. } if id == "b" && name == "g" && input == &json!({}))
    );
}

#[test]
fn interleaved_tool_arguments_are_reported_not_misassigned() {
    let e = feed(&[
        chunk(json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{"}}]}), None),
        chunk(json!({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{"}}]}), None),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}), None),
    ])
    .unwrap_err();
    assert_eq!(e.code, Code::ProviderBadResponse);
}

#[test]
fn a_cut_off_stream_ends_with_an_error_event_and_done_without_finish_is_end_turn() {
    let events = feed(&[chunk(json!({"content": "partial"}), None)]).unwrap();
    assert!(matches!(
        events.last(),
        Some(Event::Error(StreamError {
            code: Code::UpstreamError,
            ..
        }))
    ));
    let events = feed(&[chunk(json!({"content": "x"}), None), "[DONE]".into()]).unwrap();
    assert_eq!(
        events.last(),
        Some(&Event::MessageStop {
            stop_reason: StopReason::EndTurn
        })
    );
}

#[test]
fn an_error_chunk_mid_stream_becomes_an_error_event() {
    let events = feed(&[
        chunk(json!({"content": "x"}), None),
        json!({"error": {"message": "The server had an error", "type": "server_error", "code": null}}).to_string(),
    ])
    .unwrap();
    let Some(Event::Error(e)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(e.code, Code::UpstreamError);
    assert!(e.message.contains("The server had an error"));
}

#[test]
fn a_second_choice_in_the_stream_is_a_bad_response() {
    let c = json!({"id": "c", "model": "m", "choices": [{"index": 1, "delta": {"content": "x"}}]})
        .to_string();
    assert_eq!(feed(&[c]).unwrap_err().code, Code::ProviderBadResponse);
}

fn encode_stream(enc: &mut ChatStreamEncoder, events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .flat_map(|e| enc.encode(e))
        .map(|f| {
            assert_eq!(f.event, None);
            serde_json::from_str(&f.data).unwrap_or(Value::String(f.data))
        })
        .collect()
}

fn sample_events() -> Vec<Event> {
    let mut b = crate::protocol::canonical::EventBuilder::new();
    let mut out = vec![b.start("msg_1", "claude-x")];
    b.thinking("hmm", &mut out);
    b.signature("sig", &mut out);
    b.text("Hi", &mut out);
    b.tool_call("toolu_1", "get", "{\"q\":1}", &mut out);
    b.usage(&Usage {
        input_tokens: Some(10),
        output_tokens: Some(4),
        cache_read_tokens: Some(3),
        ..Default::default()
    });
    b.finish(StopReason::ToolUse, &mut out);
    out
}

#[test]
fn client_stream_has_openai_chunk_shapes_with_usage_chunk_and_done() {
    let mut enc = ChatStreamEncoder::new(true, 1700000000);
    let chunks = encode_stream(&mut enc, &sample_events());
    let head = |delta: Value, finish: Value| {
        json!({"id": "msg_1", "object": "chat.completion.chunk", "created": 1700000000, "model": "claude-x",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}], "usage": null})
    };
    assert_eq!(
        chunks,
        vec![
            head(json!({"role": "assistant", "content": ""}), Value::Null),
            head(json!({"reasoning_content": "hmm"}), Value::Null),
            head(json!({"content": "Hi"}), Value::Null),
            head(
                json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "get", "arguments": ""}}]}),
                Value::Null
            ),
            head(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"q\":1}"}}]}),
                Value::Null
            ),
            head(json!({}), json!("tool_calls")),
            json!({"id": "msg_1", "object": "chat.completion.chunk", "created": 1700000000, "model": "claude-x", "choices": [],
                "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14, "prompt_tokens_details": {"cached_tokens": 3}}}),
            Value::String("[DONE]".into()),
        ]
    );
}

#[test]
fn without_include_usage_chunks_have_no_usage_key_and_no_usage_chunk() {
    let mut enc = ChatStreamEncoder::new(false, 1);
    let chunks = encode_stream(&mut enc, &sample_events());
    assert_eq!(chunks.len(), 7);
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(chunks.last(), Some(&Value::String("[DONE]".into())));
}

#[test]
fn second_tool_call_gets_the_next_openai_index_and_errors_end_the_stream() {
    let mut b = crate::protocol::canonical::EventBuilder::new();
    let mut ev = vec![b.start("m", "x")];
    b.tool_call("a", "f", "{}", &mut ev);
    b.tool_call("b", "g", "{}", &mut ev);
    ev.push(Event::Error(StreamError {
        code: Code::UpstreamError,
        message: "upstream died".into(),
    }));
    ev.push(Event::MessageStop {
        stop_reason: StopReason::EndTurn,
    });
    let mut enc = ChatStreamEncoder::new(false, 1);
    let chunks = encode_stream(&mut enc, &ev);
    assert_eq!(
        chunks[3]["choices"][0]["delta"]["tool_calls"][0]["index"],
        1
    );
    assert_eq!(chunks[3]["choices"][0]["delta"]["tool_calls"][0]["id"], "b");
    let last = chunks.last().unwrap();
    assert_eq!(last["error"]["message"], "upstream died");
    assert_eq!(last["error"]["code"], "upstream_error");
    assert!(!chunks.contains(&Value::String("[DONE]".into())));
}

#[test]
fn recorded_response_decodes_and_client_response_has_openai_shape() {
    let resp = decode_chat_response(fixture("openai_chat_response.json").as_bytes()).unwrap();
    assert_eq!(resp.id, "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG");
    assert_eq!(resp.content.len(), 3);
    assert_eq!(resp.content[0], Block::text("Let me look that up."));
    assert!(matches!(&resp.content[2], Block::ToolUse { input, .. } if input == &json!({})));
    assert_eq!(resp.stop_reason, Some(StopReason::ToolUse));
    assert_eq!(resp.usage.cache_read_tokens, Some(1024));

    let out = serde_json::to_value(encode_chat_response(&resp, 1741570283)).unwrap();
    assert_eq!(
        out,
        json!({
            "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
            "object": "chat.completion",
            "created": 1741570283,
            "model": "gpt-4o-2024-08-06",
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Let me look that up.",
                    "tool_calls": [
                        {"id": "call_abc123", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Boston, MA\"}"}},
                        {"id": "call_def456", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
                    ],
                    "refusal": null
                },
                "logprobs": null,
                "finish_reason": "tool_calls"
            }],
            "usage": {"prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
                "prompt_tokens_details": {"cached_tokens": 1024}, "completion_tokens_details": {"reasoning_tokens": 0}}
        })
    );
}

#[test]
fn refusals_and_malformed_responses() {
    let body = json!({"id": "x", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}, "finish_reason": "stop"}]});
    let r = decode_chat_response(body.to_string().as_bytes()).unwrap();
    assert_eq!(r.stop_reason, Some(StopReason::Refusal));
    assert_eq!(r.content, vec![Block::text("I can't help with that.")]);
    let e = decode_chat_response(br#"{"id":"x","choices":[]}"#).unwrap_err();
    assert_eq!(e.code, Code::ProviderBadResponse);
    let e = decode_chat_response(b"<html>").unwrap_err();
    assert_eq!(e.code, Code::ProviderBadResponse);
}

#[test]
fn finish_reasons_map_both_ways() {
    for (wire, canon) in [
        ("stop", StopReason::EndTurn),
        ("length", StopReason::MaxTokens),
        ("tool_calls", StopReason::ToolUse),
        ("content_filter", StopReason::Refusal),
        ("weird", StopReason::Other("weird".into())),
    ] {
        assert_eq!(stop_reason_from_finish(wire), canon);
        assert_eq!(finish_reason(&canon), wire);
    }
    assert_eq!(finish_reason(&StopReason::StopSequence("x".into())), "stop");
    assert_eq!(finish_reason(&StopReason::ContextWindowExceeded), "length");
    assert_eq!(
        stop_reason_from_finish("function_call"),
        StopReason::ToolUse
    );
}

#[test]
fn legacy_completion_requests_decode_to_a_raw_prompt() {
    let r = decode_completion_request(br#"{"model":"m","prompt":"Once upon","temperature":0,"stop":["\n"],"stream":true,"stream_options":{"include_usage":true}}"#).unwrap();
    assert!(r.raw_prompt);
    assert_eq!(r.messages, vec![Message::text(Role::User, "Once upon")]);
    assert_eq!(r.max_tokens, Some(16), "OpenAI's documented default");
    assert_eq!(r.sampling.temperature, Some(0.0));
    assert!(r.stream && r.include_usage);
    let r = decode_completion_request(br#"{"model":"m","prompt":["one"],"max_tokens":5}"#).unwrap();
    assert_eq!(r.messages, vec![Message::text(Role::User, "one")]);
    assert_eq!(r.max_tokens, Some(5));
    for (body, needle) in [
        (r#"{"model":"m","prompt":["a","b"]}"#, "several prompts"),
        (r#"{"model":"m","prompt":[1,2,3]}"#, "token-id"),
        (r#"{"model":"m","prompt":"x","echo":true}"#, "echo"),
        (r#"{"model":"m","prompt":"x","suffix":"y"}"#, "suffix"),
        (r#"{"model":"m","prompt":"x","best_of":3}"#, "best_of"),
        (r#"{"model":"m","prompt":"x","logprobs":2}"#, "logprobs"),
        (r#"{"model":"m","prompt":"x","n":2}"#, "n = 2"),
    ] {
        let e = decode_completion_request(body.as_bytes()).unwrap_err();
        assert_eq!(e.code, Code::UnsupportedFeature, "{body}");
        assert!(e.message.contains(needle), "{}", e.message);
    }
    // A raw prompt cannot go to a chat upstream.
    let r = decode_completion_request(br#"{"model":"m","prompt":"x"}"#).unwrap();
    assert_eq!(
        encode_chat_request(&r, Dialect::Compatible)
            .unwrap_err()
            .code,
        Code::UnsupportedFeature
    );
}

#[test]
fn legacy_completion_response_and_stream_shapes() {
    let resp = Response {
        id: "cmpl-1".into(),
        model: "m".into(),
        content: vec![Block::text("Hello"), Block::text(" world")],
        stop_reason: Some(StopReason::MaxTokens),
        usage: Usage {
            input_tokens: Some(2),
            output_tokens: Some(3),
            ..Default::default()
        },
        logprobs: None,
    };
    assert_eq!(
        serde_json::to_value(encode_completion_response(&resp, 9)).unwrap(),
        json!({"id": "cmpl-1", "object": "text_completion", "created": 9, "model": "m",
            "choices": [{"text": "Hello world", "index": 0, "logprobs": null, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}})
    );
    let mut enc = CompletionStreamEncoder::new(true, 9);
    let frames: Vec<String> = crate::protocol::canonical::response_to_events(&resp)
        .iter()
        .flat_map(|e| enc.encode(e))
        .map(|f| f.data)
        .collect();
    let v: Vec<Value> = frames[..frames.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(v[0]["choices"][0]["text"], "Hello");
    assert_eq!(v[0]["usage"], Value::Null);
    assert_eq!(v[1]["choices"][0]["text"], " world");
    assert_eq!(v[2]["choices"][0]["finish_reason"], "length");
    assert_eq!(v[3]["choices"], json!([]));
    assert_eq!(v[3]["usage"]["total_tokens"], 5);
    assert_eq!(frames.last().unwrap(), "[DONE]");
}

#[test]
fn models_list_has_openai_shape() {
    let l = models_list(&[ModelEntry {
        id: "qwen3-4b".into(),
        created: 1,
        owned_by: "switchyard".into(),
    }]);
    assert_eq!(
        serde_json::to_value(l).unwrap(),
        json!({"object": "list", "data": [{"id": "qwen3-4b", "object": "model", "created": 1, "owned_by": "switchyard"}]})
    );
}

#[test]
fn logprobs_survive_stream_and_response() {
    let body = json!({"id": "x", "model": "m", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": "Hi"},
        "logprobs": {"content": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "top_logprobs": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105]}, {"token": "Hello", "logprob": -1.25, "bytes": null}]}]},
        "finish_reason": "stop"}]});
    let r = decode_chat_response(body.to_string().as_bytes()).unwrap();
    let lp = r.logprobs.clone().unwrap();
    assert_eq!(lp[0].top_logprobs[1].token, "Hello");
    let out = serde_json::to_value(encode_chat_response(&r, 0)).unwrap();
    assert_eq!(
        out["choices"][0]["logprobs"],
        body["choices"][0]["logprobs"]
    );
    let mut enc = ChatStreamEncoder::new(false, 0);
    let chunks = encode_stream(
        &mut enc,
        &crate::protocol::canonical::response_to_events(&r),
    );
    let with_lp: Vec<&Value> = chunks
        .iter()
        .filter(|c| !c["choices"][0]["logprobs"].is_null() && c.is_object())
        .collect();
    assert_eq!(with_lp.len(), 1);
    assert_eq!(
        with_lp[0]["choices"][0]["logprobs"],
        body["choices"][0]["logprobs"]
    );
}

#[test]
fn sse_layer_frames_the_client_stream() {
    let mut enc = ChatStreamEncoder::new(false, 0);
    let frames: Vec<sse::Frame> = sample_events().iter().flat_map(|e| enc.encode(e)).collect();
    let bytes = sse::encode_frames(&frames);
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("data: {\"id\":\"msg_1\""));
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[test]
fn tool_call_deltas_without_an_index_are_told_apart_by_their_ids() {
    // Some compatible servers leave `index` out. Each new id starts the next call; deltas
    // without an id continue the last one. (They used to be merged into one call.)
    let events = feed(&[
        chunk(
            json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"function": {"arguments": "1}"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [
            {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        "[DONE]".into(),
    ])
    .unwrap();
    let resp = aggregate(&events);
    assert_eq!(resp.content.len(), 2, "{:?}", resp.content);
    assert!(
        matches!(&resp.content[0], Block::ToolUse { id, name, input, .. } if id == "a" && name == "f" && input == &json!({"x": 1}))
    );
    assert!(
        matches!(&resp.content[1], Block::ToolUse { id, name, .. } if id == "b" && name == "g")
    );
}
