import { describe, expect, it } from "vitest";
import type { Rule } from "./bindings/Rule";
import {
  emptyProviderForm,
  emptyRuleForm,
  hasProblems,
  isLoopbackHost,
  providerFormFor,
  providerProblems,
  providerUpsertFrom,
  ruleInputFrom,
  ruleProblems,
  ruleUpdateFrom,
  type ProviderForm,
} from "./forms";

const form = (over: Partial<ProviderForm>): ProviderForm => ({ ...emptyProviderForm(), name: "openai", ...over });

describe("providerProblems", () => {
  it("accepts the usual providers", () => {
    expect(providerProblems(form({}))).toEqual({});
    expect(providerProblems(form({ kind: "openai-compatible", baseUrl: "https://openrouter.ai/api/v1" }))).toEqual({});
    expect(providerProblems(form({ kind: "openai-compatible", baseUrl: "http://127.0.0.1:11434" }))).toEqual({});
    expect(providerProblems(form({ kind: "openai-compatible", baseUrl: "http://localhost:8080" }))).toEqual({});
    expect(providerProblems(form({ apiKey: "sk-abc_DEF.123" }))).toEqual({});
  });
  it.each([
    ["name", form({ name: "" })],
    ["name", form({ name: "-x" })],
    ["name", form({ name: "a b" })],
    ["name", form({ name: "LOCAL" })],
    ["name", form({ name: "a".repeat(65) })],
    ["baseUrl", form({ kind: "openai-compatible", baseUrl: "" })],
    ["baseUrl", form({ baseUrl: "api.openai.com" })],
    ["baseUrl", form({ baseUrl: "ftp://x.example" })],
    ["baseUrl", form({ baseUrl: "http://192.168.1.5:11434" })],
    ["baseUrl", form({ baseUrl: "http://localhost.evil.com" })],
    ["baseUrl", form({ baseUrl: "https://user:pw@x.example" })],
    ["baseUrl", form({ baseUrl: "https://x.example/?key=1" })],
    ["apiKey", form({ apiKey: "sk abc" })],
    ["apiKey", form({ apiKey: "ключ" })],
    ["apiKey", form({ apiKey: "sk-x", clearKey: true })],
  ])("flags %s in %j", (field, f) => {
    const p = providerProblems(f);
    expect(p[field]).toMatch(/./);
    expect(hasProblems(p)).toBe(true);
  });
  it("knows which hosts are this machine", () => {
    for (const h of ["localhost", "api.localhost", "127.0.0.1", "127.8.9.1", "[::1]"]) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ["example.com", "localhost.evil.com", "10.0.0.1", "128.0.0.1"]) expect(isLoopbackHost(h)).toBe(false);
  });
});

describe("providerUpsertFrom", () => {
  it("sends null for an empty key (keep) and for a blank base URL (the default)", () => {
    expect(providerUpsertFrom(form({ name: " groq ", baseUrl: "  " }))).toEqual({
      name: "groq",
      kind: "openai",
      base_url: null,
      api_key: null,
      clear_key: false,
    });
    expect(providerUpsertFrom(form({ apiKey: "sk-1", baseUrl: "https://x.example" }))).toMatchObject({
      api_key: "sk-1",
      base_url: "https://x.example",
    });
  });
  it("edits start with an empty key field and the default base URL left blank", () => {
    const f = providerFormFor({
      id: 1,
      name: "openai",
      kind: "openai",
      base_url: "https://api.openai.com",
      has_key: true,
      key_hint: "1234",
      last_test: null,
      health: null,
      created_at: 0,
      updated_at: 0,
    });
    expect(f).toEqual({ name: "openai", kind: "openai", baseUrl: "", apiKey: "", clearKey: false });
  });
});

const rule: Rule = {
  id: 7,
  position: 0,
  pattern: "gpt-",
  match: "prefix",
  target: "openai",
  model: null,
  fallback: "local",
  enabled: true,
  created_at: 0,
  updated_at: 0,
};

describe("rules", () => {
  const targets = ["local", "openai"];
  it("checks pattern, target and fallback", () => {
    expect(ruleProblems({ ...emptyRuleForm(), pattern: "llama" }, targets)).toEqual({});
    expect(ruleProblems(emptyRuleForm(), targets).pattern).toMatch(/empty/);
    expect(ruleProblems({ ...emptyRuleForm(), pattern: "x".repeat(513) }, targets).pattern).toMatch(/512/);
    expect(ruleProblems({ ...emptyRuleForm(), pattern: "x", target: "gone" }, targets).target).toMatch(/./);
    expect(ruleProblems({ ...emptyRuleForm(), pattern: "x", fallback: "local" }, targets).fallback).toMatch(/same/);
  });
  it("builds the add payload with nulls for empty optional fields", () => {
    expect(ruleInputFrom({ ...emptyRuleForm(), pattern: "a", model: "  " })).toEqual({
      pattern: "a",
      match: "exact",
      target: "local",
      model: null,
      fallback: null,
      enabled: true,
      position: null,
    });
  });
  it("sends only the changed fields on update, null to clear", () => {
    const same = { pattern: "gpt-", match: "prefix", target: "openai", model: "", fallback: "local", enabled: true } as const;
    expect(ruleUpdateFrom(rule, { ...same })).toEqual({});
    expect(ruleUpdateFrom(rule, { ...same, fallback: "", model: "gpt-4o" })).toEqual({ fallback: null, model: "gpt-4o" });
    expect(ruleUpdateFrom(rule, { ...same, match: "regex", pattern: "gpt-.*" })).toEqual({ match: "regex", pattern: "gpt-.*" });
  });
});
