// The Dashboard's live activity: the last hour per minute (requests, errors, tokens)
// and the newest requests, kept current from the core's request events.
import type { Minute } from "./bindings/Minute";
import type { RequestRow } from "./bindings/RequestRow";

export const RECENT = 20;
export const MINUTES = 60;

/** `rows` with `row` in front, at most RECENT (newest first). */
export function pushRecent(rows: RequestRow[], row: RequestRow): RequestRow[] {
  return [row, ...rows].slice(0, RECENT);
}

/** The per-minute series with `row` counted in its minute; minutes older than an hour before it dropped. */
export function countRequest(minutes: Minute[], row: RequestRow): Minute[] {
  const at = Math.floor(row.ts / 60000) * 60000;
  const since = at - (MINUTES - 1) * 60000;
  const out = minutes.filter((m) => m.at >= since).map((m) => ({ ...m }));
  let m = out.find((x) => x.at === at);
  if (!m) {
    m = { at, requests: 0, errors: 0, tokens_in: 0, tokens_out: 0 };
    out.push(m);
    out.sort((a, b) => a.at - b.at);
  }
  m.requests += 1;
  if (row.status >= 400) m.errors += 1;
  m.tokens_in += row.tokens_in ?? 0;
  m.tokens_out += row.tokens_out ?? 0;
  return out;
}

export interface HourTotals {
  requests: number;
  perMinute: number;
  errorRate: number;
  tokensIn: number;
  tokensOut: number;
}

/** Totals over the minutes of the last hour before `nowMs`. */
export function hourTotals(minutes: Minute[], nowMs: number): HourTotals {
  const since = Math.floor(nowMs / 60000) * 60000 - (MINUTES - 1) * 60000;
  const last = minutes.filter((m) => m.at >= since);
  const requests = last.reduce((n, m) => n + m.requests, 0);
  const errors = last.reduce((n, m) => n + m.errors, 0);
  return {
    requests,
    perMinute: requests / MINUTES,
    errorRate: requests === 0 ? 0 : errors / requests,
    tokensIn: last.reduce((n, m) => n + m.tokens_in, 0),
    tokensOut: last.reduce((n, m) => n + m.tokens_out, 0),
  };
}

/** One bar per minute of the hour before `nowMs` (0 for quiet minutes), oldest first. */
export function bars(minutes: Minute[], nowMs: number): { at: number; requests: number; errors: number }[] {
  const end = Math.floor(nowMs / 60000) * 60000;
  const byAt = new Map(minutes.map((m) => [m.at, m]));
  const out = [];
  for (let i = MINUTES - 1; i >= 0; i--) {
    const at = end - i * 60000;
    const m = byAt.get(at);
    out.push({ at, requests: m?.requests ?? 0, errors: m?.errors ?? 0 });
  }
  return out;
}
