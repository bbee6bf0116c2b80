// UI preferences (the last page), kept by the core in `ui-prefs.json` in its data dir
// (so `--data-dir` isolates them too). The webview reaches them only through the
// `prefs_get` / `prefs_set` commands, which accept only the UI's own keys: it has no
// access to the store plugin, so no page script can read or write any other file.
// Only view state lives here: settings are in the core's database, never in this file.
import { api } from "./api";
import { parsePage, type PageId, DEFAULT_PAGE } from "./pages";

export async function loadLastPage(): Promise<PageId> {
  try {
    return parsePage(await api.prefsGet("lastPage"));
  } catch {
    return DEFAULT_PAGE; // a missing or unreadable prefs file is not worth an error
  }
}

export async function saveLastPage(page: PageId): Promise<void> {
  try {
    await api.prefsSet("lastPage", page);
  } catch (e) {
    console.warn("could not save the last page", e);
  }
}
