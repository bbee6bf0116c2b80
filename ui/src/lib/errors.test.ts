import { describe, expect, it } from "vitest";
import { forWindow } from "./errors";

describe("forWindow", () => {
  it.each([
    [
      "provider openai's key was entered for https://api.openai.com and is not sent to https://x.test: enter the key again (--api-key-stdin) or remove it (--no-key)",
      "enter the key again in the API key field, or clear the stored key",
    ],
    ["no API key is stored; add one with `switchyard provider add fake --kind openai --api-key-stdin`", "enter one in the provider's API key field"],
    ["https://x.test rejected the API key (401); check the key and enter it again with --api-key-stdin", "enter it again in the provider's API key field"],
    ["the upstream model name must not be empty (use --no-model to clear it)", "(leave the model field empty to clear it)"],
    ["ttl eviction needs an idle TTL: add --ttl (e.g. --ttl 15m)", "set an idle unload time (e.g. 15m)"],
    ["a model named 'x' already exists; pick another with --name", "pick another in the Name field"],
    ["unpin or unload a model, raise the limit (`switchyard pool set --limit`), or …", "raise the limit (on the Pool page)"],
    ["a openai-compatible provider needs --base-url (e.g. https://openrouter.ai/api)", "needs a base URL"],
  ])("says %j in the window's terms", (core, expected) => {
    const said = forWindow(core);
    expect(said).toContain(expected);
    expect(said).not.toMatch(/--(api-key-stdin|no-key|no-model|ttl|name|limit|base-url)\b/);
  });

  it("leaves other messages alone", () => {
    expect(forWindow("the pattern must not be empty")).toBe("the pattern must not be empty");
  });
});
