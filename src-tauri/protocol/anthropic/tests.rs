use super::stream::{StreamDecoder, StreamEncoder, ping_frame};
use super::*;
use crate::protocol::canonical::{
    Aggregator, BlockStart, Event, EventBuilder, Response, StreamError, TokenLogprob,
};
use crate::protocol::sse;
use crate::protocol::tests::{fixture, sse_events};
use serde_json::{Value, json};

fn base(extra: Value) -> Value {
    let mut v = json!({"model": "claude", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn decode(v: &Value) -> Result<Request> {
    decode_request(v.to_string().as_bytes())
}

#[test]
fn decodes_a_recorded_claude_code_style_request() {
    let req = decode_request(fixture("anthropic_request.json").as_bytes()).unwrap();
    assert_eq!(req.model, "claude-sonnet-4-5-20250929");
    assert_eq!(req.max_tokens, Some(32000));
    assert_eq!(req.system.len(), 2);
    assert_eq!(
        req.system[0].cache_control,
        Some(CacheControl { ttl: None })
    );
    assert_eq!(
        req.system[1].cache_control,
        Some(CacheControl {
            ttl: Some("1h".into())
        })
    );
    let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::User,
            Role::Assistant,
            Role::Tool
        ],
        "tool results split from the text that follows them"
    );
    assert!(
        matches!(&req.messages[0].content[1], Block::Image { source: ImageSource::Base64 { media_type, .. }, .. } if media_type == "image/jpeg")
    );
    assert!(
        matches!(&req.messages[0].content[2], Block::Image { source: ImageSource::Url { url }, .. } if url == "https://example.com/diagram.png")
    );
    assert!(
        matches!(&req.messages[1].content[0], Block::Thinking { signature: Some(s), .. } if s.starts_with("ErUB"))
    );
    assert!(matches!(
        &req.messages[1].content[1],
        Block::RedactedThinking { .. }
    ));
    assert_eq!(
        req.messages[1].content[3],
        Block::ToolUse {
            id: "toolu_01A09q90qw90lq917835lq9".into(),
            name: "Read".into(),
            input: json!({"file_path": "/home/user/project/README.md"}),
            cache_control: None
        }
    );
    assert_eq!(
        req.messages[2].content,
        vec![Block::ToolResult {
            tool_use_id: "toolu_01A09q90qw90lq917835lq9".into(),
            content: vec![Block::text("# Project\nA demo.")],
            is_error: false,
            cache_control: Some(CacheControl::default())
        }]
    );
    assert_eq!(
        req.messages[3],
        Message::text(Role::User, "Now summarize it.")
    );
    assert!(
        matches!(&req.messages[5].content[0], Block::ToolResult { is_error: true, content, .. } if content == &vec![Block::text("exit code 1")])
    );
    assert_eq!(req.tools.len(), 2);
    assert_eq!(req.tools[1].cache_control, Some(CacheControl::default()));
    assert_eq!(req.tool_choice, Some(ToolChoice::Auto));
    assert_eq!(req.parallel_tool_calls, Some(false));
    assert_eq!(
        req.user.as_deref(),
        Some("user_abc123_account_def456_session_789")
    );
    assert_eq!(
        req.thinking,
        Some(ThinkingConfig::Enabled {
            budget_tokens: 31999
        })
    );
    // A thinking Claude takes temperature 1 only.
    assert_eq!(req.sampling.temperature, Some(1.0));
    assert_eq!(req.stop, vec!["</answer>".to_string()]);
    assert!(req.stream);
}

#[test]
fn recorded_request_re_encodes_to_the_same_json() {
    let text = fixture("anthropic_request.json");
    let req = decode_request(text.as_bytes()).unwrap();
    let out =
        serde_json::to_value(encode_request(&req, &UpstreamOptions::default()).unwrap()).unwrap();
    let mut expected: Value = serde_json::from_str(&text).unwrap();
    let obj = expected.as_object_mut().unwrap();
    obj.remove("api_key");
    obj.remove("base_url");
    // Normal forms: a lone text block in a tool result is sent as a string, and numbers
    // are written as f64.
    expected["messages"][2]["content"][0]["content"] = json!("# Project\nA demo.");
    expected["temperature"] = json!(1.0);
    assert_eq!(out, expected);
}

#[test]
fn unsupported_or_malformed_requests_are_refused_with_a_code_naming_the_feature() {
    let user = |content: Value| json!({"messages": [{"role": "user", "content": content}]});
    let cases: Vec<(Value, Code, &str)> = vec![
        (
            json!({"model": "c", "messages": []}),
            Code::InvalidRequest,
            "max_tokens",
        ),
        (
            base(user(
                json!([{"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]),
            )),
            Code::UnsupportedFeature,
            "document",
        ),
        (
            base(user(
                json!([{"type": "image", "source": {"type": "file", "file_id": "file_1"}}]),
            )),
            Code::UnsupportedFeature,
            "file",
        ),
        (
            base(user(
                json!([{"type": "text", "text": "x", "citations": [{"type": "char_location"}]}]),
            )),
            Code::UnsupportedFeature,
            "citations",
        ),
        (
            base(user(
                json!([{"type": "tool_use", "id": "t", "name": "f", "input": {}}]),
            )),
            Code::InvalidRequest,
            "tool_use",
        ),
        (
            base(user(
                json!([{"type": "thinking", "thinking": "x", "signature": "s"}]),
            )),
            Code::InvalidRequest,
            "thinking",
        ),
        (
            base(user(json!([{"type": "hologram"}]))),
            Code::InvalidRequest,
            "hologram",
        ),
        (
            base(user(
                json!([{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "search_result"}]}]),
            )),
            Code::UnsupportedFeature,
            "search_result",
        ),
        (
            base(
                json!({"messages": [{"role": "assistant", "content": [{"type": "server_tool_use"}]}]}),
            ),
            Code::UnsupportedFeature,
            "server_tool_use",
        ),
        (
            base(
                json!({"messages": [{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]}),
            ),
            Code::InvalidRequest,
            "tool_result",
        ),
        (
            base(
                json!({"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]}),
            ),
            Code::UnsupportedFeature,
            "web_search_20250305",
        ),
        (
            base(json!({"tools": [{"name": "f"}]})),
            Code::InvalidRequest,
            "input_schema",
        ),
        (
            base(json!({"mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}]})),
            Code::UnsupportedFeature,
            "mcp_servers",
        ),
        (
            base(json!({"container": "c_1"})),
            Code::UnsupportedFeature,
            "container",
        ),
        (
            base(json!({"messages": [{"role": "system", "content": [
                {"type": "image", "source": {"type": "url", "url": "https://x.example/a.png"}}]}]})),
            Code::InvalidRequest,
            "system message holds text blocks only",
        ),
        (
            base(json!({"messages": [{"role": "wizard", "content": "x"}]})),
            Code::InvalidRequest,
            "wizard",
        ),
    ];
    for (body, code, needle) in cases {
        let e = decode(&body).unwrap_err();
        assert_eq!(e.code, code, "{body}: {}", e.message);
        assert!(
            e.message.contains(needle),
            "{body}: `{}` lacks `{needle}`",
            e.message
        );
    }
}

#[test]
fn count_tokens_request_needs_no_max_tokens_and_re_encodes_only_accepted_fields() {
    let req = decode_count_tokens_request(
        br#"{"model":"claude","messages":[{"role":"user","content":"hi"}],"system":"s","tools":[{"name":"f","input_schema":{"type":"object"}}],"thinking":{"type":"enabled","budget_tokens":2000}}"#,
    )
    .unwrap();
    assert_eq!(req.max_tokens, None);
    let mut with_sampling = req.clone();
    with_sampling.sampling.temperature = Some(0.0);
    with_sampling.stream = true;
    let v = serde_json::to_value(encode_count_tokens_request(&with_sampling).unwrap()).unwrap();
    assert_eq!(
        v,
        json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}], "system": "s",
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "thinking": {"type": "enabled", "budget_tokens": 2000}})
    );
    assert_eq!(
        serde_json::to_value(count_tokens_response(42)).unwrap(),
        json!({"input_tokens": 42})
    );
    assert_eq!(
        decode_count_tokens_response(br#"{"input_tokens": 7}"#).unwrap(),
        7
    );
    assert_eq!(
        decode_count_tokens_response(b"{}").unwrap_err().code,
        Code::ProviderBadResponse
    );
}

fn oa_request(extra: Value) -> Request {
    let mut v = json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    crate::protocol::openai::decode_chat_request(v.to_string().as_bytes()).unwrap()
}

fn encode_json(req: &Request) -> Result<Value> {
    encode_request(req, &UpstreamOptions::default()).map(|w| serde_json::to_value(w).unwrap())
}

#[test]
fn what_anthropic_cannot_express_is_refused_by_name() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({"seed": 7}), "seed"),
        (json!({"presence_penalty": 0.5}), "presence_penalty"),
        (json!({"frequency_penalty": -1}), "frequency_penalty"),
        (json!({"logprobs": true}), "logprobs"),
        (json!({"top_logprobs": 2}), "top_logprobs"),
        (
            json!({"response_format": {"type": "json_object"}}),
            "json_object",
        ),
        (json!({"verbosity": "low"}), "verbosity"),
        (json!({"temperature": 0.5, "top_p": 0.9}), "top_p"),
        (json!({"reasoning_effort": "extreme"}), "extreme"),
        (
            json!({"reasoning_effort": "low", "max_tokens": 1000}),
            "at least 1024",
        ),
        (
            json!({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "late"}]}),
            "system message",
        ),
        (
            json!({"messages": [{"role": "user", "content": "a", "name": "alice"}]}),
            "name",
        ),
    ];
    for (extra, needle) in cases {
        let e = encode_json(&oa_request(extra.clone())).unwrap_err();
        assert_eq!(e.code, Code::UnsupportedFeature, "{extra}");
        assert!(e.message.contains(needle), "{extra}: {}", e.message);
        assert!(e.message.contains("Anthropic"), "{}", e.message);
    }
}

