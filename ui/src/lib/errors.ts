// The core's error messages are written for the command line as well as the window, and
// some name CLI flags (`--api-key-stdin`, `--no-key`, `switchyard pool set --limit`).
// In the window they are said in terms of the window's own controls. Pure function:
// tested in errors.test.ts.

/** [what the core says, what the window says instead]. */
const WINDOW_WORDS: [RegExp, string][] = [
  [/enter the key again \(--api-key-stdin\) or remove it \(--no-key\)/g, "enter the key again in the API key field, or clear the stored key"],
  [/the key is entered separately \(--api-key-stdin\)/g, "the key goes in the API key field"],
  [/add one with `switchyard provider add [^`]*`/g, "enter one in the provider's API key field"],
  [/enter it again with --api-key-stdin/g, "enter it again in the provider's API key field"],
  [/\(use --no-model to clear it\)/g, "(leave the model field empty to clear it)"],
  [/add it with `switchyard provider add [^`]*` or use `local`/g, "add it on the Providers page, or send the rule to local"],
  [/add --ttl \(e\.g\. --ttl 15m\)/g, "set an idle unload time (e.g. 15m)"],
  [/pick another with --name/g, "pick another in the Name field"],
  [/\(`switchyard pool set --limit`\)/g, "(on the Pool page)"],
  [/\(`switchyard pool set --preload \.\.\.`\)/g, "(on the Pool page)"],
  [/needs --base-url/g, "needs a base URL"],
];

/** `message` as the window should show it. */
export function forWindow(message: string): string {
  return WINDOW_WORDS.reduce((m, [re, said]) => m.replace(re, said), message);
}
