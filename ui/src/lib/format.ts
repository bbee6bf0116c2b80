// Display helpers shared by the pages. Pure functions (but for the language): tested in
// format.test.ts. Units and the CLI's duration syntax are the same in every language.
import { t } from "./i18n";

/** 2^30 bytes: the core's "GB" (settings/pool.rs), the unit RAM is sold in. */
export const GB = 1024 ** 3;

/** Bytes as the UI shows them: `12.0 GB`, `512 MB`, `3 KB`, `10 B`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return "–";
  if (bytes >= GB) return `${(bytes / GB).toFixed(1)} GB`;
  if (bytes >= 1024 ** 2) return `${Math.round(bytes / 1024 ** 2)} MB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${bytes} B`;
}

/** A parameter count: `1.7B`, `135M`, `900`; `–` when unknown. */
export function formatParams(n: number | null): string {
  if (n === null) return "–";
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${Math.round(n / 1e6)}M`;
  return String(n);
}

/** Parameters with a mixture-of-experts model's active ones, as model names say it: `30.5B-A3.3B`. */
export function formatModelParams(total: number | null, active: number | null): string {
  if (total === null || active === null) return formatParams(total);
  return `${formatParams(total)}-A${formatParams(active)}`;
}

/** How long ago `atMs` was, relative to `nowMs`: `just now`, `5 min ago`, `3 h ago`, `2 d ago`. */
export function timeAgo(atMs: number, nowMs: number): string {
  const s = Math.max(0, Math.round((nowMs - atMs) / 1000));
  if (s < 45) return t("time.justNow");
  const m = Math.round(s / 60);
  if (m < 60) return t("time.minutesAgo", { n: m });
  const h = Math.round(m / 60);
  if (h < 48) return t("time.hoursAgo", { n: h });
  return t("time.daysAgo", { n: Math.round(h / 24) });
}

/** `900` → `15m`, like the CLI (the largest unit that divides evenly). */
export function formatDuration(secs: number): string {
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]] as const) {
    if (secs >= size && secs % size === 0) return `${secs / size}${unit}`;
  }
  return `${secs}s`;
}
