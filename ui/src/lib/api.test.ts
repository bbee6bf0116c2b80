import { describe, expect, it } from "vitest";
import { toCoreError } from "./api";

describe("toCoreError", () => {
  it("keeps the core's code and message", () => {
    expect(toCoreError({ code: "rule_not_found", message: "no rule 7" })).toEqual({
      code: "rule_not_found",
      message: "no rule 7",
    });
  });
  it("wraps strings and exceptions as internal errors", () => {
    expect(toCoreError("boom")).toEqual({ code: "internal", message: "boom" });
    expect(toCoreError(new Error("bad"))).toEqual({ code: "internal", message: "bad" });
    expect(toCoreError(undefined).code).toBe("internal");
  });
});
