import { describe, expect, it } from "vitest";
import type { PresenceState } from "./collabConnection";
import { presenceList } from "./useCollab";

const state = (name: string, file: string | null, line: number | null = null): PresenceState => ({
  user: { id: 1, name, color: "#e06c75", tab: "t" },
  file,
  line,
  column: null,
});

describe("presenceList", () => {
  it("lists who is here and which file each has open, ourselves first", () => {
    const states = new Map<number, PresenceState>([
      [7, state("zoe", "a.py", 3)],
      [2, state("ann", null)],
      [5, state("me", "b.py")],
    ]);
    const list = presenceList(states, 5);
    expect(list.map((e) => [e.name, e.file, e.self])).toEqual([
      ["me", "b.py", true],
      ["ann", null, false],
      ["zoe", "a.py", false],
    ]);
    expect(list[2]!.line).toBe(3);
  });
  it("skips states that are not presence (an empty or malformed one from another client)", () => {
    const states = new Map<number, PresenceState>([[1, {} as PresenceState], [2, { user: { name: 5 } } as unknown as PresenceState]]);
    expect(presenceList(states, 0)).toEqual([]);
  });
});
