// The Dashboard's getting-started checklist: what a new install still lacks before it
// answers a first request and survives the loss of this Mac. Each step is decided from
// what the core reports; the list goes away once every step is done.
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
  label: string;
  done: boolean;
  page: PageId;
}

export function checklist(s: InstallState): Step[] {
  return [
    {
      id: "backend",
      label: "Add a cloud provider, or import or pull a local model",
      done: s.providers > 0 || s.models > 0,
      page: s.providers > 0 || s.models === 0 ? "providers" : "models",
    },
    {
      id: "rule",
      label: "Make a routing rule for the model names your tools send",
      done: s.rules > 0,
      page: "routing",
    },
    {
      id: "client",
      label: "Give a tool a client token and its settings (its first request ticks this)",
      done: s.clientRequests > 0,
      page: "clients",
    },
    {
      id: "backup",
      label: "Export a backup of your keys and settings",
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
