// The language the window speaks now. A rune, so every template and $derived that
// translates through `t` (lib/i18n.ts) reads it and is updated when it changes.
import type { Locale } from "./i18n";

export const ui: { locale: Locale } = $state({ locale: "en" });
