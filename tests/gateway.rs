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

struct Gw {
    _dir: tempfile::TempDir,
    app: SharedApp,
    state: GatewayState,
    server: Option<Server>,
    url: String,
    openai: Fake,
    anthropic: Fake,
    /// A chat-only OpenAI-compatible server (provider `compat`).
    compat: Fake,
    /// A client token of this install (sent by `http` on every request).
    token: String,
    http: reqwest::Client,
}

impl Gw {
    async fn start() -> Gw {
        Gw::start_with(GatewayOptions::default()).await
    }

    /// Providers `oai` (OpenAI), `ant` (Anthropic) and `compat` (a chat-only
    /// OpenAI-compatible server) on fakes; no rules yet.
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
        let compat = Fake::start_compatible(OPENAI_KEY).await;
        provider(
            &app,
            "compat",
            ProviderKind::OpenAiCompatible,
            &compat.base_url,
            OPENAI_KEY,
        )
        .await;
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
        let local = switchyard::pool::Pool::start(&app);
        let state = GatewayState::new(app.clone(), options, local)
            .await
            .unwrap();
        let server = gateway::serve(state.clone(), "127.0.0.1".parse().unwrap(), 0)
            .await
            .unwrap();
        let url = server.url();
        let token = common::issue_token(&app, "tests").await;
        Gw {
            http: common::http_with_token(&token),
            token,
            _dir: dir,
            app,
            state,
            server: Some(server),
            url,
            openai,
            anthropic,
            compat,
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
            .header("authorization", format!("Bearer {}", self.token))
            .header("x-api-key", &self.token)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn request_log(&self) -> Vec<switchyard::store::entities::request_log::Model> {
        self.request_log_of(1).await
    }

    /// The request log once it has at least `n` rows (or what it has after a second).
    async fn request_log_of(
        &self,
        n: usize,
    ) -> Vec<switchyard::store::entities::request_log::Model> {
        // The log is written by a background task: give it a moment.
        let mut rows = Vec::new();
        for _ in 0..50 {
            rows = gateway::log::tail(&self.app.db, 100).await.unwrap();
            if rows.len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        rows
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

/// A provider that goes silent after its first event is cut off at the idle timeout: the
/// client's stream ends with a coded error in its own protocol's shape instead of
/// waiting on the provider — relayed and translated alike — and the request log says why.
#[tokio::test]
async fn a_provider_silent_mid_stream_is_cut_off_at_the_idle_timeout() {
    let mut options = GatewayOptions::default();
    options.timeouts.idle = Duration::from_millis(300);
    let gw = Gw::start_with(options).await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, None).await;
    gw.rule("claude-x", MatchType::Exact, "ant", None, None)
        .await;
    gw.rule("llama", MatchType::Exact, "compat", None, None)
        .await;
    // The first event at once, the next one only after 10 s.
    let silent = Script {
        text: "one two three".into(),
        chunks: 3,
        event_gap: Duration::from_secs(10),
        ..Default::default()
    };
    for fake in [&gw.openai, &gw.anthropic, &gw.compat] {
        fake.set_script(silent.clone());
    }
    let cases = [
        ("relayed chat", "/v1/chat/completions", chat("gpt-4o", true)),
        (
            "relayed messages",
            "/v1/messages",
            messages_req("claude-x", true),
        ),
        (
            "messages over chat",
            "/v1/messages",
            messages_req("llama", true),
        ),
        (
            "responses over chat",
            "/v1/responses",
            json!({"model": "llama", "input": "Hi", "stream": true}),
        ),
    ];
    for (what, path, body) in cases {
        let t = Instant::now();
        let r = gw.post(path, body).await;
        assert_eq!(r.status(), 200, "{what}");
        let text = r.text().await.unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what}: the gateway waited on the silent provider"
        );
        let events = common::parse_sse(&text);
        let (name, data) = events.last().expect("some events");
        assert!(
            data.contains("\"upstream_timeout\""),
            "{what}: the stream must end with the coded error, got {name:?} {data}"
        );
    }
    // The rows are written in the background as each stream ends.
    let rows = gw.request_log_of(4).await;
    let timed_out = rows
        .iter()
        .filter(|r| r.error_code.as_deref() == Some("upstream_timeout"))
        .count();
    assert_eq!(timed_out, 4, "{rows:?}");
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
        .bearer_auth(&gw.token)
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
                !v.to_str().unwrap_or("").contains(&gw.token),
                "client token forwarded: {r:?}"
            );
        }
        assert!(!r.body.to_string().contains(&gw.token));
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
        .header("content-type", "application/json")
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
        .header("content-type", "application/json")
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

