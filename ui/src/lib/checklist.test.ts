import { describe, expect, it } from "vitest";
import { checklist, checklistOpen } from "./checklist";

const fresh = { providers: 0, models: 0, rules: 0, clientRequests: 0, lastBackupAt: null };

describe("checklist", () => {
  it("has every step open on a fresh install", () => {
    const steps = checklist(fresh);
    expect(steps.map((s) => [s.id, s.done])).toEqual([
      ["backend", false],
      ["rule", false],
      ["client", false],
      ["backup", false],
    ]);
    expect(checklistOpen(steps)).toBe(true);
    expect(steps[0]!.page).toBe("providers");
  });

  it("ticks each step from what the core reports and closes when all are done", () => {
    const local = checklist({ ...fresh, models: 1 });
    expect(local[0]!.done).toBe(true);
    expect(local[0]!.page).toBe("models");
    const all = checklist({ providers: 1, models: 0, rules: 2, clientRequests: 5, lastBackupAt: 1 });
    expect(all.every((s) => s.done)).toBe(true);
    expect(checklistOpen(all)).toBe(false);
  });
});
