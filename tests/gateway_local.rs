//! The gateway's local route on the real engine and the fixture model (SmolLM2-135M,
//! fetched by scripts/fetch-fixtures.sh): both client protocols, streaming and not,
//! exact token counts, greedy output equal to mlx-lm's reference, and cancellation of
//! the generation when the client leaves.

mod common;

use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use switchyard::app::{App, AppOptions, SharedApp};
use switchyard::gateway::{self, GatewayOptions, GatewayState, Server};
use switchyard::store::audit::Actor;
use switchyard::vault::BackendKind;

const MODEL: &str = "smollm2";

fn fixture_gguf() -> PathBuf {
    let p = common::repo_root().join(".fixtures/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.exists(),
        "fixture {} is missing: run scripts/fetch-fixtures.sh",
        p.display()
    );
    p
}

/// The first reference record: prompt, its token count and mlx-lm's greedy answer.
fn reference() -> Value {
    let text =
        std::fs::read_to_string(common::repo_root().join("tests/fixtures/smollm2/reference.jsonl"))
            .unwrap();
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}

struct Local {
    _dir: tempfile::TempDir,
    app: SharedApp,
    server: Server,
    http: reqwest::Client,
}

impl Local {
    async fn start() -> Local {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(AppOptions {
            data_dir: Some(dir.path().to_path_buf()),
            vault: BackendKind::File,
        })
        .await
        .unwrap();
        switchyard::models::import(&app.db, &fixture_gguf(), Some(MODEL.into()), Actor::Cli)
            .await
            .unwrap();
        let local = switchyard::pool::Pool::start(&app);
        let state = GatewayState::new(app.clone(), GatewayOptions::default(), local)
            .await
            .unwrap();
        let server = gateway::serve(state, "127.0.0.1".parse().unwrap(), 0)
            .await
            .unwrap();
        let token = common::issue_token(&app, "tests").await;
        Local {
            _dir: dir,
            app,
            server,
            http: common::http_with_token(&token),
        }
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.server.url()))
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

