//! The gateway end to end: a real server on a loopback port, the real store and file
//! vault, real providers and rules, and fake OpenAI / Anthropic clouds that speak their
//! protocols faithfully (tests/common/fake_cloud.rs). Every endpoint, both client
//! protocols × both upstream kinds, streaming and not, tools, images, fallback,
//! cancellation, the request log, and the guards.

mod common;
#[path = "common/fake_cloud.rs"]
mod fake_cloud;

use fake_cloud::{Api, Failure, Fake, Script};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchyard::app::{App, AppOptions, SharedApp};
use switchyard::gateway::{self, GatewayOptions, GatewayState, Server};
use switchyard::routing::MatchType;
use switchyard::settings::providers::{self, KeyChange, ProviderInput, ProviderKind};
use switchyard::settings::rules::{self, NewRule, TargetName};
use switchyard::store::audit::Actor;
use switchyard::vault::{BackendKind, SecretString};

const OPENAI_KEY: &str = "sk-upstream-openai-0123456789";
const ANTHROPIC_KEY: &str = "sk-ant-upstream-0123456789";
const CLIENT_TOKEN: &str = "client-own-token-must-not-travel";

struct Gw {
    _dir: tempfile::TempDir,
    app: SharedApp,
    state: GatewayState,
    server: Option<Server>,
    url: String,
    openai: Fake,
    anthropic: Fake,
    http: reqwest::Client,
}

impl Gw {
    async fn start() -> Gw {
        Gw::start_with(GatewayOptions::default()).await
    }

    /// Providers `oai` (OpenAI) and `ant` (Anthropic) on fakes; no rules yet.
    async fn start_with(mut options: GatewayOptions) -> Gw {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(AppOptions {
            data_dir: Some(dir.path().to_path_buf()),
            vault: BackendKind::File,
        })
        .await
        .unwrap();
        let openai = Fake::start(Api::OpenAi, OPENAI_KEY).await;
        let anthropic = Fake::start(Api::Anthropic, ANTHROPIC_KEY).await;
        provider(
            &app,
            "oai",
            ProviderKind::OpenAi,
            &openai.base_url,
            OPENAI_KEY,
        )
        .await;
        provider(
            &app,
            "ant",
            ProviderKind::Anthropic,
            &anthropic.base_url,
            ANTHROPIC_KEY,
        )
        .await;
        if options.timeouts.first_byte == switchyard::upstream::Timeouts::default().first_byte {
            options.timeouts.first_byte = Duration::from_secs(20);
        }
        let local = gateway::local::engine_models(&app);
        let state = GatewayState::new(app.clone(), options, local)
            .await
            .unwrap();
        let server = gateway::serve(state.clone(), "127.0.0.1".parse().unwrap(), 0)
            .await
            .unwrap();
        let url = server.url();
        Gw {
            _dir: dir,
            app,
            state,
            server: Some(server),
            url,
            openai,
            anthropic,
            http: reqwest::Client::new(),
        }
    }

    /// Add a rule and make the running gateway see it.
    async fn rule(
        &self,
        pattern: &str,
        m: MatchType,
        to: &str,
        model: Option<&str>,
        fallback: Option<&str>,
    ) -> i64 {
        let target = |s: &str| {
            if s == "local" {
                TargetName::Local
            } else {
                TargetName::Provider(s.into())
            }
        };
        let saved = rules::add(
            &self.app,
            Actor::Cli,
            NewRule {
                pattern: pattern.into(),
                match_type: m,
                target: target(to),
                model: model.map(str::to_string),
                fallback: fallback.map(target),
                enabled: true,
                position: None,
            },
        )
        .await
        .unwrap();
        self.state.reload_settings().await.unwrap();
        saved.rule.id
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .header("authorization", format!("Bearer {CLIENT_TOKEN}"))
            .header("x-api-key", CLIENT_TOKEN)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn request_log(&self) -> Vec<switchyard::store::entities::request_log::Model> {
        // The log is written by a background task: give it a moment.
        for _ in 0..50 {
            let rows = gateway::log::tail(&self.app.db, 100).await.unwrap();
            if !rows.is_empty() {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Vec::new()
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.task.abort();
        }
    }
}

async fn provider(app: &App, name: &str, kind: ProviderKind, base: &str, key: &str) {
    providers::upsert(
        app,
        Actor::Cli,
        ProviderInput {
            name: name.into(),
            kind,
            base_url: Some(base.into()),
            key: KeyChange::Set(SecretString::new(key.into())),
        },
    )
    .await
    .unwrap();
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "temperature": 0,
           "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the capital of France?"}]})
}