/// A web page on another port of this machine (`http://localhost` is whatever serves
/// port 80), over TLS, or with no port at all is another origin: refused. Only the
/// gateway's own origin and no-Origin clients pass.
#[tokio::test]
async fn only_the_gateways_own_origin_passes() {
    let gw = Gw::start().await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, None).await;
    let port = gw
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let send = |origin: String| {
        let req = gw
            .http
            .post(format!("{}/v1/chat/completions", gw.url))
            .header("origin", origin)
            .json(&chat("gpt-4o", false));
        async move { req.send().await.unwrap() }
    };
    for bad in [
        "http://localhost".to_string(),
        "http://127.0.0.1".to_string(),
        format!("https://127.0.0.1:{port}"),
        format!("https://localhost:{port}"),
        "http://localhost:8080".to_string(),
        "null".to_string(),
    ] {
        let r = send(bad.clone()).await;
        assert_eq!(r.status(), 403, "{bad}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"]["code"],
            "origin_not_allowed",
            "{bad}"
        );
    }
    assert!(gw.openai.received().is_empty());
    for own in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ] {
        assert_eq!(send(own.clone()).await.status(), 200, "{own}");
    }
}

/// The content types an HTML form can post without a CORS preflight are refused in
/// both protocols' shapes, before anything reaches a backend.
#[tokio::test]
async fn bodies_that_are_not_json_are_refused() {
    let gw = Gw::start().await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, None).await;
    gw.rule("claude-x", MatchType::Exact, "ant", None, None)
        .await;
    for (path, body) in [
        ("/v1/chat/completions", chat("gpt-4o", false)),
        ("/v1/messages", messages_req("claude-x", false)),
    ] {
        for ct in [
            None,
            Some("text/plain"),
            Some("text/plain;charset=UTF-8"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
        ] {
            let mut req = gw
                .http
                .post(format!("{}{path}", gw.url))
                .body(body.to_string());
            if let Some(ct) = ct {
                req = req.header("content-type", ct);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 415, "{path} {ct:?}");
            let v: Value = r.json().await.unwrap();
            if path == "/v1/messages" {
                assert_eq!(v["type"], "error", "{v}");
                assert!(
                    v["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("application/json")
                );
            } else {
                assert_eq!(v["error"]["code"], "unsupported_media_type", "{v}");
            }
        }
    }
    assert!(gw.openai.received().is_empty() && gw.anthropic.received().is_empty());
    // The same bodies as JSON go through.
    assert_eq!(
        gw.post("/v1/chat/completions", chat("gpt-4o", false))
            .await
            .status(),
        200
    );
}

/// A client that opens a connection and trickles its headers is cut off; the gateway
/// keeps serving everyone else meanwhile.
#[tokio::test]
async fn slow_clients_are_cut_off_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = Gw::start_with(GatewayOptions {
        header_read_timeout: Duration::from_millis(400),
        ..Default::default()
    })
    .await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    // Others are served while it dawdles.
    let r = gw
        .http
        .get(format!("{}/health", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // It never finishes its headers: the gateway closes the connection.
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf))
        .await
        .expect("the slow connection was never closed");
    assert!(n.is_ok(), "{n:?}");
    let text = String::from_utf8_lossy(&buf);
    assert!(!text.contains("200 OK"), "{text}");
}

