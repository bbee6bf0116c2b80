use super::stream::ResponsesEncoder;
use super::*;
use crate::error::Code;
use crate::protocol::canonical::{BlockStart, Event, EventBuilder, StopReason, StreamError, Usage};

fn decode(body: serde_json::Value) -> Result<(Request, EncodeOptions)> {
    let mut w = parse_request(body.to_string().as_bytes())?;
    let items = input_items(&mut w)?;
    to_canonical(&w, &[], &items)
}

/// The shape of Codex CLI's first request (captured from codex 0.171.0), trimmed.
fn codex_like() -> serde_json::Value {
    json!({
        "model": "gpt-5.1-codex", "stream": true, "tool_choice": "auto", "parallel_tool_calls": true,
        "reasoning": {"summary": "auto"}, "store": false, "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "thread-1", "client_metadata": {"session_id": "s"},
        "tools": [
            {"type": "function", "name": "exec_command", "description": "Runs a command", "strict": false,
             "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}},
            {"type": "namespace", "name": "multi_agent_v1", "description": "agents", "tools": [
                {"type": "function", "name": "close_agent", "parameters": {"type": "object", "properties": {}}}]},
            {"type": "web_search", "external_web_access": true}
        ],
        "input": [
            {"type": "message", "id": "msg_1", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
            {"type": "message", "id": "msg_2", "role": "developer", "content": [{"type": "input_text", "text": "Skills."}]},
            {"type": "message", "id": "msg_3", "role": "user", "content": [{"type": "input_text", "text": "<env/>"}]},
            {"type": "message", "id": "msg_4", "role": "user", "content": [{"type": "input_text", "text": "Run echo hello"}]},
            {"type": "function_call", "status": "completed", "id": "fc_1", "name": "exec_command",
             "arguments": "{\"cmd\": \"echo hello\"}", "call_id": "call_1"},
            {"type": "function_call_output", "id": "fco_1", "call_id": "call_1", "output": "hello\n"}
        ]
    })
}

#[test]
fn a_codex_request_decodes_with_hosted_tools_named_as_dropped() {
    let (req, opts) = decode(codex_like()).unwrap();
    assert_eq!(
        req.system
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>(),
        ["You are Codex.", "Skills."]
    );
    let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::User, Role::Assistant, Role::Tool]);
    assert_eq!(
        req.messages[2].content,
        vec![Block::ToolUse {
            id: "call_1".into(),
            name: "exec_command".into(),
            input: json!({"cmd": "echo hello"}),
            cache_control: None
        }]
    );
    assert!(matches!(
        &req.messages[3].content[0],
        Block::ToolResult { tool_use_id, content, .. } if tool_use_id == "call_1" && content == &vec![Block::text("hello\n")]
    ));
    assert_eq!(req.tools.len(), 1);
    assert_eq!(req.tools[0].name, "exec_command");
    assert_eq!(req.tool_choice, Some(ToolChoice::Auto));
    assert_eq!(req.parallel_tool_calls, Some(true));
    assert!(req.stream);
    for name in [
        "tools.namespace",
        "tools.web_search",
        "prompt_cache_key",
        "client_metadata",
    ] {
        assert!(req.dropped.contains(&name), "{name} in {:?}", req.dropped);
    }
    assert!(opts.summary && opts.encrypted_content);
    assert!(
        opts.echo_json.contains("\"store\":false"),
        "{}",
        opts.echo_json
    );
}

#[test]
fn string_input_instructions_and_options() {
    let (req, _) = decode(json!({
        "model": "m", "input": "Hi", "instructions": "Be brief.", "max_output_tokens": 50,
        "temperature": 0, "reasoning": {"effort": "high"},
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": true}, "verbosity": "low"}
    }))
    .unwrap();
    assert_eq!(req.system[0].text, "Be brief.");
    assert_eq!(req.messages, vec![Message::text(Role::User, "Hi")]);
    assert_eq!(req.max_tokens, Some(50));
    assert_eq!(req.sampling.temperature, Some(0.0));
    assert_eq!(req.reasoning_effort.as_deref(), Some("high"));
    assert_eq!(req.verbosity.as_deref(), Some("low"));
    assert!(
        matches!(req.response_format, Some(ResponseFormat::JsonSchema { ref name, .. }) if name == "x")
    );
    assert!(req.dropped.is_empty(), "{:?}", req.dropped);
}

/// The request fields a response object repeats, as an object.
fn echoed(body: serde_json::Value) -> serde_json::Value {
    let (_, opts) = decode(body).unwrap();
    serde_json::from_str(&format!("{{{}}}", opts.echo_json)).unwrap()
}