fn messages_req(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "max_tokens": 64, "temperature": 0, "system": "Be brief.",
           "messages": [{"role": "user", "content": "What is the capital of France?"}]})
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

// ------------------------------------------------------------------ both protocols × both upstreams

#[tokio::test]
async fn openai_client_to_openai_upstream_non_streaming_with_rename_and_route_headers() {
    let gw = Gw::start().await;
    let rule = gw
        .rule(
            "gpt-4o-mini",
            MatchType::Exact,
            "oai",
            Some("gpt-4o-2024-08-06"),
            None,
        )
        .await;
    let r = gw
        .post("/v1/chat/completions", chat("gpt-4o-mini", false))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-backend").as_deref(), Some("oai"));
    assert_eq!(header(&r, "x-switchyard-rule"), Some(rule.to_string()));
    assert_eq!(header(&r, "x-switchyard-fallback"), None);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "The capital of France is Paris."
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let got = gw.openai.last();
    assert_eq!(
        got.body["model"], "gpt-4o-2024-08-06",
        "the rule's rename is what the upstream sees"
    );
    assert_eq!(
        got.body["temperature"].as_f64(),
        Some(0.0),
        "temperature 0 reaches the upstream as 0"
    );
    assert_eq!(got.body["messages"][0]["role"], "system");
}

