// The navigation of the main window. Page ids are persisted (last page) in the
// UI preferences store, so parsing must accept only known ids.

export const PAGES = [
  { id: "dashboard", label: "Dashboard" },
  { id: "models", label: "Models" },
  { id: "providers", label: "Providers" },
  { id: "routing", label: "Routing" },
  { id: "pool", label: "Pool" },
  { id: "clients", label: "Clients" },
  { id: "security", label: "Security" },
] as const;

export type PageId = (typeof PAGES)[number]["id"];

export const DEFAULT_PAGE: PageId = "dashboard";

/** A stored or user-supplied value back to a page id; anything unknown → the default. */
export function parsePage(value: unknown): PageId {
  return PAGES.some((p) => p.id === value) ? (value as PageId) : DEFAULT_PAGE;
}

export function pageLabel(id: PageId): string {
  return PAGES.find((p) => p.id === id)?.label ?? id;
}