#[test]
fn the_response_repeats_the_request_fields_with_the_api_defaults() {
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    let plain = echoed(json!({"model": "m", "input": "Hi"}));
    assert_eq!(
        plain,
        json!({
            "instructions": null, "max_output_tokens": null, "parallel_tool_calls": true,
            "previous_response_id": null, "reasoning": {"effort": null, "summary": null},
            "store": true, "temperature": null, "top_p": null, "tool_choice": "auto",
            "tools": [], "text": {"format": {"type": "text"}}, "truncation": "disabled",
            "user": null, "metadata": {}
        })
    );
    // In the API's order, as the official SDKs print them.
    assert_eq!(
        keys(&plain),
        [
            "instructions",
            "max_output_tokens",
            "parallel_tool_calls",
            "previous_response_id",
            "reasoning",
            "store",
            "temperature",
            "top_p",
            "tool_choice",
            "tools",
            "text",
            "truncation",
            "user",
            "metadata"
        ]
    );
    let tool = json!({"type": "function", "name": "f", "parameters": {"type": "object"}});
    let full = echoed(json!({
        "model": "m", "input": "Hi", "instructions": "Be \"brief\".", "max_output_tokens": 50,
        "parallel_tool_calls": false, "reasoning": {"effort": "high", "summary": "auto"},
        "store": false, "temperature": 0, "top_p": 0.5,
        "tool_choice": {"type": "function", "name": "f"}, "tools": [tool],
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": true}, "verbosity": "low"},
        "truncation": "auto", "user": "u1", "metadata": {"team": "a"}
    }));
    assert_eq!(
        full,
        json!({
            "instructions": "Be \"brief\".", "max_output_tokens": 50, "parallel_tool_calls": false,
            "previous_response_id": null, "reasoning": {"effort": "high", "summary": "auto"},
            "store": false, "temperature": 0.0, "top_p": 0.5,
            "tool_choice": {"type": "function", "name": "f"}, "tools": [tool],
            "text": {"format": {"type": "json_schema", "name": "x", "description": null,
                                "schema": {"type": "object"}, "strict": true},
                     "verbosity": "low"},
            "truncation": "auto", "user": "u1", "metadata": {"team": "a"}
        })
    );
    assert_eq!(keys(&full), keys(&plain));
    let object =
        echoed(json!({"model": "m", "input": "Hi", "text": {"format": {"type": "json_object"}}}));
    assert_eq!(object["text"], json!({"format": {"type": "json_object"}}));
}

#[test]
fn what_cannot_be_carried_is_refused_by_name() {
    for (body, needle) in [
        (
            json!({"model": "m", "input": "x", "background": true}),
            "background",
        ),
        (
            json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}),
            "item_reference",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
            "input_file",
        ),
        (
            json!({"model": "m", "input": "x", "tool_choice": {"type": "web_search"}}),
            "web_search",
        ),
        (
            json!({"model": "m", "input": "x", "tools": [{"type": "brand_new_tool"}]}),
            "brand_new_tool",
        ),
    ] {
        let e = decode(body).unwrap_err();
        assert_eq!(e.code, Code::UnsupportedFeature, "{}", e.message);
        assert!(e.message.contains(needle), "{}", e.message);
    }
    let e =
        decode(json!({"model": "m", "input": [{"role": "wizard", "content": "x"}]})).unwrap_err();
    assert_eq!(e.code, Code::InvalidRequest);
}

