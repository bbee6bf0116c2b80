//! OpenAI Responses API request wire type (what clients send to `POST /v1/responses`).
//!
//! Input items and tools stay `serde_json::Value` here: the API has dozens of item and
//! tool types and adds more every few months, and `responses.rs` matches on their `type`
//! by hand so that each one gets a precise answer (carried, dropped and named, or refused
//! with its name) instead of a generic "unknown variant" from serde.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResponsesRequest {
    pub model: String,
    /// A string (one user message) or a list of input items.
    #[serde(default)]
    pub input: Option<Value>,
    /// A system/developer message for this response only (not carried over by
    /// `previous_response_id`).
    #[serde(default)]
    pub instructions: Option<Value>,
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub top_logprobs: Option<u32>,
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    #[serde(default)]
    pub reasoning: Option<Reasoning>,
    #[serde(default)]
    pub text: Option<TextConfig>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default)]
    pub include: Option<Vec<String>>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub truncation: Option<String>,
    // ---- advisory: accepted, not carried across protocols (named in x-switchyard-dropped)
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub safety_identifier: Option<Value>,
    #[serde(default)]
    pub prompt_cache_key: Option<Value>,
    #[serde(default)]
    pub prompt_cache_retention: Option<Value>,
    #[serde(default)]
    pub service_tier: Option<Value>,
    #[serde(default)]
    pub client_metadata: Option<Value>,
    #[serde(default)]
    pub stream_options: Option<Value>,
    #[serde(default)]
    pub max_tool_calls: Option<Value>,
    // ---- defined by the API, not carried (decode answers `unsupported_feature`)
    #[serde(default)]
    pub background: Option<bool>,
    #[serde(default)]
    pub conversation: Option<Value>,
    #[serde(default)]
    pub prompt: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Reasoning {
    #[serde(default)]
    pub effort: Option<String>,
    /// `auto` | `concise` | `detailed`: reasoning comes back as summary text.
    #[serde(default)]
    pub summary: Option<String>,
    /// Deprecated spelling of `summary`.
    #[serde(default)]
    pub generate_summary: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TextConfig {
    #[serde(default)]
    pub format: Option<TextFormat>,
    #[serde(default)]
    pub verbosity: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TextFormat {
    Text,
    JsonObject,
    JsonSchema {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        description: Option<String>,
        #[serde(default)]
        schema: Option<Value>,
        #[serde(default)]
        strict: Option<bool>,
    },
}
