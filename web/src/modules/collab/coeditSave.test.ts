import { describe, expect, it } from "vitest";
import * as Y from "yjs";
import { carryOver, crc32, matchesSaved, singleEdit, type CollabDoc } from "./collabConnection";
import { coeditSaveState } from "./useCollab";

const utf8 = (s: string) => new TextEncoder().encode(s);

function docWith(text: string): CollabDoc {
  const doc = new Y.Doc();
  const t = doc.getText("content");
  t.insert(0, text);
  return { path: "a.py", doc, text: t, awareness: null as never, synced: true, saved: null, saveError: null, confirmedText: null };
}

describe("save acknowledgements", () => {
  it("computes the CRC-32 Python's zlib.crc32 computes", () => {
    // zlib.crc32(b"hello") == 907060870; zlib.crc32("héllo ✓\n".encode()) == 2615721610
    expect(crc32(utf8("hello"))).toBe(907060870);
    expect(crc32(utf8(""))).toBe(0);
    expect(crc32(utf8("héllo ✓\n"))).toBe(2615721610);
  });

  it("matches a saved mark by UTF-8 length and CRC", () => {
    const raw = utf8("héllo ✓\n");
    expect(matchesSaved("héllo ✓\n", { version: 3, bytes: raw.length, crc32: crc32(raw) })).toBe(true);
    expect(matchesSaved("héllo ✓", { version: 3, bytes: raw.length, crc32: crc32(raw) })).toBe(false);
  });

  it("is saved only when the server's saved text is the text shown", () => {
    const d = docWith("x = 1\n");
    expect(coeditSaveState(d, "open").state).toBe("saving"); // no ack yet
    d.saved = { version: 2, bytes: 6, crc32: crc32(utf8("x = 1\n")) };
    expect(coeditSaveState(d, "open")).toEqual({ state: "saved", reason: null });
    d.text.insert(6, "y = 2\n");
    expect(coeditSaveState(d, "open").state).toBe("saving");
    expect(coeditSaveState(d, "reconnecting")).toEqual({ state: "unsaved", reason: "offline: reconnecting to save" });
    d.saveError = "over the storage quota";
    expect(coeditSaveState(d, "open")).toEqual({ state: "unsaved", reason: "save failed: over the storage quota" });
  });
});

describe("carrying offline edits into a new copy", () => {
  it("finds the one edit between two texts", () => {
    expect(singleEdit("abcdef", "abXYef")).toEqual({ at: 2, remove: 2, insert: "XY" });
    expect(singleEdit("aaa", "aaaa")).toEqual({ at: 3, remove: 0, insert: "a" });
  });

  it("applies what was typed offline over the server's fresh copy", () => {
    const d = docWith("print(1)\n");
    carryOver(d.text, { mine: "print(1)\nprint(2)\n", base: "print(1)\n" });
    expect(d.text.toString()).toBe("print(1)\nprint(2)\n");
  });

  it("keeps the server's text when nothing was typed offline", () => {
    const d = docWith("changed by the terminal\n");
    carryOver(d.text, { mine: "old\n", base: "old\n" });
    expect(d.text.toString()).toBe("changed by the terminal\n");
  });
});
