import { describe, expect, it } from "vitest";
import { GB, formatBytes, formatDuration, formatModelParams, formatParams, timeAgo } from "./format";

describe("formatBytes", () => {
  it.each([
    [12 * GB, "12.0 GB"],
    [1.5 * GB, "1.5 GB"],
    [512 * 1024 ** 2, "512 MB"],
    [3 * 1024, "3 KB"],
    [10, "10 B"],
    [-1, "–"],
    [Number.NaN, "–"],
  ])("%s bytes → %s", (n, want) => expect(formatBytes(n)).toBe(want));
});

describe("formatParams", () => {
  it("uses B and M like the CLI", () => {
    expect(formatParams(1_710_000_000)).toBe("1.7B");
    expect(formatParams(134_515_008)).toBe("135M");
    expect(formatParams(900)).toBe("900");
    expect(formatParams(null)).toBe("–");
  });
  it("shows a mixture of experts' active parameters after the total", () => {
    expect(formatModelParams(30_532_000_000, 3_340_000_000)).toBe("30.5B-A3.3B");
    expect(formatModelParams(1_710_000_000, null)).toBe("1.7B");
    expect(formatModelParams(null, 5)).toBe("–");
  });
});

describe("timeAgo", () => {
  const now = 1_000_000_000;
  it.each([
    [now - 10_000, "just now"],
    [now - 5 * 60_000, "5 min ago"],
    [now - 3 * 3_600_000, "3 h ago"],
    [now - 3 * 86_400_000, "3 d ago"],
    [now + 5_000, "just now"],
  ])("%s → %s", (at, want) => expect(timeAgo(at, now)).toBe(want));
});

describe("formatDuration", () => {
  it("picks the largest unit that divides evenly, as the CLI does", () => {
    expect(formatDuration(900)).toBe("15m");
    expect(formatDuration(7200)).toBe("2h");
    expect(formatDuration(86400)).toBe("1d");
    expect(formatDuration(90)).toBe("90s");
  });
});
