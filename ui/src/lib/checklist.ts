// The Dashboard's getting-started checklist: what a new install still lacks before it
// answers a first request and survives the loss of this Mac. Each step is decided from
// what the core reports; the list goes away once every step is done.
import type { MessageKey } from "./i18n";
import type { PageId } from "./pages";

export interface InstallState {
  providers: number;
  models: number;
  rules: number;
  /** Requests any client token has made through the gateway. */
  clientRequests: number;
  /** When the last backup was exported (ms), or null. */
  lastBackupAt: number | null;
}

export interface Step {
  id: string;
  /** Looked up when shown, so the list follows a change of language. */
  label: MessageKey;
  done: boolean;
  page: PageId;
}

export function checklist(s: InstallState): Step[] {
  return [
    {
      id: "backend",
      label: "checklist.backend",
      done: s.providers > 0 || s.models > 0,
      page: s.providers > 0 || s.models === 0 ? "providers" : "models",
    },
    {
      id: "rule",
      label: "checklist.rule",
      done: s.rules > 0,
      page: "routing",
    },
    {
      id: "client",
      label: "checklist.client",
      done: s.clientRequests > 0,
      page: "clients",
    },
    {
      id: "backup",
      label: "checklist.backup",
      done: s.lastBackupAt !== null,
      page: "security",
    },
  ];
}

/** Whether the checklist is still shown. */
export function checklistOpen(steps: Step[]): boolean {
  return steps.some((s) => !s.done);
}

/** The event a page sends to ask the window to show another page. */
export const NAVIGATE_EVENT = "switchyard:navigate";

export function navigate(page: PageId): void {
  window.dispatchEvent(new CustomEvent<PageId>(NAVIGATE_EVENT, { detail: page }));
}