/// One client may have only so many requests in flight; the next gets 429 with
/// `retry-after` while other clients are unaffected, and the slot comes back when an
/// answer (here a stream) is finished.
#[tokio::test]
async fn a_client_at_its_in_flight_limit_gets_429_others_do_not() {
    let gw = Gw::start_with(GatewayOptions {
        max_in_flight_per_client: 2,
        ..Default::default()
    })
    .await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, None).await;
    let a = common::issue_token(&gw.app, "client-a").await;
    let b = common::issue_token(&gw.app, "client-b").await;
    let (a, b) = (a.as_str(), b.as_str());
    let send = |key: &str, stream: bool| {
        let req = gw
            .http
            .post(format!("{}/v1/chat/completions", gw.url))
            .header("authorization", format!("Bearer {key}"))
            .json(&chat("gpt-4o", stream));
        async move { req.send().await.unwrap() }
    };
    gw.openai
        .fail_next(Failure::Delay(Duration::from_millis(1500)));
    gw.openai
        .fail_next(Failure::Delay(Duration::from_millis(1500)));
    let slow = tokio::spawn(send(a, false));
    let slow2 = tokio::spawn(send(a, false));
    // Both are in flight once the fake has seen them.
    for _ in 0..200 {
        if gw.openai.received().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(gw.openai.received().len(), 2);
    let r = send(a, false).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after").as_deref(), Some("1"));
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "rate_limited"
    );
    assert_eq!(send(b, false).await.status(), 200, "another client");
    assert_eq!(slow.await.unwrap().status(), 200);
    assert_eq!(slow2.await.unwrap().status(), 200);
    // A finished stream gives its slot back.
    let r = send(a, true).await;
    assert_eq!(r.status(), 200);
    r.text().await.unwrap();
    assert_eq!(send(a, false).await.status(), 200);
    assert_eq!(send(a, false).await.status(), 200);
}

/// Fields that drive work are bounded before any backend sees them (on translated and
/// local routes; a same-protocol relay leaves its fields to the upstream, which checks
/// its own API's limits).
#[tokio::test]
async fn fields_that_drive_work_are_bounded() {
    let gw = Gw::start().await;
    gw.rule("gpt", MatchType::Prefix, "ant", None, None).await;
    let expect_400 = |r: reqwest::Response, what: &'static str| async move {
        assert_eq!(r.status(), 400, "{what}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_request", "{what}: {v}");
        v["error"]["message"].as_str().unwrap().to_string()
    };
    let mut body = chat("gpt-4o", false);
    body["logprobs"] = json!(true);
    body["top_logprobs"] = json!(4294967295u64);
    let m = expect_400(gw.post("/v1/chat/completions", body).await, "top_logprobs").await;
    assert!(m.contains("top_logprobs"), "{m}");
    let m = expect_400(
        gw.post(
            "/v1/chat/completions",
            chat(&format!("gpt-{}", "x".repeat(300)), false),
        )
        .await,
        "long model",
    )
    .await;
    assert!(m.contains("model"), "{m}");
    let m = expect_400(
        gw.post(
            "/v1/chat/completions",
            chat("gpt-4o\n2026-01-01 forged log line", false),
        )
        .await,
        "control chars",
    )
    .await;
    assert!(m.contains("control"), "{m}");
    let mut body = chat("gpt-4o", false);
    body["stop"] = json!((0..100).map(|i| format!("s{i}")).collect::<Vec<_>>());
    expect_400(gw.post("/v1/chat/completions", body).await, "stop count").await;
    let mut body = chat("gpt-4o", false);
    body["stop"] = json!(["x".repeat(5000)]);
    expect_400(gw.post("/v1/chat/completions", body).await, "stop length").await;
    let mut body = chat("gpt-4o", false);
    body["tools"] = json!((0..2000)
        .map(|i| json!({"type": "function", "function": {"name": format!("t{i}"), "parameters": {"type": "object"}}}))
        .collect::<Vec<_>>());
    let m = expect_400(gw.post("/v1/chat/completions", body).await, "tools").await;
    assert!(m.contains("tools"), "{m}");
    let mut deep = json!({"type": "string"});
    // 80 levels: past the schema bound, inside JSON parsing's own limit of 128.
    for _ in 0..40 {
        deep = json!({"type": "object", "properties": {"x": deep}});
    }
    let mut body = chat("gpt-4o", false);
    body["tools"] = json!([{"type": "function", "function": {"name": "deep", "parameters": deep}}]);
    let m = expect_400(gw.post("/v1/chat/completions", body).await, "schema depth").await;
    assert!(m.contains("nested"), "{m}");
    assert!(
        gw.anthropic.received().is_empty(),
        "nothing reached the upstream"
    );
    // Inside the bounds, the same fields go through.
    let mut body = chat("gpt-4o", false);
    body["stop"] = json!(["END"]);
    assert_eq!(gw.post("/v1/chat/completions", body).await.status(), 200);
}

