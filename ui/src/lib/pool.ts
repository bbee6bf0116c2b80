// The pool form's logic: the memory limit as percent of RAM or GB, the byte budget it
// gives on this machine, and the idle TTL. The rules mirror settings/pool.rs so the
// form can say what is wrong before saving; the core checks again and has the last word.
import type { Eviction } from "./bindings/Eviction";
import type { PoolSet } from "./bindings/PoolSet";
import type { PoolView } from "./bindings/PoolView";
import { GB, formatDuration } from "./format";
import { t } from "./i18n";

export type LimitKind = "percent" | "gb";

export interface LimitInput {
  kind: LimitKind;
  value: number;
}

export const MIN_PERCENT = 1;
export const MAX_PERCENT = 95;
export const MAX_TTL_SECONDS = 30 * 24 * 3600;
export const MAX_BATCH = 64;
export const MAX_QUEUE = 1024;
export const MAX_DISK_CACHE_GB = 4096;

/** The form's value back to the text the core parses: `75%`, `12GB`, `1.5GB`. */
export function formatLimit(limit: LimitInput): string {
  return `${limit.value}${limit.kind === "percent" ? "%" : "GB"}`;
}

/** Why the limit is out of range on a machine with `ramBytes`, or null when it is fine. */
export function limitProblem(limit: LimitInput, ramBytes: number): string | null {
  if (!Number.isFinite(limit.value)) return t("pool.enterNumber");
  if (limit.kind === "percent") {
    if (limit.value < MIN_PERCENT || limit.value > MAX_PERCENT) {
      return t("pool.percentRange", { min: MIN_PERCENT, max: MAX_PERCENT });
    }
    return null;
  }
  if (limit.value <= 0) return t("pool.limitPositive");
  if (limit.value * GB > ramBytes) {
    return t("pool.limitOverRam", { ram: (ramBytes / GB).toFixed(1) });
  }
  return null;
}

/** Bytes the pool may use (settings/pool.rs `budget_bytes`): a share of RAM, or the size capped at RAM. */
export function budgetBytes(limit: LimitInput, ramBytes: number): number {
  if (limit.kind === "percent") return Math.floor((ramBytes * limit.value) / 100);
  return Math.min(Math.floor(limit.value * GB), ramBytes);
}

/** `30s`, `15m`, `2h`, `1d` → seconds (1 s to 30 d), or an error message. */
export function parseTtl(text: string): { seconds: number } | { error: string } {
  const m = /^(\d+)([smhd])$/.exec(text.trim().toLowerCase());
  if (!m) return { error: t("pool.ttlFormat") };
  const size = { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as "s" | "m" | "h" | "d"];
  const seconds = Number(m[1]) * size;
  if (seconds < 1) return { error: t("pool.ttlMin") };
  if (seconds > MAX_TTL_SECONDS) return { error: t("pool.ttlMax") };
  return { seconds };
}

/** A comma- or newline-separated list of model names: trimmed, without blanks and repeats. */
export function parsePreload(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/[,\n]/)) {
    const name = raw.trim();
    if (name && !out.includes(name)) out.push(name);
  }
  return out;
}

// ------------------------------------------------------------------ the form

export interface PoolForm {
  kind: LimitKind;
  value: number;
  eviction: Eviction;
  /** Empty = never unload idle models. */
  ttl: string;
  /** Comma-separated model names. */
  preload: string;
  /** Generations a model runs together. */
  batch: number;
  /** Generations a model accepts at once (running and waiting). */
  queue: number;
  /** GB for the prefix cache on disk; 0 = off. */
  diskCacheGb: number;
}

export function poolFormFor(v: PoolView): PoolForm {
  return {
    kind: v.limit_kind === "gb" ? "gb" : "percent",
    value: v.limit_value,
    eviction: v.eviction,
    ttl: v.ttl_seconds === null ? "" : formatDuration(v.ttl_seconds),
    preload: v.preload.join(", "),
    batch: v.batch,
    queue: v.queue,
    diskCacheGb: Math.round((v.disk_cache_bytes / GB) * 100) / 100,
  };
}

type Field = "limit" | "ttl" | "batch" | "queue" | "disk";

export function poolProblems(f: PoolForm, ramBytes: number): Partial<Record<Field, string>> {
  const p: Partial<Record<Field, string>> = {};
  const limit = limitProblem({ kind: f.kind, value: f.value }, ramBytes);
  if (limit) p.limit = limit;
  if (f.ttl.trim()) {
    const t = parseTtl(f.ttl);
    if ("error" in t) p.ttl = t.error;
  } else if (f.eviction === "ttl") {
    p.ttl = t("pool.ttlNeeded");
  }
  if (!Number.isInteger(f.batch) || f.batch < 1 || f.batch > MAX_BATCH) {
    p.batch = t("pool.wholeNumber", { max: MAX_BATCH });
  }
  if (!Number.isInteger(f.queue) || f.queue < 1 || f.queue > MAX_QUEUE) {
    p.queue = t("pool.wholeNumber", { max: MAX_QUEUE });
  } else if (!p.batch && f.queue < f.batch) {
    p.queue = t("pool.queueBelowBatch");
  }
  if (!Number.isFinite(f.diskCacheGb) || f.diskCacheGb < 0 || f.diskCacheGb > MAX_DISK_CACHE_GB) {
    p.disk = t("pool.diskRange", { max: MAX_DISK_CACHE_GB });
  }
  return p;
}

/** What `pool_set` needs to turn `v` into the form's values: only the fields that changed. */
export function poolChangeFrom(v: PoolView, f: PoolForm): PoolSet {
  const change: PoolSet = {};
  if (f.kind !== v.limit_kind || f.value !== v.limit_value) change.limit = formatLimit({ kind: f.kind, value: f.value });
  if (f.eviction !== v.eviction) change.eviction = f.eviction;
  const ttl = f.ttl.trim();
  const seconds = ttl ? parseTtl(ttl) : null;
  const newTtl = seconds && "seconds" in seconds ? seconds.seconds : null;
  if (ttl ? newTtl !== v.ttl_seconds : v.ttl_seconds !== null) change.ttl = ttl || null;
  const preload = parsePreload(f.preload);
  if (preload.join("\n") !== v.preload.join("\n")) change.preload = preload;
  if (f.batch !== v.batch) change.batch = f.batch;
  if (f.queue !== v.queue) change.queue = f.queue;
  if (f.diskCacheGb !== poolFormFor(v).diskCacheGb) change.disk_cache = f.diskCacheGb > 0 ? `${f.diskCacheGb}GB` : "off";
  return change;
}

// ------------------------------------------------------------------ memory bars

export interface MemoryRow {
  name: string;
  pinned: boolean;
  bytes: number;
  /** The model's share of the budget, 0–100 (a model larger than the budget fills its bar). */
  percent: number;
}

/**
 * The loaded models as bars against the pool's budget (the Dashboard): each model's
 * memory — the larger of the estimate and the measurement, as the pool counts it — and
 * the total. Largest first.
 */
export function memoryRows(view: Pick<PoolView, "loaded" | "budget_bytes">): { rows: MemoryRow[]; used: number } {
  const budget = Math.max(1, view.budget_bytes);
  const rows = view.loaded
    .map((m) => {
      const bytes = Math.max(m.bytes_estimated, m.bytes_measured);
      return { name: m.name, pinned: m.pinned, bytes, percent: Math.min(100, (bytes / budget) * 100) };
    })
    .sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name));
  return { rows, used: rows.reduce((n, r) => n + r.bytes, 0) };
}
