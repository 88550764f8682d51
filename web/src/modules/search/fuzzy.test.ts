import { describe, expect, it } from "vitest";
import { buildIndex, fuzzySearch } from "./fuzzy";

const paths = ["src/app/main.py", "src/utils/maths.py", "README.md", "tests/test_main.py", "docs/manual/index.md", "web/src/components/CodeEditor.tsx"];

describe("fuzzySearch", () => {
  const index = buildIndex(paths);

  it("keeps only paths holding the query's characters in order", () => {
    const found = fuzzySearch(index, "mpy").map((h) => h.path);
    expect(found).toContain("src/app/main.py");
    expect(found).not.toContain("README.md");
  });

  it("ranks a file name match above a match spread over folders", () => {
    expect(fuzzySearch(index, "main")[0]!.path).toBe("src/app/main.py");
    expect(fuzzySearch(index, "codeed")[0]!.path).toBe("web/src/components/CodeEditor.tsx");
  });

  it("is case-insensitive, ignores spaces and reports matched positions", () => {
    const [hit] = fuzzySearch(index, "READ me");
    expect(hit!.path).toBe("README.md");
    expect(hit!.positions).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("returns nothing for a query that matches no path and respects the limit", () => {
    expect(fuzzySearch(index, "zzz")).toEqual([]);
    expect(fuzzySearch(index, "", 2)).toHaveLength(2);
  });
});
