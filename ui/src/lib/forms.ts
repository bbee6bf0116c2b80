// The provider and rule forms: what the user typed → the command payload, and what is
// wrong with it before it is sent. The checks mirror the core's (settings/providers.rs,
// settings/rules.rs) so most mistakes are caught while typing; the core validates again
// and its coded error is shown when it disagrees.
import type { MatchType } from "./bindings/MatchType";
import type { Provider } from "./bindings/Provider";
import type { ProviderKind } from "./bindings/ProviderKind";
import type { ProviderUpsert } from "./bindings/ProviderUpsert";
import type { Rule } from "./bindings/Rule";
import type { RuleInput } from "./bindings/RuleInput";
import type { RuleUpdate } from "./bindings/RuleUpdate";

/** Field name → message; empty when the form can be sent. */
export type Problems = Partial<Record<string, string>>;

export const KIND_LABELS: Record<ProviderKind, string> = {
  openai: "OpenAI",
  anthropic: "Anthropic",
  "openai-compatible": "OpenAI-compatible",
};

export const DEFAULT_BASE_URLS: Record<ProviderKind, string | null> = {
  openai: "https://api.openai.com",
  anthropic: "https://api.anthropic.com",
  "openai-compatible": null,
};

export interface ProviderForm {
  name: string;
  kind: ProviderKind;
  baseUrl: string;
  /** Empty = keep the stored key (or none for a new provider). */
  apiKey: string;
  clearKey: boolean;
}

export function emptyProviderForm(): ProviderForm {
  return { name: "", kind: "openai", baseUrl: "", apiKey: "", clearKey: false };
}

/** The form for editing `p`: the key field starts empty (= keep), never with the key. */
export function providerFormFor(p: Provider): ProviderForm {
  const isDefault = DEFAULT_BASE_URLS[p.kind] === p.base_url;
  return { name: p.name, kind: p.kind, baseUrl: isDefault ? "" : p.base_url, apiKey: "", clearKey: false };
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Hosts that never leave the machine, where plain http is accepted. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/\.$/, "");
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (h === "[::1]" || h === "::1") return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

export function providerProblems(f: ProviderForm): Problems {
  const p: Problems = {};
  const name = f.name.trim();
  if (!NAME_RE.test(name)) {
    p.name = "1–64 letters, digits, '.', '_' or '-', starting with a letter or digit.";
  } else if (name.toLowerCase() === "local") {
    p.name = "`local` is reserved for the local engine in routing rules.";
  }
  const raw = f.baseUrl.trim();
  if (!raw) {
    if (f.kind === "openai-compatible") p.baseUrl = "An OpenAI-compatible provider needs a base URL.";
  } else {
    let url: URL | null = null;
    try {
      url = new URL(raw);
    } catch {
      p.baseUrl = "Not a URL (e.g. https://openrouter.ai/api).";
    }
    if (url) {
      if (url.protocol !== "https:" && url.protocol !== "http:") {
        p.baseUrl = "Use https://.";
      } else if (url.protocol === "http:" && !isLoopbackHost(url.hostname)) {
        p.baseUrl = "Plain http is only accepted for this machine (localhost, 127.0.0.1, [::1]); use https://.";
      } else if (url.username || url.password) {
        p.baseUrl = "No user name or password in the URL; the key has its own field.";
      } else if (url.search || url.hash) {
        p.baseUrl = "No query (?…) or fragment (#…).";
      }
    }
  }
  const key = f.apiKey;
  if (key && !/^[\x21-\x7e]+$/.test(key)) {
    p.apiKey = "Paste only the key: no spaces or other characters.";
  } else if (key.length > 4096) {
    p.apiKey = "That is longer than any API key.";
  }
  if (key && f.clearKey) p.apiKey = "Enter a new key or remove the stored one, not both.";
  return p;
}

export function providerUpsertFrom(f: ProviderForm): ProviderUpsert {
  return {
    name: f.name.trim(),
    kind: f.kind,
    base_url: f.baseUrl.trim() || null,
    api_key: f.apiKey === "" ? null : f.apiKey,
    clear_key: f.clearKey,
  };
}

// ------------------------------------------------------------------ rules

export const MAX_PATTERN_CHARS = 512;

export interface RuleForm {
  pattern: string;
  match: MatchType;
  target: string;
  /** Empty = forward the requested name. */
  model: string;
  /** Empty = no fallback. */
  fallback: string;
  enabled: boolean;
}

export function emptyRuleForm(): RuleForm {
  return { pattern: "", match: "exact", target: "local", model: "", fallback: "", enabled: true };
}

export function ruleFormFor(r: Rule): RuleForm {
  return {
    pattern: r.pattern,
    match: r.match,
    target: r.target,
    model: r.model ?? "",
    fallback: r.fallback ?? "",
    enabled: r.enabled,
  };
}

export function ruleProblems(f: RuleForm, targets: readonly string[]): Problems {
  const p: Problems = {};
  const chars = [...f.pattern].length;
  if (chars === 0) p.pattern = "The pattern must not be empty.";
  else if (chars > MAX_PATTERN_CHARS) p.pattern = `At most ${MAX_PATTERN_CHARS} characters (this is ${chars}).`;
  if (!targets.includes(f.target)) p.target = "Pick `local` or a provider.";
  if (f.fallback && !targets.includes(f.fallback)) p.fallback = "Pick `local`, a provider, or none.";
  if (f.fallback && f.fallback === f.target) p.fallback = "The fallback is the same as the target.";
  if ([...f.model].length > 512) p.model = "At most 512 characters.";
  return p;
}

export function ruleInputFrom(f: RuleForm, position: number | null = null): RuleInput {
  return {
    pattern: f.pattern,
    match: f.match,
    target: f.target,
    model: f.model.trim() || null,
    fallback: f.fallback || null,
    enabled: f.enabled,
    position,
  };
}

/** Only what changed, so a concurrent edit of another field (CLI, another window) survives. */
export function ruleUpdateFrom(before: Rule, f: RuleForm): RuleUpdate {
  const u: RuleUpdate = {};
  if (f.pattern !== before.pattern) u.pattern = f.pattern;
  if (f.match !== before.match) u.match = f.match;
  if (f.target !== before.target) u.target = f.target;
  const model = f.model.trim() || null;
  if (model !== before.model) u.model = model;
  const fallback = f.fallback || null;
  if (fallback !== before.fallback) u.fallback = fallback;
  if (f.enabled !== before.enabled) u.enabled = f.enabled;
  return u;
}

export function hasProblems(p: Problems): boolean {
  return Object.values(p).some((v) => v !== undefined);
}