fn frames_of(enc: &mut ResponsesEncoder, events: &[Event]) -> Vec<(String, serde_json::Value)> {
    events
        .iter()
        .flat_map(|e| enc.encode(e))
        .map(|f| {
            (
                f.event.unwrap().to_string(),
                serde_json::from_str(&f.data).unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_text_answer_streams_in_the_official_event_order() {
    let mut b = EventBuilder::new();
    let mut ev = vec![b.start("up1", "gpt-x")];
    b.text("Hel", &mut ev);
    b.text("lo", &mut ev);
    b.usage(&Usage {
        input_tokens: Some(7),
        output_tokens: Some(2),
        ..Default::default()
    });
    b.finish(StopReason::EndTurn, &mut ev);
    let mut enc = ResponsesEncoder::new("resp_abc".into(), 1700, EncodeOptions::default());
    let frames = frames_of(&mut enc, &ev);
    let names: Vec<&str> = frames.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (name, body)) in frames.iter().enumerate() {
        assert_eq!(body["sequence_number"], json!(i));
        assert_eq!(body["type"], json!(name));
    }
    let done = &frames.last().unwrap().1["response"];
    assert_eq!(done["id"], "resp_abc");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
    assert!(
        done["output"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("msg_")
    );
    assert_eq!(done["usage"]["total_tokens"], 9);
    assert!(enc.succeeded());
    assert_eq!(enc.response(), *done);
}

/// The message events and the response object are written by hand: each must be the
/// exact text serde gives for the API's event (fields in the API's order; the JSON map
/// keeps insertion order), with text that needs escaping.
#[test]
fn a_text_answers_events_are_the_apis_json_byte_for_byte() {
    let text = "a \"quote\",\n\u{e9} \u{1F600}\\ \u{1}";
    let answer = |stop: StopReason| {
        let mut b = EventBuilder::new();
        let mut ev = vec![b.start("up1", "gpt-\"x\"")];
        b.text(text, &mut ev);
        b.usage(&Usage {
            input_tokens: Some(7),
            output_tokens: Some(2),
            ..Default::default()
        });
        b.finish(stop, &mut ev);
        ev
    };
    let opts = EncodeOptions {
        echo_json: r#""instructions":null,"store":false"#.into(),
        ..Default::default()
    };
    let id = "msg_abc_0";
    let message = |status: &str, content: Vec<serde_json::Value>| json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content});
    let part =
        |t: &str| json!({"type": "output_text", "text": t, "annotations": [], "logprobs": []});
    let response = |status: &str,
                    details: serde_json::Value,
                    output: Vec<serde_json::Value>,
                    usage: serde_json::Value| {
        json!({"id": "resp_abc", "object": "response", "created_at": 1700, "status": status,
               "error": null, "incomplete_details": details, "model": "gpt-\"x\"", "output": output,
               "instructions": null, "store": false, "usage": usage})
    };
    let usage = json!({"input_tokens": 7, "input_tokens_details": {"cached_tokens": 0},
                       "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 9});
    let item_event = |kind: &str, seq: u64, item: serde_json::Value| json!({"type": kind, "sequence_number": seq, "output_index": 0, "item": item});
    let part_event = |kind: &str, seq: u64, t: &str| {
        json!({"type": kind, "sequence_number": seq, "item_id": id, "output_index": 0,
               "content_index": 0, "part": part(t)})
    };
    for (stop, status, details, last) in [
        (
            StopReason::EndTurn,
            "completed",
            json!(null),
            "response.completed",
        ),
        (
            StopReason::MaxTokens,
            "incomplete",
            json!({"reason": "max_output_tokens"}),
            "response.incomplete",
        ),
    ] {
        let started = response("in_progress", json!(null), vec![], json!(null));
        let expected = [
            json!({"type": "response.created", "sequence_number": 0, "response": started}),
            json!({"type": "response.in_progress", "sequence_number": 1, "response": started}),
            item_event(
                "response.output_item.added",
                2,
                message("in_progress", vec![]),
            ),
            part_event("response.content_part.added", 3, ""),
            json!({"type": "response.output_text.delta", "sequence_number": 4, "item_id": id,
                   "output_index": 0, "content_index": 0, "delta": text, "logprobs": []}),
            json!({"type": "response.output_text.done", "sequence_number": 5, "item_id": id,
                   "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
            part_event("response.content_part.done", 6, text),
            item_event(
                "response.output_item.done",
                7,
                message("completed", vec![part(text)]),
            ),
            json!({"type": last, "sequence_number": 8,
                   "response": response(status, details, vec![message("completed", vec![part(text)])], usage.clone())}),
        ];
        let mut enc = ResponsesEncoder::new("resp_abc".into(), 1700, opts.clone());
        let frames: Vec<crate::protocol::sse::Frame> =
            answer(stop).iter().flat_map(|e| enc.encode(e)).collect();
        assert_eq!(frames.len(), expected.len());
        for (frame, want) in frames.iter().zip(&expected) {
            assert_eq!(frame.event, want["type"].as_str());
            assert_eq!(frame.data, want.to_string());
        }
    }

    // A failed answer's object carries the error.
    let mut enc = ResponsesEncoder::new("resp_abc".into(), 1700, EncodeOptions::default());
    let mut b = EventBuilder::new();
    let failed: Vec<crate::protocol::sse::Frame> = [
        b.start("up1", "m"),
        Event::Error(StreamError {
            code: Code::UpstreamError,
            message: "boom \"x\"".into(),
        }),
    ]
    .iter()
    .flat_map(|e| enc.encode(e))
    .collect();
    let want = json!({"type": "response.failed", "sequence_number": 2, "response": {
        "id": "resp_abc", "object": "response", "created_at": 1700, "status": "failed",
        "error": {"code": "upstream_error", "message": "boom \"x\""}, "incomplete_details": null,
        "model": "m", "output": [], "usage": null}});
    assert_eq!(failed.last().unwrap().data, want.to_string());
}

#[test]
fn calls_reasoning_and_their_round_trip_back_to_canonical() {
    let mut b = EventBuilder::new();
    let mut ev = vec![b.start("u", "m")];
    b.thinking("Let me run it.", &mut ev);
    b.signature("SIG", &mut ev);
    b.tool_start("toolu_9", "exec_command", &mut ev);
    b.tool_arguments("{\"cmd\":", &mut ev).unwrap();
    b.tool_arguments("\"ls\"}", &mut ev).unwrap();
    b.tool_call(
        "toolu_10",
        "apply_patch",
        "{\"input\":\"*** Begin\"}",
        &mut ev,
    );
    b.finish(StopReason::ToolUse, &mut ev);
    let opts = EncodeOptions {
        summary: true,
        encrypted_content: true,
        custom_tools: vec!["apply_patch".into()],
        ..Default::default()
    };
    let mut enc = ResponsesEncoder::new("resp_1".into(), 0, opts);
    let frames = frames_of(&mut enc, &ev);
    let names: Vec<&str> = frames.iter().map(|f| f.0.as_str()).collect();
    assert!(names.contains(&"response.reasoning_summary_text.delta"));
    assert!(names.contains(&"response.function_call_arguments.delta"));
    assert!(names.contains(&"response.custom_tool_call_input.done"));
    let output = enc.output_json();
    assert_eq!(output[0]["type"], "reasoning");
    assert_eq!(output[0]["encrypted_content"], "sy1:SIG");
    assert_eq!(output[0]["summary"][0]["text"], "Let me run it.");
    assert_eq!(output[1]["type"], "function_call");
    assert_eq!(output[1]["call_id"], "toolu_9");
    assert_eq!(output[1]["arguments"], "{\"cmd\":\"ls\"}");
    assert_eq!(output[2]["type"], "custom_tool_call");
    assert_eq!(output[2]["input"], "*** Begin");

    // Handed back as input, the items become the same assistant turn.
    let w = parse_request(br#"{"model":"m"}"#).unwrap();
    let (req, _) = to_canonical(&w, &output, &[]).unwrap();
    assert_eq!(
        req.messages,
        vec![Message::new(
            Role::Assistant,
            vec![
                Block::Thinking {
                    thinking: "Let me run it.".into(),
                    signature: Some("SIG".into())
                },
                Block::ToolUse {
                    id: "toolu_9".into(),
                    name: "exec_command".into(),
                    input: json!({"cmd": "ls"}),
                    cache_control: None
                },
                Block::ToolUse {
                    id: "toolu_10".into(),
                    name: "apply_patch".into(),
                    input: json!({"input": "*** Begin"}),
                    cache_control: None
                },
            ]
        )]
    );
}

#[test]
fn max_tokens_is_incomplete_and_errors_fail_the_response() {
    let mut enc = ResponsesEncoder::new("resp_2".into(), 0, EncodeOptions::default());
    let frames = frames_of(
        &mut enc,
        &[
            Event::MessageStart {
                id: "x".into(),
                model: "m".into(),
            },
            Event::BlockStart {
                index: 0,
                block: BlockStart::Text,
            },
            Event::TextDelta {
                index: 0,
                text: "cut".into(),
            },
            Event::MessageStop {
                stop_reason: StopReason::MaxTokens,
            },
        ],
    );
    let last = frames.last().unwrap();
    assert_eq!(last.0, "response.incomplete");
    assert_eq!(
        last.1["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    assert!(enc.succeeded());

    let mut enc = ResponsesEncoder::new("resp_3".into(), 0, EncodeOptions::default());
    let frames = frames_of(
        &mut enc,
        &[
            Event::MessageStart {
                id: "x".into(),
                model: "m".into(),
            },
            Event::Error(StreamError {
                code: Code::RateLimited,
                message: "slow down".into(),
            }),
        ],
    );
    let last = frames.last().unwrap();
    assert_eq!(last.0, "response.failed");
    assert_eq!(last.1["response"]["error"]["code"], "rate_limited");
    assert!(!enc.succeeded());
}