#[test]
fn openai_defaults_that_mean_nothing_pass_and_mappings_apply() {
    let v = encode_json(&oa_request(json!({
        "presence_penalty": 0, "frequency_penalty": 0, "logprobs": false,
        "response_format": {"type": "text"}, "user": "u1", "stop": ["END"],
        "reasoning_effort": "high", "max_tokens": 20000,
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "parallel_tool_calls": false, "tool_choice": "required"
    })))
    .unwrap();
    assert_eq!(v["metadata"], json!({"user_id": "u1"}));
    assert_eq!(v["stop_sequences"], json!(["END"]));
    // Thinking takes at most half of the client's max_tokens.
    assert_eq!(
        v["thinking"],
        json!({"type": "enabled", "budget_tokens": 10000})
    );
    assert_eq!(v["max_tokens"], 20000);
    assert_eq!(
        v["tools"],
        json!([{"name": "f", "input_schema": {"type": "object", "properties": {}}}])
    );
    assert_eq!(
        v["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    // Without a client max_tokens the answer keeps the default on top of the budget
    // (it used to be max_tokens - 1 of thinking and one token of answer).
    let v = encode_json(&oa_request(json!({"reasoning_effort": "high"}))).unwrap();
    assert_eq!(v["max_tokens"], DEFAULT_MAX_TOKENS + 16384);
    assert_eq!(v["thinking"]["budget_tokens"], 16384);
    // top_p 1 is the default and is left out, so it can go with a temperature.
    let v = encode_json(&oa_request(json!({"temperature": 0.2, "top_p": 1}))).unwrap();
    assert_eq!(v["temperature"], json!(0.2));
    assert!(v.get("top_p").is_none());
    // A JSON schema becomes Anthropic's structured output.
    let v = encode_json(&oa_request(json!({"response_format": {"type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}})))
    .unwrap();
    assert_eq!(
        v["output_config"],
        json!({"format": {"type": "json_schema", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}})
    );
    // An assistant turn of `content: ""` plus tool calls has no empty text block.
    let v = encode_json(&oa_request(json!({"messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "r"}
    ]})))
    .unwrap();
    assert_eq!(
        v["messages"][1]["content"],
        json!([{"type": "tool_use", "id": "a", "name": "f", "input": {}}])
    );
    let v = encode_json(&oa_request(json!({"reasoning_effort": "none"}))).unwrap();
    assert!(v.get("thinking").is_none());
    // parallel flag alone rides on an auto tool_choice, but only when there are tools
    let v = encode_json(&oa_request(json!({"parallel_tool_calls": false, "tools": [{"type": "function", "function": {"name": "f"}}]}))).unwrap();
    assert_eq!(
        v["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    let v = encode_json(&oa_request(json!({"parallel_tool_calls": false}))).unwrap();
    assert!(v.get("tool_choice").is_none());
    let v = encode_json(&oa_request(
        json!({"tool_choice": "none", "tools": [{"type": "function", "function": {"name": "f"}}]}),
    ))
    .unwrap();
    assert_eq!(v["tool_choice"], json!({"type": "none"}));
}

#[test]
fn tool_results_then_user_text_share_one_user_message_results_first() {
    let req = oa_request(json!({"messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "let me see", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}},
            {"id": "b", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "one"},
        {"role": "tool", "tool_call_id": "b", "content": "two"},
        {"role": "user", "content": "and?"}
    ]}));
    let v = encode_json(&req).unwrap();
    assert_eq!(
        v["messages"],
        json!([
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "let me see"},
                {"type": "tool_use", "id": "a", "name": "f", "input": {"x": 1}},
                {"type": "tool_use", "id": "b", "name": "f", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "a", "content": "one"},
                {"type": "tool_result", "tool_use_id": "b", "content": "two"},
                {"type": "text", "text": "and?"}]}
        ])
    );
}

#[test]
fn unsigned_reasoning_is_left_out_and_non_object_tool_arguments_are_refused() {
    let req = Request {
        model: "claude".into(),
        messages: vec![
            Message::text(Role::User, "q"),
            Message::new(
                Role::Assistant,
                vec![
                    Block::Thinking {
                        thinking: "from deepseek".into(),
                        signature: None,
                    },
                    Block::Thinking {
                        thinking: "echoed back by an Anthropic client".into(),
                        signature: Some(String::new()),
                    },
                    Block::text("a"),
                ],
            ),
        ],
        ..Default::default()
    };
    let v = encode_json(&req).unwrap();
    assert_eq!(
        v["messages"][1]["content"],
        json!([{"type": "text", "text": "a"}])
    );

    let req = oa_request(json!({"messages": [{"role": "assistant", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{broken"}}]}]}));
    let e = encode_json(&req).unwrap_err();
    assert_eq!(e.code, Code::InvalidRequest);
    assert!(e.message.contains("not a JSON object"));
}

fn decode_stream(text: &str) -> Vec<Event> {
    let mut d = StreamDecoder::new();
    let mut out = Vec::new();
    for e in sse_events(text.as_bytes()) {
        out.extend(d.push(&e).unwrap());
    }
    out.extend(d.finish());
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
fn recorded_stream_with_ping_thinking_signature_and_tool_use_decodes() {
    let events = decode_stream(&fixture("anthropic_stream_thinking_tool.sse"));
    assert_eq!(
        events[..3],
        [
            Event::MessageStart {
                id: "msg_01Aq9w938a90dw8q".into(),
                model: "claude-sonnet-4-5-20250929".into()
            },
            Event::Usage(Usage {
                input_tokens: Some(472 + 1024 + 2048),
                output_tokens: Some(2),
                cache_read_tokens: Some(2048),
                cache_write_tokens: Some(1024),
                reasoning_tokens: None
            }),
            Event::BlockStart {
                index: 0,
                block: BlockStart::Thinking
            },
        ]
    );
    let resp = aggregate(&events);
    assert_eq!(resp.content.len(), 3);
    assert!(
        matches!(&resp.content[0], Block::Thinking { thinking, signature: Some(s) }
        if thinking == "The user wants the weather in Paris. I should call get_weather." && s.starts_with("EqQB"))
    );
    assert_eq!(
        resp.content[1],
        Block::text("I'll check the current weather in Paris for you.")
    );
    assert_eq!(
        resp.content[2],
        Block::ToolUse {
            id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6".into(),
            name: "get_weather".into(),
            input: json!({"location": "Paris, France"}),
            cache_control: None
        }
    );
    assert_eq!(resp.stop_reason, Some(StopReason::ToolUse));
    assert_eq!(resp.usage.output_tokens, Some(89));
    assert_eq!(resp.usage.input_tokens, Some(3544));
}

#[test]
fn stream_errors_truncation_and_unknown_events() {
    let mut d = StreamDecoder::new();
    assert!(
        d.push_data(r#"{"type":"brand_new_event","x":1}"#)
            .unwrap()
            .is_empty()
    );
    assert!(d.push_data(r#"{"type":"ping"}"#).unwrap().is_empty());
    let ev = d
        .push_data(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)
        .unwrap();
    assert_eq!(
        ev,
        vec![Event::Error(StreamError {
            code: Code::UpstreamError,
            message: "upstream error during the stream: overloaded_error: Overloaded".into()
        })]
    );
    assert!(d.finish().is_empty());
    let mut d = StreamDecoder::new();
    d.push_data(r#"{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":1,"output_tokens":1}}}"#)
        .unwrap();
    assert!(matches!(
        &d.finish()[..],
        [Event::Error(StreamError {
            code: Code::UpstreamError,
            ..
        })]
    ));
    let mut d = StreamDecoder::new();
    let e = d
        .push_data(r#"{"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"s","name":"web_search","input":{}}}"#)
        .unwrap_err();
    assert_eq!(e.code, Code::ProviderBadResponse);
    assert_eq!(
        StreamDecoder::new().push_data("nope").unwrap_err().code,
        Code::ProviderBadResponse
    );
}

fn frames_json(frames: &[sse::Frame]) -> Vec<(&'static str, Value)> {
    frames
        .iter()
        .map(|f| {
            let v: Value = serde_json::from_str(&f.data).unwrap();
            let name = f.event.unwrap();
            assert_eq!(v["type"], name, "event name equals the data type");
            (name, v)
        })
        .collect()
}

#[test]
fn client_stream_pairs_block_events_and_ends_with_message_delta_then_stop() {
    let mut b = EventBuilder::new();
    let mut ev = vec![b.start("msg_9", "gpt-4o")];
    b.text("Hel", &mut ev);
    b.text("lo", &mut ev);
    b.tool_start("call_1", "get", &mut ev);
    b.tool_arguments("{\"q\":", &mut ev).unwrap();
    b.tool_arguments("1}", &mut ev).unwrap();
    b.logprobs(
        vec![TokenLogprob {
            token: "x".into(),
            logprob: -1.0,
            bytes: None,
            top_logprobs: vec![],
        }],
        &mut ev,
    );
    b.usage(&Usage {
        input_tokens: Some(100),
        output_tokens: Some(7),
        cache_read_tokens: Some(60),
        ..Default::default()
    });
    b.finish(StopReason::ToolUse, &mut ev);
    let mut enc = StreamEncoder::new();
    let frames = enc.encode_all(&ev);
    let got = frames_json(&frames);
    let expected = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_9", "type": "message", "role": "assistant",
            "model": "gpt-4o", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "call_1", "name": "get", "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"q\":"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"input_tokens": 40, "cache_read_input_tokens": 60, "output_tokens": 7}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    assert_eq!(got, expected);
    assert!(
        enc.encode(&Event::TextDelta {
            index: 0,
            text: "late".into()
        })
        .is_empty()
    );
}

#[test]
fn message_start_carries_the_input_usage_an_upstream_reported_first() {
    let events = decode_stream(&fixture("anthropic_stream_thinking_tool.sse"));
    let mut enc = StreamEncoder::new();
    let mut frames = Vec::new();
    for e in &events {
        frames.extend(enc.encode(e));
    }
    let got = frames_json(&frames);
    assert_eq!(got[0].0, "message_start");
    assert_eq!(
        got[0].1["message"]["usage"],
        json!({"input_tokens": 472, "cache_creation_input_tokens": 1024, "cache_read_input_tokens": 2048, "output_tokens": 2})
    );
    assert_eq!(
        got[1].1["content_block"],
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
    let sig: Vec<&Value> = got
        .iter()
        .filter(|(_, v)| v["delta"]["type"] == "signature_delta")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(sig.len(), 1);
    let (name, last_delta) = &got[got.len() - 2];
    assert_eq!(*name, "message_delta");
    assert_eq!(last_delta["usage"]["output_tokens"], 89);
}

#[test]
fn encode_all_releases_message_start_at_the_end_of_a_batch() {
    let mut enc = StreamEncoder::new();
    let frames = enc.encode_all(&[Event::MessageStart {
        id: "m".into(),
        model: "local".into(),
    }]);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].event, Some("message_start"));
    assert!(enc.encode_all(&[]).is_empty());
}

#[test]
fn deltas_without_an_open_block_get_one_and_errors_are_named_events() {
    let mut enc = StreamEncoder::new();
    let mut frames = enc.encode_all(&[
        Event::MessageStart {
            id: "m".into(),
            model: "x".into(),
        },
        Event::TextDelta {
            index: 0,
            text: "a".into(),
        },
        Event::ThinkingDelta {
            index: 1,
            thinking: "t".into(),
        },
        Event::Error(StreamError {
            code: Code::RateLimited,
            message: "slow".into(),
        }),
    ]);
    frames.extend(enc.encode(&Event::MessageStop {
        stop_reason: StopReason::EndTurn,
    }));
    let names: Vec<_> = frames.iter().map(|f| f.event.unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "error"
        ]
    );
    let err: Value = serde_json::from_str(&frames.last().unwrap().data).unwrap();
    assert_eq!(err["error"]["type"], "rate_limit_error");
    assert_eq!(err["error"]["message"], "slow");
}

#[test]
fn recorded_response_decodes_and_re_encodes_to_the_same_json() {
    let text = fixture("anthropic_message_response.json");
    let resp = decode_response(text.as_bytes()).unwrap();
    assert_eq!(resp.usage.input_tokens, Some(2095 + 1800));
    assert_eq!(resp.usage.cache_read_tokens, Some(1800));
    assert_eq!(resp.stop_reason, Some(StopReason::ToolUse));
    let out = serde_json::to_value(encode_response(&resp)).unwrap();
    let mut expected: Value = serde_json::from_str(&text).unwrap();
    let usage = expected["usage"].as_object_mut().unwrap();
    usage.remove("cache_creation");
    usage.remove("service_tier");
    assert_eq!(out, expected);
}

#[test]
fn stop_reasons_map_both_ways() {
    for (wire, seq, canon) in [
        ("end_turn", None, StopReason::EndTurn),
        ("max_tokens", None, StopReason::MaxTokens),
        (
            "stop_sequence",
            Some("</a>"),
            StopReason::StopSequence("</a>".into()),
        ),
        ("tool_use", None, StopReason::ToolUse),
        ("pause_turn", None, StopReason::PauseTurn),
        ("refusal", None, StopReason::Refusal),
        (
            "model_context_window_exceeded",
            None,
            StopReason::ContextWindowExceeded,
        ),
        ("new_reason", None, StopReason::Other("new_reason".into())),
    ] {
        assert_eq!(stop_reason_from_wire(wire, seq.map(str::to_owned)), canon);
        assert_eq!(
            stop_reason_to_wire(&canon),
            (wire.to_owned(), seq.map(str::to_owned))
        );
    }
}

#[test]
fn effort_budgets_follow_the_table_and_leave_the_answer_room() {
    let d = DEFAULT_MAX_TOKENS;
    // Without a client max_tokens the answer keeps the default on top of the budget
    // (it used to get max_tokens - budget = 1 token).
    assert_eq!(
        effort_thinking("minimal", None, d).unwrap(),
        (Some(1024), d + 1024)
    );
    assert_eq!(
        effort_thinking("low", None, d).unwrap(),
        (Some(2048), d + 2048)
    );
    assert_eq!(
        effort_thinking("medium", None, d).unwrap(),
        (Some(8192), d + 8192)
    );
    assert_eq!(
        effort_thinking("high", None, d).unwrap(),
        (Some(16384), d + 16384)
    );
    assert_eq!(
        effort_thinking("max", None, d).unwrap(),
        (Some(32768), d + 32768)
    );
    // With one, thinking takes at most half.
    assert_eq!(
        effort_thinking("high", Some(64000), d).unwrap(),
        (Some(16384), 64000)
    );
    assert_eq!(
        effort_thinking("high", Some(4000), d).unwrap(),
        (Some(2000), 4000)
    );
    assert_eq!(effort_thinking("none", Some(10), d).unwrap(), (None, 10));
    assert_eq!(
        effort_thinking("minimal", Some(2000), d).unwrap_err().code,
        Code::UnsupportedFeature
    );
    assert_eq!(
        effort_thinking("extreme", None, d).unwrap_err().code,
        Code::UnsupportedFeature
    );
}

#[test]
fn ping_frame_is_what_anthropic_sends_and_decoders_skip() {
    let f = ping_frame();
    assert_eq!(
        String::from_utf8(f.to_bytes()).unwrap(),
        "event: ping\ndata: {\"type\":\"ping\"}\n\n"
    );
    assert!(StreamDecoder::new().push_data(&f.data).unwrap().is_empty());
}

/// What Claude Code 2.1 sends (captured, trimmed): adaptive thinking, effort, context
/// management, a system message inside the conversation, a deferred tool.
#[test]
fn a_claude_code_request_decodes_with_advisory_fields_named() {
    let req = decode(&json!({
        "model": "claude-opus-5-5", "max_tokens": 128000, "stream": true,
        "thinking": {"type": "adaptive", "display": "omitted"},
        "output_config": {"effort": "medium"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": "{\"device_id\":\"3e41a5a3db8c47e66567e3615a701f0114cd3ec9555a3206a7c94d2d60188faf\",\"session_id\":\"s\"}"},
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1"},
                   {"type": "text", "text": "You are Claude.", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}},
                  {"name": "DeferredToolPlaceholder", "input_schema": {"type": "object"}, "defer_loading": true}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Run echo hello"}]},
            {"role": "system", "content": "# Environment"},
        ]
    }))
    .unwrap();
    assert_eq!(req.thinking, Some(ThinkingConfig::Adaptive));
    assert_eq!(req.thinking_display.as_deref(), Some("omitted"));
    assert_eq!(req.reasoning_effort.as_deref(), Some("medium"));
    assert_eq!(req.messages[1].role, Role::System);
    assert_eq!(req.tools.len(), 1);
    assert_eq!(
        req.dropped,
        vec!["context_management", "tools.defer_loading"]
    );
    // Longer than OpenAI's 64-character `user`: not sent there, and named.
    assert!(req.user.as_ref().unwrap().len() > 64);
    let dropped = crate::protocol::openai::dropped(&req);
    assert!(
        dropped.contains(&"user") && dropped.contains(&"cache_control"),
        "{dropped:?}"
    );
    let wire = crate::protocol::openai::encode_chat_request(
        &req,
        crate::protocol::openai::Dialect::Compatible,
    )
    .unwrap();
    assert_eq!(wire.user, None);
    assert_eq!(wire.reasoning_effort.as_deref(), Some("medium"));
}
