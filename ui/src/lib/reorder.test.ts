import { describe, expect, it } from "vitest";
import { LatestOnlyQueue, idsOf, moveItem, sameOrder } from "./reorder";

describe("moveItem", () => {
  const l = ["a", "b", "c", "d"];
  it.each([
    [0, 2, ["b", "c", "a", "d"]],
    [3, 0, ["d", "a", "b", "c"]],
    [1, 1, ["a", "b", "c", "d"]],
    [1, 99, ["a", "c", "d", "b"]],
    [2, -5, ["c", "a", "b", "d"]],
    [9, 0, ["a", "b", "c", "d"]],
  ])("moves %i to %i", (from, to, want) => {
    expect(moveItem(l, from, to)).toEqual(want);
    expect(l).toEqual(["a", "b", "c", "d"]);
  });
  it("always yields a permutation (what rule_reorder accepts)", () => {
    const items = [5, 3, 9, 1, 7].map((id) => ({ id }));
    for (let from = 0; from < items.length; from++) {
      for (let to = 0; to < items.length; to++) {
        expect(idsOf(moveItem(items, from, to)).sort()).toEqual([1, 3, 5, 7, 9]);
      }
    }
  });
});

describe("sameOrder", () => {
  it("compares element by element", () => {
    expect(sameOrder([1, 2], [1, 2])).toBe(true);
    expect(sameOrder([1, 2], [2, 1])).toBe(false);
    expect(sameOrder([1], [1, 2])).toBe(false);
  });
});

describe("LatestOnlyQueue", () => {
  it("sends one at a time, in order, skipping orders superseded while one was in flight", async () => {
    const sent: number[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const release: Array<() => void> = [];
    const q = new LatestOnlyQueue<number>(async (v) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      sent.push(v);
      await new Promise<void>((r) => release.push(r));
      inFlight--;
    });
    q.push(1);
    q.push(2);
    q.push(3);
    await Promise.resolve();
    expect(sent).toEqual([1]);
    release.shift()!();
    await new Promise((r) => setTimeout(r, 0));
    expect(sent).toEqual([1, 3]);
    release.shift()!();
    await q.settled();
    expect(sent).toEqual([1, 3]);
    expect(maxInFlight).toBe(1);
  });
  it("keeps going after a failed send", async () => {
    const sent: number[] = [];
    const q = new LatestOnlyQueue<number>(async (v) => {
      sent.push(v);
      if (v === 1) throw new Error("boom");
    });
    q.push(1);
    await q.settled();
    q.push(2);
    await q.settled();
    expect(sent).toEqual([1, 2]);
  });
});
