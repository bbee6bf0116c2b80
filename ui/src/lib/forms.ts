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
import { t } from "./i18n";

/** Field name → message; empty when the form can be sent. */
export type Problems = Partial<Record<string, string>>;

export const PROVIDER_KINDS: readonly ProviderKind[] = ["openai", "anthropic", "openai-compatible"];

/** A kind as the form's menu and the list name it. */
export function kindLabel(kind: ProviderKind): string {
  return kind === "openai" ? "OpenAI" : kind === "anthropic" ? "Anthropic" : t("providers.kindCompatible");
}

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
    p.name = t("providers.nameInvalid");
  } else if (name.toLowerCase() === "local") {
    p.name = t("providers.nameLocal");
  }
  const raw = f.baseUrl.trim();
  if (!raw) {
    if (f.kind === "openai-compatible") p.baseUrl = t("providers.baseUrlNeeded");
  } else {
    let url: URL | null = null;
    try {
      url = new URL(raw);
    } catch {
      p.baseUrl = t("providers.notUrl");
    }
    if (url) {
      if (url.protocol !== "https:" && url.protocol !== "http:") {
        p.baseUrl = t("providers.useHttps");
      } else if (url.protocol === "http:" && !isLoopbackHost(url.hostname)) {
        p.baseUrl = t("providers.plainHttp");
      } else if (url.username || url.password) {
        p.baseUrl = t("providers.credentials");
      } else if (url.search || url.hash) {
        p.baseUrl = t("providers.query");
      }
    }
  }
  const key = f.apiKey;
  if (key && !/^[\x21-\x7e]+$/.test(key)) {
    p.apiKey = t("providers.keyChars");
  } else if (key.length > 4096) {
    p.apiKey = t("providers.keyLong");
  }
  if (key && f.clearKey) p.apiKey = t("providers.keyBoth");
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
  if (chars === 0) p.pattern = t("routing.patternEmpty");
  else if (chars > MAX_PATTERN_CHARS) p.pattern = t("routing.patternLong", { max: MAX_PATTERN_CHARS, n: chars });
  if (!targets.includes(f.target)) p.target = t("routing.pickTarget");
  if (f.fallback && !targets.includes(f.fallback)) p.fallback = t("routing.pickFallback");
  if (f.fallback && f.fallback === f.target) p.fallback = t("routing.fallbackSame");
  if ([...f.model].length > 512) p.model = t("routing.modelLong");
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