/// An upstream that quotes the credential back (in an error body or an error event)
/// never shows it to the client, relayed or translated, nor to the request log.
#[tokio::test]
async fn credentials_in_upstream_errors_are_redacted() {
    let gw = Gw::start().await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, None).await;
    gw.rule("claude-x", MatchType::Exact, "ant", None, None)
        .await;
    let cases: [(&Fake, Failure, &str, Value); 6] = [
        (
            &gw.openai,
            Failure::EchoKey,
            "/v1/chat/completions",
            chat("gpt-4o", false),
        ),
        (
            &gw.openai,
            Failure::EchoKey,
            "/v1/messages",
            messages_req("gpt-4o", false),
        ),
        (
            &gw.anthropic,
            Failure::EchoKey,
            "/v1/messages",
            messages_req("claude-x", false),
        ),
        (
            &gw.anthropic,
            Failure::EchoKey,
            "/v1/chat/completions",
            chat("claude-x", false),
        ),
        (
            &gw.openai,
            Failure::EchoKeyInStream,
            "/v1/chat/completions",
            chat("gpt-4o", true),
        ),
        (
            &gw.anthropic,
            Failure::EchoKeyInStream,
            "/v1/messages",
            messages_req("claude-x", true),
        ),
    ];
    for (fake, failure, path, body) in cases {
        fake.fail_next(failure);
        let r = gw.post(path, body).await;
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(
            !text.contains("0123456789"),
            "{path}: the provider key reached the client: {text}"
        );
        assert!(text.contains("[redacted]"), "{path} {status}: {text}");
    }
    for row in gw.request_log().await {
        assert!(!format!("{row:?}").contains("0123456789"), "{row:?}");
    }
}