#[tokio::test]
async fn openai_client_to_openai_upstream_streaming_with_usage() {
    let gw = Gw::start().await;
    gw.rule("gpt-", MatchType::Prefix, "oai", None, None).await;
    let mut body = chat("gpt-4o", true);
    body["stream_options"] = json!({"include_usage": true});
    let r = gw.post("/v1/chat/completions", body).await;
    assert_eq!(r.status(), 200);
    assert!(
        header(&r, "content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = r.text().await.unwrap();
    let events = common::parse_sse(&text);
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks = common::openai_chunks(&events);
    let content = common::openai_text(&chunks);
    assert_eq!(content, "The capital of France is Paris.");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    let usage = chunks
        .iter()
        .find(|c| c["usage"].is_object())
        .expect("a usage chunk");
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn openai_client_to_anthropic_upstream_both_modes() {
    let gw = Gw::start().await;
    gw.rule("claude-", MatchType::Prefix, "ant", None, None)
        .await;
    let r = gw
        .post("/v1/chat/completions", chat("claude-sonnet-4-5", false))
        .await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let r = gw
        .post("/v1/chat/completions", chat("claude-sonnet-4-5", false))
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "The capital of France is Paris."
    );
    let got = gw.anthropic.last();
    assert_eq!(got.header("x-api-key").as_deref(), Some(ANTHROPIC_KEY));
    assert!(got.header("anthropic-version").is_some());
    assert_eq!(
        got.body["system"]
            .as_str()
            .or(got.body["system"][0]["text"].as_str()),
        Some("Be brief.")
    );
    assert!(
        got.body["max_tokens"].as_u64().is_some(),
        "Anthropic requires max_tokens: the gateway supplies it"
    );
    assert_eq!(got.body["temperature"].as_f64(), Some(0.0));

    let r = gw
        .post("/v1/chat/completions", chat("claude-sonnet-4-5", true))
        .await;
    let events = common::parse_sse(&r.text().await.unwrap());
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let content = common::openai_text(&common::openai_chunks(&events));
    assert_eq!(content, "The capital of France is Paris.");
}

#[tokio::test]
async fn anthropic_client_to_openai_upstream_both_modes() {
    let gw = Gw::start().await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, None).await;
    let r = gw.post("/v1/messages", messages_req("gpt-4o", false)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["content"][0]["type"], "text");
    assert_eq!(v["content"][0]["text"], "The capital of France is Paris.");
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["usage"]["input_tokens"].as_u64().is_some());
    let got = gw.openai.last();
    assert_eq!(
        got.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}"))
    );
    assert_eq!(
        got.body["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );

    let r = gw.post("/v1/messages", messages_req("gpt-4o", true)).await;
    let events = common::parse_sse(&r.text().await.unwrap());
    let names: Vec<&str> = events
        .iter()
        .filter_map(|e| e.0.as_deref())
        .filter(|n| *n != "ping")
        .collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    assert!(names.contains(&"content_block_start") && names.contains(&"content_block_stop"));
    assert_eq!(names[names.len() - 2], "message_delta");
    let text = common::anthropic_deltas(&events, "text");
    assert_eq!(text, "The capital of France is Paris.");
    assert_eq!(
        gw.openai.last().body["stream_options"]["include_usage"],
        true,
        "usage is always asked for"
    );
    let md = events
        .iter()
        .find(|e| e.0.as_deref() == Some("message_delta"))
        .unwrap();
    let md: Value = serde_json::from_str(&md.1).unwrap();
    assert!(md["usage"]["output_tokens"].as_u64().unwrap() > 0, "{md}");
}

#[tokio::test]
async fn anthropic_client_to_anthropic_upstream_both_modes() {
    let gw = Gw::start().await;
    gw.rule("claude-.*", MatchType::Regex, "ant", None, None)
        .await;
    let r = gw
        .post("/v1/messages", messages_req("claude-sonnet-4-5", false))
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["content"][0]["text"], "The capital of France is Paris.");
    let r = gw
        .post("/v1/messages", messages_req("claude-sonnet-4-5", true))
        .await;
    let events = common::parse_sse(&r.text().await.unwrap());
    assert_eq!(events.first().unwrap().0.as_deref(), Some("message_start"));
    assert_eq!(events.last().unwrap().0.as_deref(), Some("message_stop"));
    let md = events
        .iter()
        .find(|e| e.0.as_deref() == Some("message_delta"))
        .unwrap();
    let md: Value = serde_json::from_str(&md.1).unwrap();
    assert_eq!(md["delta"]["stop_reason"], "end_turn");
    assert!(md["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

// ------------------------------------------------------------------ tools and images

fn weather_tool_openai() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

#[tokio::test]
async fn tools_round_trip_openai_client_through_anthropic_upstream() {
    let gw = Gw::start().await;
    gw.rule("claude-", MatchType::Prefix, "ant", None, None)
        .await;
    gw.anthropic.set_script(Script {
        tool_call: Some(("get_weather".into(), json!({"city": "Paris"}))),
        ..Default::default()
    });
    for stream in [false, true] {
        let mut body = chat("claude-x", stream);
        body["tools"] = weather_tool_openai();
        let r = gw.post("/v1/chat/completions", body).await;
        assert_eq!(r.status(), 200);
        let (name, args, finish) = if stream {
            let events = common::parse_sse(&r.text().await.unwrap());
            let mut name = String::new();
            let mut args = String::new();
            let mut finish = String::new();
            for c in common::openai_chunks(&events) {
                if let Some(tc) = c["choices"][0]["delta"]["tool_calls"][0].as_object() {
                    assert_eq!(tc["index"], 0);
                    if let Some(n) = tc.get("function").and_then(|f| f["name"].as_str()) {
                        name = n.to_string();
                    }
                    args.push_str(
                        tc.get("function")
                            .and_then(|f| f["arguments"].as_str())
                            .unwrap_or(""),
                    );
                }
                if let Some(f) = c["choices"][0]["finish_reason"].as_str() {
                    finish = f.to_string();
                }
            }
            (name, args, finish)
        } else {
            let v: Value = r.json().await.unwrap();
            let tc = &v["choices"][0]["message"]["tool_calls"][0];
            (
                tc["function"]["name"].as_str().unwrap().to_string(),
                tc["function"]["arguments"].as_str().unwrap().to_string(),
                v["choices"][0]["finish_reason"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        };
        assert_eq!(name, "get_weather");
        assert_eq!(
            serde_json::from_str::<Value>(&args).unwrap(),
            json!({"city": "Paris"})
        );
        assert_eq!(finish, "tool_calls");
        let sent = gw.anthropic.last();
        assert_eq!(sent.body["tools"][0]["name"], "get_weather");
        assert_eq!(
            sent.body["tools"][0]["input_schema"]["required"],
            json!(["city"])
        );
    }
    // The tool's result goes back as a tool_result block.
    gw.anthropic.set_script(Script::default());
    let body = json!({"model": "claude-x", "tools": weather_tool_openai(), "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "toolu_01A", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "toolu_01A", "content": "18°C and sunny"}]});
    let r = gw.post("/v1/chat/completions", body).await;
    assert_eq!(r.status(), 200);
    let sent = gw.anthropic.last();
    let msgs = sent.body["messages"].as_array().unwrap();
    assert_eq!(msgs[1]["content"][0]["type"], "tool_use");
    assert_eq!(msgs[1]["content"][0]["input"], json!({"city": "Paris"}));
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(msgs[2]["content"][0]["type"], "tool_result");
    assert_eq!(msgs[2]["content"][0]["tool_use_id"], "toolu_01A");
}

#[tokio::test]
async fn tools_round_trip_anthropic_client_through_openai_upstream() {
    let gw = Gw::start().await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, None).await;
    gw.openai.set_script(Script {
        tool_call: Some(("get_weather".into(), json!({"city": "Paris"}))),
        ..Default::default()
    });
    let tools = json!([{"name": "get_weather", "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    for stream in [false, true] {
        let mut body = messages_req("gpt-4o", stream);
        body["tools"] = tools.clone();
        let r = gw.post("/v1/messages", body).await;
        assert_eq!(r.status(), 200);
        if stream {
            let events = common::parse_sse(&r.text().await.unwrap());
            let start = events
                .iter()
                .find(|e| e.0.as_deref() == Some("content_block_start"))
                .unwrap();
            let start: Value = serde_json::from_str(&start.1).unwrap();
            assert_eq!(start["content_block"]["type"], "tool_use");
            assert_eq!(start["content_block"]["name"], "get_weather");
            let json_text = common::anthropic_deltas(&events, "partial_json");
            assert_eq!(
                serde_json::from_str::<Value>(&json_text).unwrap(),
                json!({"city": "Paris"})
            );
            let md = events
                .iter()
                .find(|e| e.0.as_deref() == Some("message_delta"))
                .unwrap();
            assert_eq!(
                serde_json::from_str::<Value>(&md.1).unwrap()["delta"]["stop_reason"],
                "tool_use"
            );
        } else {
            let v: Value = r.json().await.unwrap();
            let block = v["content"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["type"] == "tool_use")
                .unwrap()
                .clone();
            assert_eq!(block["name"], "get_weather");
            assert_eq!(block["input"], json!({"city": "Paris"}));
            assert_eq!(v["stop_reason"], "tool_use");
        }
        let sent = gw.openai.last();
        assert_eq!(sent.body["tools"][0]["function"]["name"], "get_weather");
    }
}

#[tokio::test]
async fn images_reach_both_upstream_kinds() {
    let gw = Gw::start().await;
    gw.rule("claude-", MatchType::Prefix, "ant", None, None)
        .await;
    gw.rule("gpt-", MatchType::Prefix, "oai", None, None).await;
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    let content = json!([{"type": "text", "text": "What is in these pictures?"},
        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}")}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]);
    let body = json!({"model": "claude-x", "messages": [{"role": "user", "content": content}]});
    assert_eq!(gw.post("/v1/chat/completions", body).await.status(), 200);
    let sent = gw.anthropic.last();
    let blocks = sent.body["messages"][0]["content"].as_array().unwrap();
    assert_eq!(
        blocks[1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": png})
    );
    assert_eq!(
        blocks[2]["source"],
        json!({"type": "url", "url": "https://example.com/cat.jpg"})
    );

    let body = json!({"model": "gpt-4o", "max_tokens": 32, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}}]}]});
    assert_eq!(gw.post("/v1/messages", body).await.status(), 200);
    let sent = gw.openai.last();
    assert_eq!(
        sent.body["messages"][0]["content"][1]["image_url"]["url"],
        format!("data:image/png;base64,{png}")
    );
}

// ------------------------------------------------------------------ fallback

#[tokio::test]
async fn falls_back_on_500_and_429_before_the_first_byte() {
    let gw = Gw::start().await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, Some("ant"))
        .await;
    for f in [
        Failure::Status500,
        Failure::RateLimited,
        Failure::Overloaded,
    ] {
        gw.openai.fail_next(f.clone());
        for stream in [false, true] {
            if stream {
                gw.openai.fail_next(f.clone());
            }
            let r = gw
                .post("/v1/chat/completions", chat("gpt-4o", stream))
                .await;
            assert_eq!(r.status(), 200, "{f:?}");
            assert_eq!(header(&r, "x-switchyard-fallback").as_deref(), Some("true"));
            assert_eq!(header(&r, "x-switchyard-backend").as_deref(), Some("ant"));
            let text = r.text().await.unwrap();
            assert!(text.contains("Paris"), "{text}");
        }
    }
    let log = gw.request_log().await;
    assert!(
        log.iter()
            .any(|r| r.fallback && r.backend.as_deref() == Some("ant"))
    );
}

#[tokio::test]
async fn falls_back_on_timeout() {
    let mut options = GatewayOptions::default();
    options.timeouts.first_byte = Duration::from_millis(500);
    let gw = Gw::start_with(options).await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, Some("ant"))
        .await;
    gw.openai.fail_next(Failure::Delay(Duration::from_secs(3)));
    let t = Instant::now();
    let r = gw.post("/v1/chat/completions", chat("gpt-4o", false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-fallback").as_deref(), Some("true"));
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the gateway waited for the slow primary"
    );
}

#[tokio::test]
async fn falls_back_when_the_primary_refuses_connections() {
    let gw = Gw::start().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    provider(
        &gw.app,
        "down",
        ProviderKind::OpenAiCompatible,
        &format!("http://127.0.0.1:{closed}"),
        "sk-x-0123456789",
    )
    .await;
    gw.rule("llama", MatchType::Prefix, "down", None, Some("oai"))
        .await;
    let r = gw
        .post("/v1/chat/completions", chat("llama-3", false))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-fallback").as_deref(), Some("true"));
    assert_eq!(header(&r, "x-switchyard-backend").as_deref(), Some("oai"));
    // Without a fallback the client gets the coded error in its own shape.
    gw.rule("mistral", MatchType::Prefix, "down", None, None)
        .await;
    let r = gw
        .post("/v1/chat/completions", chat("mistral-large", false))
        .await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_unreachable");
}

#[tokio::test]
async fn no_fallback_after_the_first_byte_and_the_stream_ends_with_an_error_event() {
    let gw = Gw::start().await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, Some("ant"))
        .await;
    gw.rule("claude-x", MatchType::Exact, "ant", None, Some("oai"))
        .await;
    gw.openai.fail_next(Failure::DieMidStream);
    let r = gw.post("/v1/chat/completions", chat("gpt-4o", true)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-fallback"), None);
    let text = r.text().await.unwrap();
    let events = common::parse_sse(&text);
    let last: Value =
        serde_json::from_str(&events.last().unwrap().1).expect("a JSON error event, not [DONE]");
    assert!(last["error"]["code"].is_string(), "{text}");
    assert!(
        gw.anthropic.received().is_empty(),
        "the fallback must not be called after the first byte"
    );

    gw.anthropic.fail_next(Failure::DieMidStream);
    let r = gw
        .post("/v1/messages", messages_req("claude-x", true))
        .await;
    let events = common::parse_sse(&r.text().await.unwrap());
    assert_eq!(events.last().unwrap().0.as_deref(), Some("error"));
    let e: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(
        gw.openai.received().len(),
        1,
        "only the first test's request reached OpenAI"
    );
}

// ------------------------------------------------------------------ cancellation

#[tokio::test]
async fn a_client_disconnect_cancels_the_upstream_request_within_100ms() {
    for (model, fake_is_openai, path) in [
        ("gpt-4o", true, "/v1/chat/completions"),
        ("claude-x", false, "/v1/messages"),
    ] {
        let gw = Gw::start().await;
        gw.rule("gpt-4o", MatchType::Exact, "oai", None, None).await;
        gw.rule("claude-x", MatchType::Exact, "ant", None, None)
            .await;
        let fake = if fake_is_openai {
            &gw.openai
        } else {
            &gw.anthropic
        };
        let long = "word ".repeat(200);
        fake.set_script(Script {
            text: long,
            chunks: 200,
            event_gap: Duration::from_millis(10),
            ..Default::default()
        });
        let body = if fake_is_openai {
            chat(model, true)
        } else {
            messages_req(model, true)
        };
        let mut r = gw.post(path, body).await;
        let first = r.chunk().await.unwrap().unwrap();
        assert!(!first.is_empty());
        let dropped = Instant::now();
        drop(r);
        let mut seen = None;
        for _ in 0..200 {
            if let Some(at) = fake.stream_dropped_at() {
                seen = Some(at);
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let at = seen.expect("the upstream never saw the connection close");
        let took = at.saturating_duration_since(dropped);
        assert!(
            took <= Duration::from_millis(100),
            "{path}: upstream closed {took:?} after the client left"
        );
        assert_eq!(fake.streams_completed(), 0);
        let log = gw.request_log().await;
        assert_eq!(log.last().unwrap().error_code.as_deref(), Some("cancelled"));
    }
}

#[tokio::test]
async fn a_client_that_gives_up_on_a_non_streaming_request_stops_the_gateway_waiting() {
    let gw = Gw::start().await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, None).await;
    gw.openai.fail_next(Failure::Delay(Duration::from_secs(4)));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let sent = Instant::now();
    let r = impatient
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&chat("gpt-4o", false))
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());
    // The handler is dropped when the connection closes: its row says cancelled, and it
    // is written long before the upstream would have answered.
    let mut row = None;
    while sent.elapsed() < Duration::from_secs(3) {
        let rows = gateway::log::tail(&gw.app.db, 10).await.unwrap();
        if let Some(r) = rows.into_iter().next() {
            row = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let row =
        row.expect("no request-log row within 3 s: the gateway kept waiting for the upstream");
    assert_eq!(
        (row.status, row.error_code.as_deref()),
        (499, Some("cancelled"))
    );
    assert!(row.latency_ms < 1500.0, "{}", row.latency_ms);
}

// ------------------------------------------------------------------ credentials and routing

#[tokio::test]
async fn the_upstream_gets_the_decrypted_provider_key_and_never_the_clients() {
    let gw = Gw::start().await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, None).await;
    gw.rule("claude-x", MatchType::Exact, "ant", None, None)
        .await;
    gw.post("/v1/chat/completions", chat("gpt-4o", false)).await;
    gw.post("/v1/messages", messages_req("claude-x", false))
        .await;
    let o = gw.openai.last();
    assert_eq!(
        o.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}"))
    );
    assert_eq!(o.header("x-api-key"), None);
    let a = gw.anthropic.last();
    assert_eq!(a.header("x-api-key").as_deref(), Some(ANTHROPIC_KEY));
    assert_eq!(a.header("authorization"), None);
    for r in gw
        .openai
        .received()
        .iter()
        .chain(gw.anthropic.received().iter())
    {
        for (_, v) in r.headers.iter() {
            assert!(
                !v.to_str().unwrap_or("").contains(CLIENT_TOKEN),
                "client token forwarded: {r:?}"
            );
        }
        assert!(!r.body.to_string().contains(CLIENT_TOKEN));
    }
}

#[tokio::test]
async fn api_base_and_credentials_in_the_body_do_not_change_the_upstream() {
    let gw = Gw::start().await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, None).await;
    let evil = Fake::start(Api::OpenAi, "sk-evil").await;
    let mut body = chat("gpt-4o", false);
    body["api_base"] = json!(format!("{}/v1", evil.base_url));
    body["base_url"] = json!(evil.base_url);
    body["api_key"] = json!("sk-evil");
    let r = gw.post("/v1/chat/completions", body).await;
    assert_eq!(r.status(), 200);
    assert!(evil.received().is_empty());
    let sent = gw.openai.last();
    for k in ["api_base", "base_url", "api_key"] {
        assert!(sent.body.get(k).is_none(), "{k} was forwarded");
    }
}

#[tokio::test]
async fn unknown_names_are_model_not_found_and_cloud_only_names_route() {
    let gw = Gw::start().await;
    let r = gw
        .post("/v1/chat/completions", chat("no-such-model", false))
        .await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("switchyard rule test no-such-model")
    );
    let r = gw
        .post("/v1/messages", messages_req("no-such-model", false))
        .await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "not_found_error");
    // A name no local model has still routes to the cloud when a rule says so.
    gw.rule("gpt-5-preview", MatchType::Exact, "oai", None, None)
        .await;
    assert_eq!(
        gw.post("/v1/chat/completions", chat("gpt-5-preview", false))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn models_lists_the_names_rules_make_reachable() {
    let gw = Gw::start().await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, None).await;
    gw.rule("claude-sonnet-4-5", MatchType::Exact, "ant", None, None)
        .await;
    gw.rule("o", MatchType::Prefix, "oai", None, None).await;
    let v: Value = gw
        .http
        .get(format!("{}/v1/models", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"gpt-4o") && ids.contains(&"claude-sonnet-4-5"),
        "{ids:?}"
    );
    let health: Value = gw
        .http
        .get(format!("{}/health", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));
}

#[tokio::test]
async fn count_tokens_uses_the_anthropic_upstreams_count_and_refuses_openai() {
    let gw = Gw::start().await;
    gw.rule("claude-x", MatchType::Exact, "ant", None, None)
        .await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, None).await;
    let body = json!({"model": "claude-x", "system": "Be brief.", "messages": [{"role": "user", "content": "one two three"}]});
    let r = gw.post("/v1/messages/count_tokens", body).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["input_tokens"], 5, "the fake counts words: 3 + 2");
    assert_eq!(gw.anthropic.last().path, "/v1/messages/count_tokens");
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let r = gw.post("/v1/messages/count_tokens", body).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unsupported_feature");
}

