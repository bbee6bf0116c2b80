import { afterEach, describe, expect, it } from "vitest";
import { LOCALES, catalogue, detectLocale, parseLocale, pieces, placeholders, setLocale, t, tn, type MessageKey } from "./i18n";

const keys = Object.keys(catalogue.en) as MessageKey[];

describe("the catalogue", () => {
  it("has every message in every language, none empty", () => {
    for (const locale of LOCALES) {
      expect(Object.keys(catalogue[locale]).sort(), locale).toEqual([...keys].sort());
      for (const key of keys) expect(catalogue[locale][key].trim(), `${locale} ${key}`).not.toBe("");
    }
  });

  it("has the same placeholders in every language", () => {
    for (const locale of LOCALES) {
      for (const key of keys) {
        expect([...placeholders(catalogue[locale][key])].sort(), `${locale} ${key}`).toEqual(
          [...placeholders(catalogue.en[key])].sort(),
        );
      }
    }
  });

  it("has both forms of every counted message", () => {
    for (const key of keys.filter((k) => k.endsWith("_one"))) {
      expect(keys, key).toContain(key.replace(/_one$/, "_other"));
    }
  });
});

describe("t", () => {
  afterEach(() => setLocale("en"));

  it("fills in the variables and leaves the others for the page", () => {
    expect(t("routing.added", { id: 3, position: 0 })).toBe("Added rule 3 at position 0.");
    expect(t("dashboard.listening")).toBe("Listening on {url}");
    expect(t("models.didLoad", { name: "$& {name}" })).toBe("Loaded $& {name}.");
  });

  it("speaks the current locale, and English for an unknown one", () => {
    setLocale("ja");
    expect(t("page.models")).toBe("モデル");
    expect(t("routing.added", { id: 3, position: 0 })).toBe("ルール 3 を位置 0 に追加しました。");
    expect(t("page.models", {}, "fr")).toBe("Models");
    expect(t("page.models", {}, "en")).toBe("Models");
  });

  it("picks the form for a count", () => {
    const vars = { oldFingerprint: "a", newFingerprint: "b" };
    expect(tn("security.rootReplacedDetail", 1, vars)).toBe("Fingerprint a → b; 1 data key re-wrapped.");
    expect(tn("security.rootReplacedDetail", 2, vars)).toBe("Fingerprint a → b; 2 data keys re-wrapped.");
    expect(tn("security.rootReplacedDetail", 0, vars)).toBe("Fingerprint a → b; 0 data keys re-wrapped.");
  });
});

describe("pieces", () => {
  it("cuts a message at its slots", () => {
    expect(pieces("Rule {id} at position {position}.")).toEqual([
      { text: "Rule " },
      { slot: "id" },
      { text: " at position " },
      { slot: "position" },
      { text: "." },
    ]);
    expect(pieces("{a}{b}")).toEqual([{ slot: "a" }, { slot: "b" }]);
    expect(pieces("plain")).toEqual([{ text: "plain" }]);
  });
});

describe("detectLocale", () => {
  it.each([
    [["ja-JP", "en"], "ja"],
    [["en-US", "ja"], "en"],
    [[], "en"],
    [["JA"], "ja"],
    [["ja"], "ja"],
    [["jv-ID"], "en"],
    [["de-DE"], "en"],
  ] as const)("%j → %s", (languages, want) => expect(detectLocale(languages)).toBe(want));
});

describe("parseLocale", () => {
  it("accepts only the known locales", () => {
    expect(parseLocale("ja")).toBe("ja");
    expect(parseLocale("en")).toBe("en");
    for (const v of ["", "JA", "fr", null, undefined, 1]) expect(parseLocale(v)).toBeNull();
  });
});