/// After repeated retryable failures a provider's breaker opens: requests go straight
/// to the fallback (saying why), a rule without one gets `provider_circuit_open` with
/// `retry-after`, `provider list` shows it; after the cool-down one probe goes through
/// and its success closes the breaker.
#[tokio::test]
async fn a_failing_provider_is_skipped_by_its_circuit_breaker_then_probed() {
    let options = GatewayOptions {
        breaker: switchyard::upstream::breaker::BreakerConfig {
            threshold: 2,
            cool_down: Duration::from_millis(600),
            ..Default::default()
        },
        ..Default::default()
    };
    let gw = Gw::start_with(options).await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, Some("compat"))
        .await;
    gw.rule("gpt-direct", MatchType::Exact, "oai", Some("gpt-4o"), None)
        .await;
    for _ in 0..2 {
        gw.openai.fail_next(Failure::Status500);
        let r = gw.post("/v1/chat/completions", chat("gpt-4o", false)).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            header(&r, "x-switchyard-backend").as_deref(),
            Some("compat")
        );
        assert_eq!(
            header(&r, "x-switchyard-fallback-reason").as_deref(),
            Some("upstream_error")
        );
    }
    assert_eq!(gw.openai.received().len(), 2);
    // Open: the provider is not even tried.
    let r = gw.post("/v1/chat/completions", chat("gpt-4o", false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-fallback").as_deref(), Some("true"));
    assert_eq!(
        header(&r, "x-switchyard-fallback-reason").as_deref(),
        Some("circuit_open")
    );
    let r = gw
        .post("/v1/chat/completions", chat("gpt-direct", false))
        .await;
    assert_eq!(r.status(), 503);
    assert!(header(&r, "retry-after").is_some());
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "provider_circuit_open"
    );
    assert_eq!(gw.openai.received().len(), 2, "skipped while open");
    let health = async |open: bool| {
        for _ in 0..100 {
            let list = providers::list(&gw.app).await.unwrap();
            let oai = list.iter().find(|p| p.name == "oai").unwrap();
            if oai.health.as_ref().is_some_and(|h| h.is_open() == open) {
                return oai.health.clone().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("provider oai never showed open = {open}");
    };
    assert_eq!(health(true).await.failures, 2);
    // After the cool-down, one probe: it succeeds and closes the breaker.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = gw.post("/v1/chat/completions", chat("gpt-4o", false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-backend").as_deref(), Some("oai"));
    assert_eq!(header(&r, "x-switchyard-fallback"), None);
    assert_eq!(gw.openai.received().len(), 3);
    health(false).await;
    let reasons: Vec<Option<String>> = gw
        .request_log()
        .await
        .into_iter()
        .map(|r| r.fallback_reason)
        .collect();
    assert!(
        reasons.contains(&Some("circuit_open".into())),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&Some("upstream_error".into())),
        "{reasons:?}"
    );
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

// ------------------------------------------------------------------ today's clients (issue 11)

/// POST with extra headers and a query string, as Claude Code does.
async fn post_with(
    gw: &Gw,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> reqwest::Response {
    let mut rb = gw
        .http
        .post(format!("{}{path_and_query}", gw.url))
        .header("x-api-key", &gw.token)
        .json(body);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().await.unwrap()
}

/// The same request sent straight to a fake, with the provider's key: what the gateway
/// must hand back byte for byte.
async fn direct(fake: &Fake, path: &str, body: &Value) -> (u16, String) {
    let mut rb = reqwest::Client::new()
        .post(format!("{}{path}", fake.base_url))
        .json(body);
    rb = match fake.api {
        Api::OpenAi => rb.header("authorization", format!("Bearer {}", fake.key)),
        Api::Anthropic => rb
            .header("x-api-key", &fake.key)
            .header("anthropic-version", "2023-06-01"),
    };
    let r = rb.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// An Anthropic request full of things the gateway has no type for: server tools,
/// documents, citations, context management, a thinking mode, cache TTLs, betas.
fn anthropic_full_of_unknowns(model: &str) -> Value {
    json!({
        "model": model, "max_tokens": 4096, "stream": true,
        "thinking": {"type": "adaptive", "display": "omitted", "future_knob": 3},
        "output_config": {"effort": "medium", "something_new": {"a": [1, 2]}},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "service_tier": "auto",
        "container": {"skills": [{"type": "anthropic", "skill_id": "xlsx"}]},
        "mcp_servers": [{"type": "url", "url": "https://mcp.example/sse", "name": "ex"}],
        "metadata": {"user_id": "{\"device_id\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}"},
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1"},
                   {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
                  {"name": "Bash", "input_schema": {"type": "object"}, "eager_input_streaming": true},
                  {"name": "Deferred", "input_schema": {"type": "object"}, "defer_loading": true}],
        "messages": [
            {"role": "user", "content": [
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Paris is in France."},
                 "citations": {"enabled": true}},
                {"type": "text", "text": "What is the capital of France?", "cache_control": {"type": "ephemeral"}}]},
            {"role": "system", "content": "# Environment"}
        ]
    })
}

#[tokio::test]
async fn same_protocol_requests_pass_through_untouched_and_streams_come_back_byte_for_byte() {
    let gw = Gw::start().await;
    gw.rule(
        "claude-opus-5-5",
        MatchType::Exact,
        "ant",
        Some("claude-real"),
        None,
    )
    .await;
    let sent = anthropic_full_of_unknowns("claude-opus-5-5");
    let r = post_with(
        &gw,
        "/v1/messages?beta=true",
        &[
            ("anthropic-version", "2023-06-01"),
            (
                "anthropic-beta",
                "context-management-2025-06-27,effort-2025-11-24",
            ),
            ("authorization", &format!("Bearer {}", gw.token)),
        ],
        &sent,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-backend").as_deref(), Some("ant"));
    assert_eq!(
        header(&r, "x-switchyard-dropped"),
        None,
        "nothing is dropped on a relay"
    );
    let through_gateway = r.text().await.unwrap();
    let got = gw.anthropic.last();
    // The body arrived as sent, but for the model name.
    let mut expected = sent.clone();
    expected["model"] = json!("claude-real");
    assert_eq!(got.body, expected);
    assert_eq!(got.query.as_deref(), Some("beta=true"));
    assert_eq!(
        got.header("anthropic-beta").as_deref(),
        Some("context-management-2025-06-27,effort-2025-11-24")
    );
    assert_eq!(got.header("x-api-key").as_deref(), Some(ANTHROPIC_KEY));
    assert_eq!(got.header("authorization"), None);
    // The stream is the upstream's, byte for byte.
    let (status, straight) = direct(&gw.anthropic, "/v1/messages", &expected).await;
    assert_eq!(status, 200);
    assert_eq!(through_gateway, straight);

    // OpenAI chat, a client that asked for usage: byte for byte too.
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, None).await;
    let mut body = chat("gpt-4o", true);
    body["stream_options"] = json!({"include_usage": true});
    body["prompt_cache_key"] = json!("k1");
    body["service_tier"] = json!("flex");
    body["metadata"] = json!({"team": "a"});
    let r = gw.post("/v1/chat/completions", body.clone()).await;
    let through_gateway = r.text().await.unwrap();
    assert_eq!(gw.openai.last().body, body);
    let (_, straight) = direct(&gw.openai, "/v1/chat/completions", &body).await;
    assert_eq!(through_gateway, straight);
}

#[tokio::test]
async fn relayed_openai_streams_get_usage_for_the_log_without_showing_it_to_the_client() {
    let gw = Gw::start().await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, None).await;
    let r = gw.post("/v1/chat/completions", chat("gpt-4o", true)).await;
    let events = common::parse_sse(&r.text().await.unwrap());
    let chunks = common::openai_chunks(&events);
    assert!(
        chunks
            .iter()
            .all(|c| !c["choices"].as_array().unwrap().is_empty()),
        "the usage chunk the client did not ask for is left out: {chunks:?}"
    );
    assert_eq!(events.last().unwrap().1, "[DONE]");
    assert_eq!(
        gw.openai.last().body["stream_options"],
        json!({"include_usage": true})
    );
    let log = gw.request_log().await;
    let row = log.last().unwrap();
    assert!(
        row.tokens_in.unwrap() > 0 && row.tokens_out.unwrap() > 0,
        "{row:?}"
    );
}

#[tokio::test]
async fn relayed_errors_are_the_upstreams_own_and_translated_ones_keep_retry_after() {
    let gw = Gw::start().await;
    gw.rule("claude-x", MatchType::Exact, "ant", None, None)
        .await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, None).await;
    // Anthropic client → Anthropic upstream: the upstream's 429 as it was.
    gw.anthropic.fail_next(Failure::RateLimited);
    let r = gw
        .post("/v1/messages", messages_req("claude-x", false))
        .await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after").as_deref(), Some("1"));
    assert_eq!(header(&r, "request-id").as_deref(), Some("req_fake"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(v["request_id"], "req_fake");
    // OpenAI client → Anthropic upstream: our code in OpenAI's shape, and retry-after.
    gw.rule("claude-y", MatchType::Exact, "ant", None, None)
        .await;
    gw.anthropic.fail_next(Failure::RateLimited);
    let r = gw
        .post("/v1/chat/completions", chat("claude-y", false))
        .await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after").as_deref(), Some("1"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    // Anthropic client → OpenAI upstream likewise.
    gw.openai.fail_next(Failure::RateLimited);
    let r = gw.post("/v1/messages", messages_req("gpt-4o", false)).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after").as_deref(), Some("1"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
}

#[tokio::test]
async fn a_claude_code_request_crosses_to_openai_with_advisory_fields_named() {
    let gw = Gw::start().await;
    gw.rule(
        "claude-opus-5-5",
        MatchType::Exact,
        "oai",
        Some("gpt-4o"),
        None,
    )
    .await;
    let mut body = anthropic_full_of_unknowns("claude-opus-5-5");
    // What cannot cross at all is refused, not dropped: server tools, documents,
    // containers and MCP servers change the answer.
    let r = gw.post("/v1/messages", body.clone()).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    for k in ["container", "mcp_servers"] {
        body.as_object_mut().unwrap().remove(k);
    }
    body["tools"].as_array_mut().unwrap().remove(0);
    body["messages"][0]["content"]
        .as_array_mut()
        .unwrap()
        .remove(0);
    let r = gw.post("/v1/messages", body).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let dropped = header(&r, "x-switchyard-dropped").unwrap();
    for name in [
        "context_management",
        "service_tier",
        "tools.defer_loading",
        "cache_control",
        "user",
    ] {
        assert!(
            dropped.split(',').any(|d| d == name),
            "{name} not in {dropped}"
        );
    }
    let events = common::parse_sse(&r.text().await.unwrap());
    assert!(common::anthropic_deltas(&events, "text").contains("Paris"));
    let sent = gw.openai.last();
    assert_eq!(sent.body["reasoning_effort"], "medium");
    assert_eq!(
        sent.body.get("user"),
        None,
        "longer than OpenAI's 64 characters"
    );
    // The mid-conversation system message kept its place.
    let roles: Vec<&str> = sent.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "system"]);
    // The deferred tool stayed back; the other went.
    let tools: Vec<&str> = sent.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["Bash"]);
}

