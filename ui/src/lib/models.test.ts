import { describe, expect, it } from "vitest";
import { droppedModels, progressLine, progressPercent, pullSpec, repoProblem } from "./models";
import type { PullProgress } from "./bindings/PullProgress";

describe("repoProblem", () => {
  it.each(["mlx-community/SmolLM2-135M-Instruct-4bit", "acme/smol.v2", "a/b", ""])("accepts %j", (r) => {
    expect(repoProblem(r)).toBeNull();
  });
  it.each(["acme", "acme/", "/x", "a/b/c", "../etc", "acme/../x", "a b/c", "-a/b", "a/b-", "a--b/c"])("refuses %j", (r) => {
    expect(repoProblem(r)).toMatch(/ORG\/NAME/);
  });
});

describe("pullSpec", () => {
  it("trims, drops an empty revision and splits the globs", () => {
    expect(pullSpec({ repo: " acme/smol ", revision: " ", include: "*Q4_K_M.gguf, ,config.json" })).toEqual({
      repo: "acme/smol",
      revision: null,
      include: ["*Q4_K_M.gguf", "config.json"],
    });
    expect(pullSpec({ repo: "a/b", revision: "v1", include: "" })).toEqual({ repo: "a/b", revision: "v1", include: [] });
  });
});

describe("progress", () => {
  const p: PullProgress = {
    repo: "acme/smol",
    file: "model.safetensors",
    file_index: 2,
    files: 4,
    bytes_done: 50 * 1024 ** 2,
    bytes_total: 200 * 1024 ** 2,
    rate_bps: 12_300_000,
    eta_secs: 12,
  };
  it("says file, bytes, rate and time left", () => {
    expect(progressLine(p)).toBe("2/4 model.safetensors · 50 MB of 200 MB · 12.3 MB/s · 12s left");
    expect(progressLine({ ...p, rate_bps: 0, eta_secs: null })).toBe("2/4 model.safetensors · 50 MB of 200 MB");
    expect(progressPercent(p)).toBe(25);
    expect(progressPercent({ ...p, bytes_total: 0 })).toBe(0);
  });
});

describe("droppedModels", () => {
  it("keeps GGUF files and folders, names what it skips", () => {
    expect(droppedModels(["/m/a.Q4_K_M.gguf", "/m/SmolLM2-mlx", "/m/SmolLM2-mlx/", "/m/notes.txt", "C:\\m\\b.GGUF"])).toEqual({
      importable: ["/m/a.Q4_K_M.gguf", "/m/SmolLM2-mlx", "/m/SmolLM2-mlx/", "C:\\m\\b.GGUF"],
      skipped: ["notes.txt"],
    });
  });
});
