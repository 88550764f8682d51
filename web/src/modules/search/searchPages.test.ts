import { describe, expect, it } from "vitest";
import type { SearchResult } from "../../api/types";
import { appendSearchPage } from "./searchPages";

const line = (n: number) => ({ line: n, text: `hit ${n}`, ranges: [[0, 3]] as [number, number][] });

describe("appendSearchPage", () => {
  it("joins a file split across two pages and adds the counts", () => {
    const first: SearchResult = { files: [{ path: "a.py", matches: [line(1)] }, { path: "b.py", matches: [line(2)] }], match_count: 2, truncated: true, next: "c1" };
    const second: SearchResult = { files: [{ path: "b.py", matches: [line(7)] }, { path: "c.py", matches: [line(3)] }], match_count: 2, truncated: false, next: null };
    const joined = appendSearchPage(first, second);
    expect(joined.files.map((f) => [f.path, f.matches.map((m) => m.line)])).toEqual([
      ["a.py", [1]],
      ["b.py", [2, 7]],
      ["c.py", [3]],
    ]);
    expect(joined.match_count).toBe(4);
    expect(joined.next).toBeNull();
    expect(joined.truncated).toBe(false);
    expect(first.files[1]!.matches).toHaveLength(1); // the shown page is not changed
  });

  it("keeps what is shown when the next page is empty", () => {
    const first: SearchResult = { files: [{ path: "a.py", matches: [line(1)] }], match_count: 1, truncated: true, next: "c1" };
    const joined = appendSearchPage(first, { files: [], match_count: 0, truncated: false, next: null });
    expect(joined.files).toEqual(first.files);
    expect(joined.next).toBeNull();
  });
});