#[tokio::test]
async fn silent_backends_get_keepalives_in_the_clients_protocol() {
    let options = GatewayOptions {
        keepalive: Duration::from_millis(60),
        ..Default::default()
    };
    let gw = Gw::start_with(options).await;
    gw.rule("claude-x", MatchType::Exact, "ant", None, None)
        .await;
    gw.rule("gpt-4o", MatchType::Exact, "oai", None, None).await;
    for fake in [&gw.anthropic, &gw.openai] {
        fake.set_script(Script {
            event_gap: Duration::from_millis(250),
            ..Default::default()
        });
    }
    let text = gw
        .post("/v1/chat/completions", chat("claude-x", true))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains(": keep-alive\n\n"), "{text}");
    assert!(text.contains("Paris"));
    let text = gw
        .post("/v1/messages", messages_req("gpt-4o", true))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("event: ping\n"), "{text}");
    assert!(text.contains("Paris"));
}

#[tokio::test]
async fn models_lists_what_prefix_and_regex_rules_reach_in_both_shapes() {
    let gw = Gw::start().await;
    gw.rule("gpt-", MatchType::Prefix, "oai", None, None).await;
    gw.rule("claude-.*", MatchType::Regex, "ant", None, None)
        .await;
    gw.rule("fast", MatchType::Exact, "oai", Some("gpt-4o-mini"), None)
        .await;
    // A provider that cannot answer is skipped, not fatal.
    provider(
        &gw.app,
        "down",
        ProviderKind::OpenAiCompatible,
        "http://127.0.0.1:9",
        "sk-x",
    )
    .await;
    gw.rule("x-", MatchType::Prefix, "down", None, None).await;
    let get = |path: &str, anthropic: bool| {
        let mut rb = gw.http.get(format!("{}{path}", gw.url));
        if anthropic {
            rb = rb.header("anthropic-version", "2023-06-01");
        }
        rb.send()
    };
    let v: Value = get("/v1/models", false)
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
    // The OpenAI fake has gpt-4o, gpt-4o-mini and text-embedding-3-small: only what the
    // prefix rule reaches is listed.
    assert_eq!(
        ids,
        [
            "fast",
            "gpt-4o",
            "gpt-4o-mini",
            "claude-sonnet-4-5",
            "claude-haiku-4-5"
        ]
    );
    let owned: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["owned_by"].as_str().unwrap())
        .collect();
    assert_eq!(owned, ["oai", "oai", "oai", "ant", "ant"]);
    // The providers were asked with their own keys (Anthropic for its whole list).
    let a = gw.anthropic.last();
    assert_eq!(a.path, "/v1/models");
    assert_eq!(a.query.as_deref(), Some("limit=1000"));
    // Anthropic's shape.
    let v: Value = get("/v1/models", true).await.unwrap().json().await.unwrap();
    assert_eq!(v["has_more"], false);
    assert_eq!(v["first_id"], "fast");
    assert_eq!(v["last_id"], "claude-haiku-4-5");
    let sonnet = &v["data"][3];
    assert_eq!(sonnet["type"], "model");
    assert_eq!(sonnet["display_name"], "Claude Sonnet 4.5");
    assert_eq!(sonnet["created_at"], "2025-09-29T00:00:00Z");
    // One model, in either shape; an unknown one is 404.
    let one: Value = get("/v1/models/gpt-4o", false)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        one,
        json!({"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "oai"})
    );
    let r = get("/v1/models/nope", true).await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    // The lists are cached: a second listing does not ask the providers again.
    let before = gw.openai.received().len();
    get("/v1/models", false).await.unwrap();
    assert_eq!(gw.openai.received().len(), before);
}

