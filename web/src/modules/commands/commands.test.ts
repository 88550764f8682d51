import { describe, expect, it } from "vitest";
import { filterCommands, matchesShortcut, type IdeCommand } from "./commands";

const cmds: IdeCommand[] = [
  { id: "search", title: "Search in files", shortcut: "Ctrl+Shift+F", run: () => {} },
  { id: "export", title: "Download workspace as zip", run: () => {} },
];

describe("commands", () => {
  it("filters by every word of the query", () => {
    expect(filterCommands(cmds, "zip down").map((c) => c.id)).toEqual(["export"]);
    expect(filterCommands(cmds, "")).toHaveLength(2);
  });
  it("matches shortcuts exactly (Cmd counts as Ctrl)", () => {
    const ev = { ctrlKey: false, metaKey: true, shiftKey: true, altKey: false, key: "F" };
    expect(matchesShortcut(ev, "Ctrl+Shift+F")).toBe(true);
    expect(matchesShortcut({ ...ev, shiftKey: false }, "Ctrl+Shift+F")).toBe(false);
  });
});