// ------------------------------------------------------------------ guards

#[tokio::test]
async fn guards_refuse_foreign_hosts_and_origins_oversized_and_malformed_bodies() {
    let options = GatewayOptions {
        body_limit: 64 * 1024,
        ..Default::default()
    };
    let gw = Gw::start_with(options).await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, None).await;
    let url = format!("{}/v1/chat/completions", gw.url);

    let r = gw
        .http
        .post(&url)
        .header("host", "evil.example")
        .json(&chat("gpt-4o", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "host_not_allowed"
    );
    let r = gw
        .http
        .post(format!("{}/v1/messages", gw.url))
        .header("host", "evil.example:80")
        .json(&messages_req("x", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["type"].as_str(), v["error"]["type"].as_str()),
        (Some("error"), Some("permission_error"))
    );

    let r = gw
        .http
        .post(&url)
        .header("origin", "https://evil.example")
        .json(&chat("gpt-4o", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "origin_not_allowed"
    );

    let mut big = chat("gpt-4o", false);
    big["messages"][1]["content"] = json!("x".repeat(100 * 1024));
    let r = gw.http.post(&url).json(&big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "body_too_large"
    );
    // A chunked body (no Content-Length) is cut off at the limit too.
    let chunks =
        futures_util::stream::iter((0..100).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])));
    let r = gw
        .http
        .post(&url)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let r = gw
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_request"
    );
    let r = gw
        .http
        .post(format!("{}/v1/messages", gw.url))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "invalid_request_error"
    );
    assert!(
        gw.openai.received().is_empty(),
        "no refused request reached the upstream"
    );
}