fn exec_tool_responses() -> Value {
    json!([{"type": "function", "name": "exec_command", "description": "Runs a command", "strict": false,
            "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}},
           {"type": "web_search", "external_web_access": true}])
}

/// The names of a Responses SSE stream's events, and the final response object.
fn responses_events(text: &str) -> (Vec<String>, Value) {
    let events = common::parse_sse(text);
    let mut names = Vec::new();
    let mut last = Value::Null;
    for (i, (name, data)) in events.iter().enumerate() {
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["type"].as_str(), name.as_deref(), "{data}");
        assert_eq!(v["sequence_number"], json!(i), "{data}");
        names.push(name.clone().unwrap());
        last = v;
    }
    (names, last["response"].clone())
}

#[tokio::test]
async fn responses_pass_through_to_openai_untouched() {
    let gw = Gw::start().await;
    gw.rule("gpt-5", MatchType::Prefix, "oai", None, None).await;
    let body = json!({"model": "gpt-5.1-codex", "stream": true, "input": "Say hi",
        "reasoning": {"summary": "auto"}, "store": false, "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "t1", "client_metadata": {"session_id": "s"}, "tools": exec_tool_responses()});
    let r = gw.post("/v1/responses", body.clone()).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let got = gw.openai.last();
    assert_eq!(got.path, "/v1/responses");
    assert_eq!(got.body, body);
    let (_, straight) = direct(&gw.openai, "/v1/responses", &body).await;
    assert_eq!(text, straight);
}

#[tokio::test]
async fn responses_cross_to_chat_only_servers_and_anthropic_with_a_tool_round_trip() {
    let gw = Gw::start().await;
    gw.rule(
        "via-compat",
        MatchType::Exact,
        "compat",
        Some("llama-3"),
        None,
    )
    .await;
    gw.rule(
        "via-ant",
        MatchType::Exact,
        "ant",
        Some("claude-sonnet-4-5"),
        None,
    )
    .await;
    for fake in [&gw.compat, &gw.anthropic] {
        fake.set_script(Script {
            tool_call: Some(("exec_command".into(), json!({"cmd": "echo hello"}))),
            ..Default::default()
        });
    }
    for (model, fake) in [("via-compat", &gw.compat), ("via-ant", &gw.anthropic)] {
        // Turn 1, streaming: the model calls the tool.
        let body = json!({"model": model, "stream": true, "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Run echo hello"}]}],
            "tools": exec_tool_responses(), "tool_choice": "auto", "parallel_tool_calls": true,
            "prompt_cache_key": "t1", "include": ["reasoning.encrypted_content"]});
        let r = gw.post("/v1/responses", body).await;
        assert_eq!(r.status(), 200);
        let dropped = header(&r, "x-switchyard-dropped").unwrap();
        assert!(
            dropped.contains("tools.web_search") && dropped.contains("prompt_cache_key"),
            "{dropped}"
        );
        let (mut names, done) = responses_events(&r.text().await.unwrap());
        names.dedup();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ],
            "{model}"
        );
        let call = &done["output"][0];
        assert_eq!(call["type"], "function_call");
        assert_eq!(call["name"], "exec_command");
        assert!(call["id"].as_str().unwrap().starts_with("fc_"));
        assert_eq!(
            serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).unwrap(),
            json!({"cmd": "echo hello"})
        );
        assert!(done["usage"]["input_tokens"].as_u64().unwrap() > 0);
        let first_id = done["id"].as_str().unwrap().to_string();
        // What the upstream got: the developer message as the system prompt, one tool.
        let sent = fake.last();
        let tool_names: Vec<String> = sent.body["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                t["name"]
                    .as_str()
                    .or(t["function"]["name"].as_str())
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(tool_names, ["exec_command"]);

        // Turn 2, not streaming, continuing the stored response: only the tool's output.
        let body = json!({"model": model, "previous_response_id": first_id,
            "tools": exec_tool_responses(), "input": [
                {"type": "function_call_output", "call_id": call["call_id"], "output": "hello\n"}]});
        let r = gw.post("/v1/responses", body).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["object"], "response");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["previous_response_id"], json!(first_id));
        assert_eq!(v["output"][0]["type"], "message");
        assert_eq!(v["output"][0]["content"][0]["text"], "Tool result: hello");
        // The upstream saw the whole conversation: the stored turn, then the result.
        let sent = fake.last();
        let dump = sent.body.to_string();
        assert!(
            dump.contains("Run echo hello") && dump.contains("You are Codex."),
            "{dump}"
        );
    }
    // An id that was never stored is a clear 404 in OpenAI's shape.
    let r = gw
        .post(
            "/v1/responses",
            json!({"model": "via-compat", "previous_response_id": "resp_nope", "input": "x"}),
        )
        .await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "response_not_found");
    // store: false keeps nothing.
    let r = gw
        .post(
            "/v1/responses",
            json!({"model": "via-compat", "store": false, "input": "Hi"}),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    let r = gw
        .post(
            "/v1/responses",
            json!({"model": "via-compat", "previous_response_id": v["id"], "input": "again"}),
        )
        .await;
    assert_eq!(r.status(), 404);
}
