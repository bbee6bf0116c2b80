import { describe, expect, it } from "vitest";
import { DEFAULT_PAGE, PAGES, pageLabel, parsePage } from "./pages";

describe("parsePage", () => {
  it("accepts every known page id", () => {
    for (const p of PAGES) expect(parsePage(p.id)).toBe(p.id);
  });
  it("falls back to the dashboard for unknown or malformed stored values", () => {
    for (const v of ["", "Dashboard", "settings", null, undefined, 3, {}, ["models"]]) {
      expect(parsePage(v)).toBe(DEFAULT_PAGE);
    }
  });
  it("has the seven pages of the main window in order", () => {
    expect(PAGES.map((p) => p.label)).toEqual([
      "Dashboard", "Models", "Providers", "Routing", "Pool", "Clients", "Security",
    ]);
    expect(pageLabel("pool")).toBe("Pool");
  });
});
