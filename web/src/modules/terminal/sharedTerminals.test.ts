import { describe, expect, it } from "vitest";
import { adoptLiveTerminals } from "./terminalIds";

describe("adoptLiveTerminals (a collaborator's tabs in a shared session)", () => {
  it("adopts every live terminal once, keeping the tabs it has", () => {
    const tabs = [{ id: "t-a", title: "Terminal 1" }];
    const next = adoptLiveTerminals(tabs, ["t-a", "t-b", "t-b"], { first: false, readOnly: false });
    expect(next.map((t) => t.id)).toEqual(["t-a", "t-b"]);
    expect(next[1]!.title).not.toBe("Terminal 1");
  });

  it("opens a shell for an editor of a session without one, never for a viewer", () => {
    expect(adoptLiveTerminals([], [], { first: true, readOnly: false, newId: () => "t-new" })).toEqual([{ id: "t-new", title: "Terminal 1" }]);
    expect(adoptLiveTerminals([], [], { first: true, readOnly: true })).toEqual([]);
    expect(adoptLiveTerminals([], [], { first: false, readOnly: false })).toEqual([]);
  });
});