#[test]
fn a_non_loopback_bind_is_refused() {
    let e = gateway::check_bind_address("0.0.0.0".parse().unwrap()).unwrap_err();
    assert_eq!(e.code, switchyard::Code::BindRefused);
    assert!(gateway::check_bind_address("::1".parse().unwrap()).is_ok());
}

// ------------------------------------------------------------------ request log

#[tokio::test]
async fn every_request_is_logged_without_prompt_text() {
    let gw = Gw::start().await;
    let rule = gw
        .rule(
            "gpt-4o",
            MatchType::Exact,
            "oai",
            Some("gpt-4o-2024-08-06"),
            None,
        )
        .await;
    let secret_prompt = "PLANTED-PROMPT-TEXT-7f3a";
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": secret_prompt}]});
    assert_eq!(gw.post("/v1/chat/completions", body).await.status(), 200);
    gw.post("/v1/chat/completions", chat("missing-model", false))
        .await;
    let log = gw.request_log().await;
    for _ in 0..50 {
        if gateway::log::tail(&gw.app.db, 10).await.unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = if log.len() >= 2 {
        log
    } else {
        gateway::log::tail(&gw.app.db, 10).await.unwrap()
    };
    assert_eq!(log.len(), 2);
    let ok = &log[0];
    assert_eq!(ok.protocol, "openai");
    assert_eq!(ok.endpoint, "/v1/chat/completions");
    assert_eq!(ok.requested_model.as_deref(), Some("gpt-4o"));
    assert_eq!(ok.rule_id, Some(rule));
    assert_eq!(ok.backend.as_deref(), Some("oai"));
    assert_eq!(ok.upstream_model.as_deref(), Some("gpt-4o-2024-08-06"));
    assert_eq!(ok.status, 200);
    assert!(ok.latency_ms > 0.0);
    assert!(ok.tokens_in.unwrap() > 0 && ok.tokens_out.unwrap() > 0);
    assert_eq!(log[1].status, 404);
    assert_eq!(log[1].error_code.as_deref(), Some("model_not_found"));
    // A stream read to its end is a success, not a cancellation.
    let r = gw.post("/v1/chat/completions", chat("gpt-4o", true)).await;
    assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    let mut streamed = None;
    for _ in 0..100 {
        let rows = gateway::log::tail(&gw.app.db, 10).await.unwrap();
        if let Some(row) = rows.into_iter().find(|r| r.stream) {
            streamed = Some(row);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let streamed = streamed.expect("a row for the stream");
    assert_eq!(
        (streamed.status, streamed.error_code.as_deref()),
        (200, None)
    );
    assert!(streamed.ttfb_ms.unwrap() <= streamed.latency_ms);
    assert!(streamed.tokens_out.unwrap() > 0);
    // No prompt text anywhere in the database files.
    for f in ["switchyard.db", "switchyard.db-wal"] {
        let p = gw.app.data_dir().join(f);
        if let Ok(bytes) = std::fs::read(&p) {
            assert!(
                !bytes
                    .windows(secret_prompt.len())
                    .any(|w| w == secret_prompt.as_bytes()),
                "prompt text in {f}"
            );
        }
    }
}
