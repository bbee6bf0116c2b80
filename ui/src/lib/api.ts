// Typed wrappers around the Rust commands (src-tauri/desktop/commands.rs). Every
// command rejects with the core's serialized error: {code, message}.
import { invoke } from "@tauri-apps/api/core";

export interface CoreError {
  code: string;
  message: string;
}

export interface AppInfo {
  version: string;
  data_dir: string;
  schema_version: number;
  schema_latest: string;
}

/** Normalize whatever a rejected invoke gives us into a CoreError. */
export function toCoreError(e: unknown): CoreError {
  if (e && typeof e === "object" && "code" in e && "message" in e) {
    const { code, message } = e as { code: unknown; message: unknown };
    return { code: String(code), message: String(message) };
  }
  if (typeof e === "string") return { code: "internal", message: e };
  return { code: "internal", message: e instanceof Error ? e.message : String(e) };
}

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw toCoreError(e);
  }
}

export const api = {
  appInfo: () => call<AppInfo>("app_info"),
};
