// Typed wrappers around the Rust commands (src-tauri/desktop/commands.rs), one per
// command, named like the CLI. The payload types are generated from the Rust types
// (./bindings, by ts-rs; a Rust test fails when they drift). Every command rejects
// with the core's serialized error, {code, message}, which `call` passes on as a
// CoreError.
import { Channel, invoke } from "@tauri-apps/api/core";
import type { AppInfo } from "./bindings/AppInfo";
import type { CoreError } from "./bindings/CoreError";
import type { DataRotation } from "./bindings/DataRotation";
import type { Exported } from "./bindings/Exported";
import type { ImportReport } from "./bindings/ImportReport";
import type { ErrorCode } from "./bindings/ErrorCode";
import type { GatewayStatus } from "./bindings/GatewayStatus";
import type { ModelEntry } from "./bindings/ModelEntry";
import type { PoolEvent } from "./bindings/PoolEvent";
import type { PoolSet } from "./bindings/PoolSet";
import type { PoolView } from "./bindings/PoolView";
import type { Provider } from "./bindings/Provider";
import type { PullOutcome } from "./bindings/PullOutcome";
import type { PullProgress } from "./bindings/PullProgress";
import type { PullSpec } from "./bindings/PullSpec";
import type { ProviderUpsert } from "./bindings/ProviderUpsert";
import type { RootRotation } from "./bindings/RootRotation";
import type { Rule } from "./bindings/Rule";
import type { RuleInput } from "./bindings/RuleInput";
import type { RuleTest } from "./bindings/RuleTest";
import type { RuleUpdate } from "./bindings/RuleUpdate";
import type { Saved } from "./bindings/Saved";
import type { TestOutcome } from "./bindings/TestOutcome";
import type { UpsertOutcome } from "./bindings/UpsertOutcome";
import type { VaultStatus } from "./bindings/VaultStatus";
import type { AuthSetting } from "./bindings/AuthSetting";
import type { ClientInfo } from "./bindings/ClientInfo";
import type { Issued } from "./bindings/Issued";
import type { Revoked } from "./bindings/Revoked";
import type { TokenIssue } from "./bindings/TokenIssue";
import type { RequestRow } from "./bindings/RequestRow";
import type { Minute } from "./bindings/Minute";

export type {
  AppInfo,
  AuthSetting,
  ClientInfo,
  Issued,
  Minute,
  RequestRow,
  Revoked,
  TokenIssue,
  CoreError,
  ErrorCode,
  Exported,
  GatewayStatus,
  ImportReport,
  ModelEntry,
  PoolEvent,
  PoolView,
  Provider,
  PullOutcome,
  PullProgress,
  PullSpec,
  Rule,
  RuleTest,
  VaultStatus,
};

/** The event the core sends when the gateway's status changes (payload: GatewayStatus). */
export const GATEWAY_STATUS_EVENT = "gateway-status";

/** The event the core sends for every load, unload and eviction of the pool (payload: PoolEvent). */
export const POOL_EVENT = "pool-event";

/** The event the core sends when a gateway request finishes (payload: RequestRow). */
export const REQUEST_EVENT = "request-event";

/**
 * Normalize whatever a rejected invoke gives us into a CoreError. Tauri itself
 * rejects with a plain string (e.g. arguments that do not deserialize); that is
 * shown as `internal`, because the UI should never send such arguments.
 */
export function toCoreError(e: unknown): CoreError {
  if (e && typeof e === "object" && "code" in e && "message" in e) {
    const { code, message } = e as { code: unknown; message: unknown };
    return { code: String(code) as ErrorCode, message: String(message) };
  }
  if (typeof e === "string") return { code: "internal", message: e };
  return { code: "internal", message: e instanceof Error ? e.message : String(e) };
}

/** True for a CoreError with this code (for rejections caught as `unknown`). */
export function isCode(e: unknown, code: ErrorCode): boolean {
  return toCoreError(e).code === code;
}

/** The UI preferences the core keeps (prefs_get / prefs_set accept only these). */
export type PrefKey = "lastPage" | "locale";

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw toCoreError(e);
  }
}

