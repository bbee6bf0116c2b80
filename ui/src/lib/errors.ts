// The core's error messages are written for the command line as well as the window, and
// some name CLI flags (`--api-key-stdin`, `--no-key`, `switchyard pool set --limit`).
// In the window they are said in terms of the window's own controls, in the window's
// language (the rest of the message stays the core's). Pure function but for the
// language: tested in errors.test.ts.
import { t, type MessageKey } from "./i18n";

/** [what the core says, what the window says instead]. */
const WINDOW_WORDS: [RegExp, MessageKey][] = [
  [/enter the key again \(--api-key-stdin\) or remove it \(--no-key\)/g, "window.keyAgain"],
  [/the key is entered separately \(--api-key-stdin\)/g, "window.keyField"],
  [/add one with `switchyard provider add [^`]*`/g, "window.keyAdd"],
  [/enter it again with --api-key-stdin/g, "window.keyReenter"],
  [/\(use --no-model to clear it\)/g, "window.modelClear"],
  [/add it with `switchyard provider add [^`]*` or use `local`/g, "window.providerAdd"],
  [/add --ttl \(e\.g\. --ttl 15m\)/g, "window.ttl"],
  [/pick another with --name/g, "window.name"],
  [/\(`switchyard pool set --limit`\)/g, "window.poolPage"],
  [/\(`switchyard pool set --preload \.\.\.`\)/g, "window.poolPage"],
  [/needs --base-url/g, "window.baseUrl"],
];

/** `message` as the window should show it. */
export function forWindow(message: string): string {
  // A function, not a string, as the replacement: a `$` in a translation is text.
  return WINDOW_WORDS.reduce((m, [re, key]) => m.replace(re, () => t(key)), message);
}
