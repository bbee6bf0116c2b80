// Helpers of the Models page. Pure functions: tested in models.test.ts.
import { formatBytes } from "./format";
import { t } from "./i18n";
import type { PullProgress } from "./bindings/PullProgress";
import type { PullSpec } from "./bindings/PullSpec";

/** A pull form as typed: repo, optional revision, comma-separated include globs. */
export interface PullForm {
  repo: string;
  revision: string;
  include: string;
}

/** What is wrong with the repo id, in the terms the core checks (models/pull.rs). */
export function repoProblem(repo: string): string | null {
  const r = repo.trim();
  if (!r) return null;
  const part = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?$/;
  const parts = r.split("/");
  if (parts.length !== 2 || !parts.every((p) => part.test(p) && !p.includes("..") && !p.includes("--"))) {
    return t("models.repoProblem");
  }
  return null;
}

/** The command's argument for a form. */
export function pullSpec(f: PullForm): PullSpec {
  return {
    repo: f.repo.trim(),
    revision: f.revision.trim() || null,
    include: f.include
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0),
  };
}

/** `2/4 model.safetensors · 45 MB of 270 MB · 12.3 MB/s · 18s left` */
export function progressLine(p: PullProgress): string {
  const parts = [
    `${p.file_index}/${p.files} ${p.file}`,
    t("models.progressBytes", { done: formatBytes(p.bytes_done), total: formatBytes(p.bytes_total) }),
  ];
  if (p.rate_bps > 0) parts.push(`${(p.rate_bps / 1e6).toFixed(1)} MB/s`);
  if (p.eta_secs !== null) parts.push(t("models.progressLeft", { secs: p.eta_secs }));
  return parts.join(" · ");
}

/** Percent done, 0–100. */
export function progressPercent(p: PullProgress): number {
  return p.bytes_total > 0 ? Math.min(100, Math.floor((p.bytes_done / p.bytes_total) * 100)) : 0;
}

/**
 * Of the paths dropped on the window, those the import can take: .gguf files and
 * folders (a folder is checked by the core; a file of another kind is left out and
 * named so the page can say why).
 */
export function droppedModels(paths: string[]): { importable: string[]; skipped: string[] } {
  const importable: string[] = [];
  const skipped: string[] = [];
  for (const p of paths) {
    const base = p.replace(/[/\\]+$/, "").split(/[/\\]/).pop() ?? p;
    const ext = base.includes(".") ? base.split(".").pop()!.toLowerCase() : "";
    if (ext === "gguf" || ext === "") importable.push(p);
    else skipped.push(base);
  }
  return { importable, skipped };
}
