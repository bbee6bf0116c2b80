// Client tokens in the window: the issue form's model patterns, and the settings a
// user's tools need to reach the gateway with a token.
import { t } from "./i18n";

/** "gpt-4*, claude-*" → ["gpt-4*", "claude-*"]; blanks dropped. */
export function scopesFromText(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** One way to give a token to a tool: a label and the text to paste. */
export interface Setup {
  label: string;
  text: string;
}

/**
 * What each kind of client needs to use the gateway at `url` with `token`: OpenAI
 * SDKs and tools, Anthropic SDKs and Claude Code, and Codex (which reads its key
 * from the environment variable its provider entry names).
 */
export function clientSetups(url: string, token: string): Setup[] {
  return [
    {
      label: t("setup.openai"),
      text: `export OPENAI_BASE_URL=${url}/v1\nexport OPENAI_API_KEY=${token}`,
    },
    {
      label: t("setup.anthropic"),
      text: `export ANTHROPIC_BASE_URL=${url}\nexport ANTHROPIC_API_KEY=${token}`,
    },
    {
      label: t("setup.codex"),
      text:
        `[model_providers.switchyard]\nname = "Switchyard"\nbase_url = "${url}/v1"\n` +
        `env_key = "SWITCHYARD_TOKEN"\nwire_api = "responses"\n\n${t("setup.codexShell")}\nexport SWITCHYARD_TOKEN=${token}`,
    },
  ];
}
