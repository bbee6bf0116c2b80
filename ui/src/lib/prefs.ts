// UI preferences (last page) in tauri-plugin-store's `ui-prefs.json`, kept in the
// core's data dir next to the database (so `--data-dir` isolates them too). Only view
// state lives here: settings are in the core's database, never in this store. The
// Rust side stores the window size in the same file.
import { LazyStore } from "@tauri-apps/plugin-store";
import { parsePage, type PageId, DEFAULT_PAGE } from "./pages";

let store: LazyStore | null = null;

export function prefsPath(dataDir: string): string {
  return dataDir.replace(/[\\/]+$/, "") + "/ui-prefs.json";
}

export function initPrefs(dataDir: string): void {
  store = new LazyStore(prefsPath(dataDir), { defaults: {}, autoSave: 200 });
}

export async function loadLastPage(): Promise<PageId> {
  if (!store) return DEFAULT_PAGE;
  try {
    return parsePage(await store.get<string>("lastPage"));
  } catch {
    return DEFAULT_PAGE; // a missing or unreadable prefs file is not worth an error
  }
}

export async function saveLastPage(page: PageId): Promise<void> {
  if (!store) return;
  try {
    await store.set("lastPage", page);
  } catch (e) {
    console.warn("could not save the last page", e);
  }
}
