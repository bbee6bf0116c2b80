import { describe, expect, it } from "vitest";
import { GB } from "./format";
import type { PoolView } from "./bindings/PoolView";
import type { LoadedModel } from "./bindings/LoadedModel";
import {
  budgetBytes,
  memoryRows,
  formatLimit,
  limitProblem,
  parsePreload,
  parseTtl,
  poolChangeFrom,
  poolFormFor,
  poolProblems,
  type LimitInput,
} from "./pool";

const RAM = 16 * GB;

describe("formatLimit", () => {
  it("writes the limit as the core parses it", () => {
    expect(formatLimit({ kind: "percent", value: 75 })).toBe("75%");
    expect(formatLimit({ kind: "gb", value: 12 })).toBe("12GB");
    expect(formatLimit({ kind: "gb", value: 1.5 })).toBe("1.5GB");
  });
});

describe("limitProblem", () => {
  const pct = (value: number): LimitInput => ({ kind: "percent", value });
  const gb = (value: number): LimitInput => ({ kind: "gb", value });
  it.each([pct(1), pct(95), pct(50), gb(16), gb(0.5)])("accepts %j on a 16 GB machine", (l) => {
    expect(limitProblem(l, RAM)).toBeNull();
  });
  it.each([pct(0), pct(0.99), pct(95.01), pct(200), pct(-5), gb(0), gb(-1), gb(16.01), pct(Number.NaN)])(
    "refuses %j",
    (l) => {
      expect(limitProblem(l, RAM)).toMatch(/./);
    },
  );
});

describe("budgetBytes", () => {
  it("is a share of RAM, or the size capped at RAM (as the core computes it)", () => {
    expect(budgetBytes({ kind: "percent", value: 75 }, RAM)).toBe(12 * GB);
    expect(budgetBytes({ kind: "gb", value: 4 }, RAM)).toBe(4 * GB);
    expect(budgetBytes({ kind: "gb", value: 64 }, RAM)).toBe(RAM);
    expect(budgetBytes({ kind: "percent", value: 33.3 }, 1000)).toBe(333);
  });
});

describe("parseTtl", () => {
  it("takes one unit and stays within 1s..30d", () => {
    expect(parseTtl("30s")).toEqual({ seconds: 30 });
    expect(parseTtl("15m")).toEqual({ seconds: 900 });
    expect(parseTtl("2H")).toEqual({ seconds: 7200 });
    expect(parseTtl("30d")).toEqual({ seconds: 30 * 86400 });
    for (const bad of ["", "15", "m", "0s", "15x", "1.5h", "-1m", "31d"]) {
      expect(parseTtl(bad), bad).toHaveProperty("error");
    }
  });
});

/** A stored configuration as the core shows it. */
const baseView: PoolView = {
  limit: "75%",
  limit_kind: "percent",
  limit_value: 75,
  budget_bytes: 12 * GB,
  physical_ram_bytes: RAM,
  eviction: "lru",
  ttl_seconds: null,
  preload: ["a"],
  batch: 8,
  queue: 8,
  disk_cache_bytes: 4 * GB,
  loaded: [],
  serving: false,
  warnings: [],
};

describe("parsePreload", () => {
  it("trims, drops blanks and repeats, keeps the first order", () => {
    expect(parsePreload(" a , ,b\nc,a ")).toEqual(["a", "b", "c"]);
    expect(parsePreload("")).toEqual([]);
  });
});