/// Read a chat completions stream until text arrives: the generation is running.
async fn until_text(r: &mut reqwest::Response) {
    loop {
        let chunk = r
            .chunk()
            .await
            .unwrap()
            .expect("the stream ended before any text");
        if String::from_utf8_lossy(&chunk).contains("\"content\":\"") {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_names_go_to_the_local_model_in_both_protocols_greedy_like_mlx_lm() {
    let gw = Local::start().await;
    let reference = reference();
    let question = reference["prompt"].as_str().unwrap();
    let expected = reference["text"].as_str().unwrap();

    // OpenAI client, not streaming, temperature 0 = greedy = mlx-lm's tokens.
    let r = gw
        .post("/v1/chat/completions", json!({"model": MODEL, "temperature": 0, "messages": [{"role": "user", "content": question}]}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-backend"], "local");
    assert_eq!(r.headers()["x-switchyard-rule"], "none");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], expected);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], reference["num_prompt_tokens"]);

    // Anthropic client, streaming: the same text through Anthropic's event sequence.
    let r = gw
        .post(
            "/v1/messages",
            json!({"model": MODEL, "max_tokens": 64, "temperature": 0, "stream": true,
                   "messages": [{"role": "user", "content": question}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let events = common::parse_sse(&r.text().await.unwrap());
    assert_eq!(events.first().unwrap().0.as_deref(), Some("message_start"));
    assert_eq!(events.last().unwrap().0.as_deref(), Some("message_stop"));
    let text = common::anthropic_deltas(&events, "text");
    assert_eq!(text, expected);
    let md: Value = serde_json::from_str(
        &events
            .iter()
            .find(|e| e.0.as_deref() == Some("message_delta"))
            .unwrap()
            .1,
    )
    .unwrap();
    assert_eq!(md["delta"]["stop_reason"], "end_turn");

    // OpenAI client, streaming with a token limit: finish_reason length.
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": MODEL, "temperature": 0, "stream": true, "max_tokens": 3,
                   "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": question}]}),
        )
        .await;
    let events = common::parse_sse(&r.text().await.unwrap());
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks = common::openai_chunks(&events);
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "length")
    );
    let usage = chunks.iter().find(|c| c["usage"].is_object()).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 3);
    let text = common::openai_text(&chunks);
    assert!(expected.starts_with(&text) && !text.is_empty(), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_tokens_is_exact_for_local_models_and_legacy_completions_work() {
    let gw = Local::start().await;
    let reference = reference();
    let r = gw
        .post(
            "/v1/messages/count_tokens",
            json!({"model": MODEL, "messages": [{"role": "user", "content": reference["prompt"]}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["input_tokens"], reference["num_prompt_tokens"],
        "the chat template's exact prompt length"
    );

    let r = gw
        .post("/v1/completions", json!({"model": MODEL, "prompt": "The capital of France is", "max_tokens": 4, "temperature": 0}))
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "text_completion");
    assert!(!v["choices"][0]["text"].as_str().unwrap().is_empty());
    assert_eq!(v["usage"]["completion_tokens"], 4);

    let models: Value = gw
        .http
        .get(format!("{}/v1/models", gw.server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], MODEL);
    assert_eq!(models["data"][0]["owned_by"], "local");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_to_a_text_only_local_model_are_a_clear_unsupported_feature_error() {
    let gw = Local::start().await;
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]});
    let r = gw.post("/v1/chat/completions", body).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unsupported_feature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_disconnect_stops_the_local_generation() {
    let gw = Local::start().await;
    let long = json!({"model": MODEL, "temperature": 0, "stream": true, "max_tokens": 4000,
        "messages": [{"role": "user", "content": "Write a very long story about a lighthouse keeper, with many chapters."}]});
    let short = json!({"model": MODEL, "max_tokens": 2, "temperature": 0, "messages": [{"role": "user", "content": "Hi"}]});
    // Warm up (loads the model).
    assert_eq!(
        gw.post("/v1/chat/completions", short.clone())
            .await
            .status(),
        200
    );

    let mut r = gw.post("/v1/chat/completions", long).await;
    until_text(&mut r).await;
    drop(r);
    // The generation stops (its place in the model is freed) when the client leaves:
    // left running, it would hold it for thousands of tokens (minutes here).
    let model = gw.app.pool().unwrap().acquire(MODEL).await.unwrap().handle;
    common::wait_generations_end(&model, "the abandoned generation kept running").await;
    drop(model);
    // And the model answers the next request.
    let r = gw.post("/v1/chat/completions", short).await;
    assert_eq!(r.status(), 200);
    // The abandoned request is logged as cancelled.
    let mut cancelled = false;
    for _ in 0..100 {
        let rows = gateway::log::tail(&gw.app.db, 10).await.unwrap();
        if rows
            .iter()
            .any(|r| r.stream && r.error_code.as_deref() == Some("cancelled"))
        {
            cancelled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(cancelled, "no cancelled row in the request log");
}

/// Continuous batching through the gateway: 4, then 8 concurrent greedy requests (both
/// protocols) each get exactly the answer they get alone, and a streaming request whose
/// client leaves mid-batch frees its place without changing any of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_greedy_requests_equal_their_solo_answers_and_a_cancelled_one_changes_nothing() {
    let gw = Local::start().await;
    let questions: Vec<String> =
        std::fs::read_to_string(common::repo_root().join("tests/fixtures/smollm2/reference.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["prompt"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .chain(["Name a color.".to_string(), "Count to five.".to_string()])
            .collect();
    assert_eq!(questions.len(), 8);
    // Even ones as chat completions, odd ones as Anthropic messages.
    let ask = |i: usize| {
        let http = gw.http.clone();
        let url = gw.server.url();
        let q = questions[i].clone();
        async move {
            let body = json!({"model": MODEL, "temperature": 0, "max_tokens": 24,
                "messages": [{"role": "user", "content": q}]});
            let path = if i.is_multiple_of(2) {
                "/v1/chat/completions"
            } else {
                "/v1/messages"
            };
            let r = http
                .post(format!("{url}{path}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "request {i}");
            let v: Value = r.json().await.unwrap();
            if i.is_multiple_of(2) {
                v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_string()
            } else {
                v["content"][0]["text"].as_str().unwrap().to_string()
            }
        }
    };
    let mut solo = Vec::new();
    for i in 0..questions.len() {
        solo.push(ask(i).await);
    }
    for width in [4, 8] {
        // With 4: a fifth, streaming, whose client leaves after its first text.
        let leaver = (width == 4).then(|| {
            let http = gw.http.clone();
            let url = gw.server.url();
            tokio::spawn(async move {
                let body = json!({"model": MODEL, "temperature": 0, "stream": true, "max_tokens": 400,
                    "messages": [{"role": "user", "content": "Write a long story about a lighthouse."}]});
                let mut r = http.post(format!("{url}/v1/chat/completions")).json(&body).send().await.unwrap();
                until_text(&mut r).await;
            })
        });
        let running: Vec<_> = (0..width).map(|i| tokio::spawn(ask(i))).collect();
        for (i, h) in running.into_iter().enumerate() {
            assert_eq!(
                h.await.unwrap(),
                solo[i],
                "request {i} in a batch of {width}"
            );
        }
        if let Some(l) = leaver {
            l.await.unwrap();
        }
        // Every place is free again, the one whose client left included.
        let model = gw.app.pool().unwrap().acquire(MODEL).await.unwrap().handle;
        common::wait_generations_end(&model, "the abandoned generation kept its place").await;
        // They ran together (not all at once to the end: a short answer may finish
        // before the last prompt is read).
        assert!(
            model.largest_batch() > width / 2,
            "largest batch {} with {width} requests at once",
            model.largest_batch()
        );
    }
}

/// A model whose queue (`pool set --queue`) is full: the next request is `model_busy`,
/// HTTP 429 with `retry-after`, in each client's protocol; once the place is free it
/// is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_model_queue_is_model_busy_429_with_retry_after() {
    let gw = Local::start().await;
    switchyard::settings::pool::set(
        &gw.app,
        Actor::Cli,
        switchyard::settings::pool::PoolChange {
            batch: Some(1),
            queue: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let long = json!({"model": MODEL, "temperature": 0, "stream": true, "max_tokens": 2000,
        "messages": [{"role": "user", "content": "Write a very long story about a lighthouse keeper."}]});
    let short = json!({"model": MODEL, "max_tokens": 2, "temperature": 0,
        "messages": [{"role": "user", "content": "Hi"}]});
    let mut r = gw.post("/v1/chat/completions", long).await;
    until_text(&mut r).await;
    let busy = gw.post("/v1/chat/completions", short.clone()).await;
    assert_eq!(busy.status(), 429);
    assert_eq!(busy.headers()["retry-after"], "1");
    let v: Value = busy.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_busy", "{v}");
    let busy = gw.post("/v1/messages", short.clone()).await;
    assert_eq!(busy.status(), 429);
    assert_eq!(busy.headers()["retry-after"], "1");
    let v: Value = busy.json().await.unwrap();
    assert_eq!(
        (v["type"].as_str(), v["error"]["type"].as_str()),
        (Some("error"), Some("rate_limit_error")),
        "{v}"
    );
    drop(r);
    let model = gw.app.pool().unwrap().acquire(MODEL).await.unwrap().handle;
    common::wait_generations_end(&model, "the abandoned generation kept its place").await;
    assert_eq!(gw.post("/v1/chat/completions", short).await.status(), 200);
}

/// Eight clients of both protocols that hang up at random moments (before the first
/// token, mid-prefill, mid-stream, mid-JSON answer): no worker is left stuck, and the
/// next greedy request still gets exactly mlx-lm's tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_leaving_at_random_moments_leave_the_model_exact() {
    let gw = Local::start().await;
    let reference = reference();
    let question = reference["prompt"].as_str().unwrap();
    let expected = reference["text"].as_str().unwrap();
    // A deterministic spread of moments (ms after sending) to hang up at.
    let moments = [0u64, 5, 40, 120, 300, 700, 1500, 3000];
    let mut tasks = Vec::new();
    for (i, after) in moments.into_iter().enumerate() {
        let http = gw.http.clone();
        let url = gw.server.url();
        let stream = i % 2 == 0;
        let (path, body) = if i % 4 < 2 {
            (
                "/v1/chat/completions",
                json!({"model": MODEL, "temperature": 0, "stream": stream, "max_tokens": 200,
                "messages": [{"role": "user", "content": format!("Tell story number {i} about a lighthouse.")}]}),
            )
        } else {
            (
                "/v1/messages",
                json!({"model": MODEL, "temperature": 0, "stream": stream, "max_tokens": 200,
                "messages": [{"role": "user", "content": format!("Tell story number {i} about a lighthouse.")}]}),
            )
        };
        tasks.push(tokio::spawn(async move {
            let send = async {
                let mut r = http.post(format!("{url}{path}")).json(&body).send().await?;
                while r.chunk().await?.is_some() {}
                Ok::<_, reqwest::Error>(())
            };
            // Dropping the future mid-way closes the connection: the client is gone.
            let _ = tokio::time::timeout(Duration::from_millis(after), send).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Whatever state the hang-ups left, the model answers exactly as mlx-lm does. (The
    // abandoned requests may still hold their queue places for a moment: a 429
    // model_busy with retry-after is retried, as the SDKs do.)
    let ask = || {
        gw.post(
            "/v1/chat/completions",
            json!({"model": MODEL, "temperature": 0, "messages": [{"role": "user", "content": question}]}),
        )
    };
    let r = tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            let r = ask().await;
            if r.status() != 429 {
                return r;
            }
            assert_eq!(r.headers()["retry-after"], "1");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("a worker was left stuck: the next request never got an answer");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_a_local_template_cannot_show_are_refused_never_dropped() {
    let gw = Local::start().await;
    let tool =
        json!({"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}});
    let msgs = json!([{"role": "user", "content": "What is 2+2?"}]);
    // SmolLM2's template has no place for tools: offering them is an error in both
    // protocols (and for count_tokens), not a request answered without them.
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": MODEL, "messages": msgs, "tools": [tool]}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unsupported_feature", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("tools"),
        "{v}"
    );
    let anthropic_tool = json!({"name": "add", "input_schema": {"type": "object"}});
    for path in ["/v1/messages", "/v1/messages/count_tokens"] {
        let r = gw
            .post(path, json!({"model": MODEL, "max_tokens": 8, "messages": msgs, "tools": [anthropic_tool]}))
            .await;
        assert_eq!(r.status(), 400, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error", "{path}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("tools"),
            "{path}: {v}"
        );
    }
    // A local model cannot be forced to call a tool.
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": MODEL, "messages": msgs, "tools": [tool], "tool_choice": "required"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "unsupported_feature"
    );
    // tool_choice none: the tools are not offered, so the model answers.
    let r = gw
        .post("/v1/chat/completions", json!({"model": MODEL, "temperature": 0, "max_tokens": 4, "messages": msgs, "tools": [tool], "tool_choice": "none"}))
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(
        !v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    // Nor can its output be held to a JSON schema.
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": MODEL, "messages": msgs, "response_format": {"type": "json_object"}}),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "unsupported_feature"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_logprobs_come_back_per_token_in_both_modes() {
    let gw = Local::start().await;
    let reference = reference();
    let ids = reference["generated_token_ids"].as_array().unwrap();
    let body = |stream: bool| {
        json!({"model": MODEL, "temperature": 0, "max_tokens": 6, "stream": stream,
               "logprobs": true, "top_logprobs": 3,
               "messages": [{"role": "user", "content": reference["prompt"]}]})
    };
    let check = |content: &[Value], text: &str| {
        assert_eq!(content.len(), 6.min(ids.len()), "{content:?}");
        for lp in content {
            let chosen = lp["logprob"].as_f64().unwrap();
            assert!(chosen <= 0.0, "{lp}");
            let top = lp["top_logprobs"].as_array().unwrap();
            assert_eq!(top.len(), 3, "{lp}");
            // Greedy: the chosen token is the most likely one.
            assert_eq!(top[0]["token"], lp["token"], "{lp}");
            assert!(
                (top[0]["logprob"].as_f64().unwrap() - chosen).abs() < 1e-5,
                "{lp}"
            );
            assert!(top[1]["logprob"].as_f64().unwrap() <= chosen, "{lp}");
        }
        let joined: String = content
            .iter()
            .map(|l| l["token"].as_str().unwrap())
            .collect();
        assert_eq!(joined, text);
    };

    let v: Value = gw
        .post("/v1/chat/completions", body(false))
        .await
        .json()
        .await
        .unwrap();
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    check(
        v["choices"][0]["logprobs"]["content"].as_array().unwrap(),
        &text,
    );

    let r = gw.post("/v1/chat/completions", body(true)).await;
    let chunks = common::openai_chunks(&common::parse_sse(&r.text().await.unwrap()));
    let content: Vec<Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["logprobs"]["content"].as_array())
        .flatten()
        .cloned()
        .collect();
    assert_eq!(common::openai_text(&chunks), text);
    check(&content, &text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_stop_sequences_prefill_and_early_usage_on_the_local_model() {
    let gw = Local::start().await;
    let reference = reference();
    let question = reference["prompt"].as_str().unwrap();
    let expected = reference["text"].as_str().unwrap(); // "The capital of France is Paris."
    let prompt_tokens = reference["num_prompt_tokens"].as_u64().unwrap();

    // The Responses API, not streaming and streaming: mlx-lm's greedy text.
    let r = gw
        .post(
            "/v1/responses",
            json!({"model": MODEL, "temperature": 0, "input": question}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["content"][0]["text"], expected);
    assert_eq!(v["usage"]["input_tokens"], prompt_tokens);
    let r = gw
        .post(
            "/v1/responses",
            json!({"model": MODEL, "temperature": 0, "stream": true, "store": false, "input": question}),
        )
        .await;
    let events = common::parse_sse(&r.text().await.unwrap());
    let text: String = events
        .iter()
        .filter(|e| e.0.as_deref() == Some("response.output_text.delta"))
        .map(|e| {
            serde_json::from_str::<Value>(&e.1).unwrap()["delta"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(text, expected);
    assert_eq!(
        events.last().unwrap().0.as_deref(),
        Some("response.completed")
    );

    // Anthropic's message_start carries the prompt's size (it used to say 0).
    let r = gw
        .post(
            "/v1/messages",
            json!({"model": MODEL, "max_tokens": 64, "temperature": 0, "stream": true,
                   "messages": [{"role": "user", "content": question}]}),
        )
        .await;
    let events = common::parse_sse(&r.text().await.unwrap());
    let start: Value = serde_json::from_str(&events[0].1).unwrap();
    assert_eq!(start["message"]["usage"]["input_tokens"], prompt_tokens);

    // A stop string is reported as the stop sequence, not as an end of turn.
    let r = gw
        .post(
            "/v1/messages",
            json!({"model": MODEL, "max_tokens": 64, "temperature": 0, "stop_sequences": ["Paris"],
                   "messages": [{"role": "user", "content": question}]}),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["stop_reason"], "stop_sequence");
    assert_eq!(v["stop_sequence"], "Paris");
    assert_eq!(v["content"][0]["text"], "The capital of France is ");

    // A final assistant message is continued, not answered in a new turn.
    let r = gw
        .post(
            "/v1/messages",
            json!({"model": MODEL, "max_tokens": 64, "temperature": 0, "messages": [
                {"role": "user", "content": question},
                {"role": "assistant", "content": "The capital of France is"}]}),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    let continued = v["content"][0]["text"].as_str().unwrap();
    assert_eq!(format!("The capital of France is{continued}"), expected);
}
