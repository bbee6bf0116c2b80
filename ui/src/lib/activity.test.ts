import { describe, expect, it } from "vitest";
import { bars, countRequest, hourTotals, pushRecent, RECENT } from "./activity";
import type { RequestRow } from "./bindings/RequestRow";

const row = (ts: number, status = 200, tin = 10, tout = 5): RequestRow => ({
  ts,
  protocol: "openai",
  endpoint: "/v1/chat/completions",
  model: "m",
  rule_id: null,
  backend: "local",
  upstream_model: "m",
  status,
  latency_ms: 12,
  tokens_in: tin,
  tokens_out: tout,
  fallback: false,
  error_code: status >= 400 ? "model_not_found" : null,
  client_id: 1,
  stream: false,
});

describe("activity", () => {
  it("keeps the newest RECENT requests, newest first", () => {
    let rows: RequestRow[] = [];
    for (let i = 0; i < RECENT + 5; i++) rows = pushRecent(rows, row(i));
    expect(rows.length).toBe(RECENT);
    expect(rows[0]!.ts).toBe(RECENT + 4);
  });

  it("counts a request in its minute and drops minutes older than an hour", () => {
    const t = 100 * 60000;
    let m = countRequest([{ at: t - 90 * 60000, requests: 3, errors: 0, tokens_in: 1, tokens_out: 1 }], row(t + 5));
    m = countRequest(m, row(t + 7, 404, 0, 0));
    expect(m).toEqual([{ at: t, requests: 2, errors: 1, tokens_in: 10, tokens_out: 5 }]);
    const h = hourTotals(m, t + 30000);
    expect(h.requests).toBe(2);
    expect(h.errorRate).toBe(0.5);
    expect(h.tokensIn).toBe(10);
    const b = bars(m, t + 30000);
    expect(b.length).toBe(60);
    expect(b.at(-1)).toEqual({ at: t, requests: 2, errors: 1 });
    expect(b[0]!.requests).toBe(0);
  });
});
