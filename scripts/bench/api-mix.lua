-- wrk script for the gateway's own API comparison (scripts/bench-gateway.sh, phase 2):
-- POST one request of the API named by API (chat | messages | responses) for MODEL, with
-- STREAM true/false, and print a RESULT line in the shared harness's format.
local api = os.getenv("API") or "chat"
local model = os.getenv("MODEL") or "bench-plain"
local stream = os.getenv("STREAM") or "false"
local q = "What is the capital of France?"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("TOKEN") or "sk-bench")
wrk.headers["x-api-key"] = os.getenv("TOKEN") or "sk-bench"
if api == "messages" then
  wrk.headers["anthropic-version"] = "2023-06-01"
  wrk.body = '{"model":"' .. model .. '","max_tokens":256,"messages":[{"role":"user","content":"' .. q .. '"}],"stream":' .. stream .. '}'
elseif api == "responses" then
  wrk.body = '{"model":"' .. model .. '","input":"' .. q .. '","store":false,"stream":' .. stream .. '}'
else
  wrk.body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"' .. q .. '"}],"stream":' .. stream .. '}'
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status))
end