export const api = {
  appInfo: () => call<AppInfo>("app_info"),
  gatewayStatus: () => call<GatewayStatus>("gateway_status"),
  gatewayStart: () => call<GatewayStatus>("gateway_start"),
  gatewayStop: () => call<GatewayStatus>("gateway_stop"),
  autostartGet: () => call<boolean>("autostart_get"),
  autostartSet: (on: boolean) => call<boolean>("autostart_set", { on }),
  uiLocale: (locale: string) => call<null>("ui_locale", { locale }),

  prefsGet: (key: PrefKey) => call<string | null>("prefs_get", { key }),
  prefsSet: (key: PrefKey, value: string) => call<null>("prefs_set", { key, value }),

  providerList: () => call<Provider[]>("provider_list"),
  providerUpsert: (input: ProviderUpsert) => call<UpsertOutcome>("provider_upsert", { input }),
  providerRemove: (name: string) => call<Provider>("provider_remove", { name }),
  providerTest: (name: string) => call<TestOutcome>("provider_test", { name }),

  ruleList: () => call<Rule[]>("rule_list"),
  ruleAdd: (rule: RuleInput) => call<Saved>("rule_add", { rule }),
  ruleUpdate: (id: number, patch: RuleUpdate) => call<Saved>("rule_update", { id, patch }),
  ruleRemove: (id: number) => call<Rule>("rule_remove", { id }),
  ruleMove: (id: number, to: number) => call<Rule[]>("rule_move", { id, to }),
  ruleReorder: (ids: number[]) => call<Rule[]>("rule_reorder", { ids }),
  ruleSetEnabled: (id: number, enabled: boolean) => call<Rule>("rule_set_enabled", { id, enabled }),
  ruleTest: (model: string) => call<RuleTest>("rule_test", { model }),

  poolShow: () => call<PoolView>("pool_show"),
  poolSet: (change: PoolSet) => call<PoolView>("pool_set", { change }),

  keysStatus: () => call<VaultStatus>("keys_status"),
  keysRotateData: () => call<DataRotation>("keys_rotate_data"),
  keysRotateRoot: (confirmedFingerprint: string | null) =>
    call<RootRotation>("keys_rotate_root", { confirmed_fingerprint: confirmedFingerprint }),

  backupExport: (path: string, passphrase: string) => call<Exported>("backup_export", { path, passphrase }),
  backupPreview: (path: string, passphrase: string) => call<ImportReport>("backup_preview", { path, passphrase }),
  backupImport: (path: string, passphrase: string) => call<ImportReport>("backup_import", { path, passphrase }),

  tokenList: () => call<ClientInfo[]>("token_list"),
  tokenIssue: (input: TokenIssue) => call<Issued>("token_issue", { input }),
  tokenRevoke: (id: number) => call<Revoked>("token_revoke", { id }),
  /** Read the loopback setting (`on` omitted) or change it. */
  tokenAuth: (on?: boolean) => call<AuthSetting>("token_auth", { on: on ?? null }),
  tokenFirstRun: () => call<Issued | null>("token_first_run"),
  tokenFirstRunDismiss: () => call<null>("token_first_run_dismiss"),

  logsTail: (limit: number) => call<RequestRow[]>("logs_tail", { limit }),
  logsMinutes: () => call<Minute[]>("logs_minutes"),

  modelsList: () => call<ModelEntry[]>("models_list"),
  modelsImport: (path: string, name: string | null) => call<ModelEntry>("models_import", { path, name }),
  modelsRemove: (id: string) => call<ModelEntry>("models_remove", { id }),
  modelsLoad: (id: string) => call<PoolView>("models_load", { id }),
  modelsUnload: (id: string) => call<PoolView>("models_unload", { id }),
  modelsPull: (spec: PullSpec, onProgress: (p: PullProgress) => void) => {
    const progress = new Channel<PullProgress>();
    progress.onmessage = onProgress;
    return call<PullOutcome>("models_pull", { spec, progress });
  },
  modelsPullCancel: (repo: string) => call<boolean>("models_pull_cancel", { repo }),
  modelsPin: (id: string, pinned: boolean) => call<PoolView>("models_pin", { id, pinned }),
};
