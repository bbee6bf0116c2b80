// The navigation of the main window. Page ids are persisted (last page) in the
// UI preferences store, so parsing must accept only known ids.
import { t } from "./i18n";

const IDS = ["dashboard", "models", "providers", "routing", "pool", "clients", "security"] as const;

export type PageId = (typeof IDS)[number];

/** The pages in order; a label is read in the current language each time it is shown. */
export const PAGES: readonly { id: PageId; readonly label: string }[] = IDS.map((id) => ({
  id,
  get label() {
    return pageLabel(id);
  },
}));

export const DEFAULT_PAGE: PageId = "dashboard";

/** A stored or user-supplied value back to a page id; anything unknown → the default. */
export function parsePage(value: unknown): PageId {
  return PAGES.some((p) => p.id === value) ? (value as PageId) : DEFAULT_PAGE;
}

export function pageLabel(id: PageId): string {
  return t(`page.${id}`);
}
