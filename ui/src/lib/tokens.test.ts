import { describe, expect, it } from "vitest";
import { clientSetups, scopesFromText } from "./tokens";

describe("scopesFromText", () => {
  it("splits on commas and drops blanks", () => {
    expect(scopesFromText(" gpt-4*, claude-* ,, ")).toEqual(["gpt-4*", "claude-*"]);
    expect(scopesFromText("")).toEqual([]);
    expect(scopesFromText("  ")).toEqual([]);
  });
});

describe("clientSetups", () => {
  it("gives each client kind the URL it expects and the token", () => {
    const s = clientSetups("http://127.0.0.1:8399", "sy-abc");
    expect(s.map((x) => x.label)).toEqual([
      "OpenAI SDKs and tools",
      "Anthropic SDKs and Claude Code",
      "Codex (~/.codex/config.toml)",
    ]);
    expect(s[0]!.text).toContain("OPENAI_BASE_URL=http://127.0.0.1:8399/v1");
    expect(s[0]!.text).toContain("OPENAI_API_KEY=sy-abc");
    // Anthropic clients add /v1 themselves.
    expect(s[1]!.text).toContain("ANTHROPIC_BASE_URL=http://127.0.0.1:8399\n");
    expect(s[1]!.text).toContain("ANTHROPIC_API_KEY=sy-abc");
    expect(s[2]!.text).toContain('env_key = "SWITCHYARD_TOKEN"');
    expect(s[2]!.text).toContain('wire_api = "responses"');
    expect(s[2]!.text).toContain("SWITCHYARD_TOKEN=sy-abc");
  });
});