describe("the pool form's engine settings", () => {
  const view: PoolView = { ...baseView, preload: [] };
  it("sends the batch, the queue and the disk cache as the core parses them", () => {
    const f = poolFormFor(view);
    expect(poolChangeFrom(view, { ...f, batch: 4, queue: 16 })).toEqual({ batch: 4, queue: 16 });
    expect(poolChangeFrom(view, { ...f, diskCacheGb: 0 })).toEqual({ disk_cache: "off" });
    expect(poolChangeFrom(view, { ...f, diskCacheGb: 0.5 })).toEqual({ disk_cache: "0.5GB" });
  });
  it("names what is out of range, the queue below the batch included", () => {
    const f = poolFormFor(view);
    expect(poolProblems(f, RAM)).toEqual({});
    expect(Object.keys(poolProblems({ ...f, batch: 0 }, RAM))).toEqual(["batch"]);
    expect(Object.keys(poolProblems({ ...f, batch: 2.5 }, RAM))).toEqual(["batch"]);
    expect(Object.keys(poolProblems({ ...f, batch: 16 }, RAM))).toEqual(["queue"]);
    expect(Object.keys(poolProblems({ ...f, queue: 2000 }, RAM))).toEqual(["queue"]);
    expect(Object.keys(poolProblems({ ...f, diskCacheGb: -1 }, RAM))).toEqual(["disk"]);
  });
});

describe("the pool form", () => {
  const view: PoolView = baseView;
  it("starts from the stored values and sends nothing when nothing changed", () => {
    const f = poolFormFor(view);
    expect(f).toEqual({ kind: "percent", value: 75, eviction: "lru", ttl: "", preload: "a", batch: 8, queue: 8, diskCacheGb: 4 });
    expect(poolChangeFrom(view, f)).toEqual({});
    expect(poolChangeFrom({ ...view, ttl_seconds: 900 }, poolFormFor({ ...view, ttl_seconds: 900 }))).toEqual({});
  });
  it("sends only what changed, the limit as text and an emptied TTL as null", () => {
    const f = poolFormFor({ ...view, ttl_seconds: 900 });
    expect(poolChangeFrom({ ...view, ttl_seconds: 900 }, { ...f, ttl: "", kind: "gb", value: 12 })).toEqual({
      limit: "12GB",
      ttl: null,
    });
    expect(poolChangeFrom(view, { ...poolFormFor(view), eviction: "ttl", ttl: "15m", preload: "a, b" })).toEqual({
      eviction: "ttl",
      ttl: "15m",
      preload: ["a", "b"],
    });
    expect(poolChangeFrom({ ...view, ttl_seconds: 900 }, { ...f, ttl: "1h" })).toEqual({ ttl: "1h" });
  });
  it("flags a bad limit, a bad TTL and TTL eviction without a TTL", () => {
    const f = poolFormFor(view);
    expect(poolProblems(f, RAM)).toEqual({});
    expect(poolProblems({ ...f, value: 0 }, RAM).limit).toMatch(/1%/);
    expect(poolProblems({ ...f, ttl: "5x" }, RAM).ttl).toMatch(/unit/);
    expect(poolProblems({ ...f, eviction: "ttl" }, RAM).ttl).toMatch(/idle time/);
  });
});

describe("memoryRows", () => {
  const model = (name: string, estimated: number, measured: number, pinned = false): LoadedModel => ({
    id: 1,
    name,
    pinned,
    bytes_estimated: estimated,
    bytes_measured: measured,
    busy: false,
    in_flight: 0,
    uses: 0,
    last_used_ms: 0,
    loaded_ms: 0,
    context: 4096,
  });

  it("counts each model at the larger of its estimate and measurement, largest first", () => {
    const { rows, used } = memoryRows({
      budget_bytes: 4 * GB,
      loaded: [model("small", GB, 0.5 * GB), model("big", 1.5 * GB, 2 * GB, true)],
    });
    expect(rows.map((r) => [r.name, r.bytes, r.percent, r.pinned])).toEqual([
      ["big", 2 * GB, 50, true],
      ["small", GB, 25, false],
    ]);
    expect(used).toBe(3 * GB);
  });

  it("fills the bar of a model larger than the budget and survives a zero budget", () => {
    expect(memoryRows({ budget_bytes: GB, loaded: [model("huge", 3 * GB, 0)] }).rows[0]?.percent).toBe(100);
    expect(memoryRows({ budget_bytes: 0, loaded: [model("m", 10, 0)] }).rows[0]?.percent).toBe(100);
    expect(memoryRows({ budget_bytes: GB, loaded: [] })).toEqual({ rows: [], used: 0 });
  });
});
