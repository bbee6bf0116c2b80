// UI preferences (the last page, the language), kept by the core in `ui-prefs.json` in
// its data dir (so `--data-dir` isolates them too). The webview reaches them only
// through the `prefs_get` / `prefs_set` commands, which accept only the UI's own keys:
// it has no access to the store plugin, so no page script can read or write any other
// file.
// Only view state lives here: settings are in the core's database, never in this file.
import { api } from "./api";
import { parsePage, type PageId, DEFAULT_PAGE } from "./pages";
import { parseLocale, type Locale } from "./i18n";

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

/** The language chosen in the window, or null when none was (the system's applies). */
export async function loadLocale(): Promise<Locale | null> {
  try {
    return parseLocale(await api.prefsGet("locale"));
  } catch {
    return null; // as for the last page: the system's language will do
  }
}

export async function saveLocale(locale: Locale): Promise<void> {
  try {
    await api.prefsSet("locale", locale);
  } catch (e) {
    console.warn("could not save the language", e);
  }
}
