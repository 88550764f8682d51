import { describe, expect, it } from "vitest";
import { baseVersionForSave, emptyTabs, restoreTabs, externalChangeDecision, isDirty, tabsReducer, tabsToLoad, type TabsAction, type TabsState } from "./editorTabs";
import { languageForPath, runCommandForPath, shellQuote } from "./language";

const run = (actions: TabsAction[], from: TabsState = emptyTabs) => actions.reduce(tabsReducer, from);
const opened = (path = "main.py", content = "print(1)\n", version = 2) =>
  run([{ type: "open", path }, { type: "loaded", path, content, version, isBinary: false }]);
const tab = (s: TabsState, path = "main.py") => s.tabs.find((t) => t.path === path)!;

describe("language by extension", () => {
  it("maps common extensions and names", () => {
    expect(languageForPath("a/b/main.py")).toBe("python");
    expect(languageForPath("x.TS")).toBe("typescript");
    expect(languageForPath("index.jsx")).toBe("javascript");
    expect(languageForPath("data.json")).toBe("json");
    expect(languageForPath("Dockerfile")).toBe("dockerfile");
    expect(languageForPath("notes.md")).toBe("markdown");
    expect(languageForPath("run.sh")).toBe("shell");
    expect(languageForPath("hello.cpp")).toBe("cpp");
    expect(languageForPath("Makefile")).toBe("plaintext");
    expect(languageForPath(".env")).toBe("plaintext");
    expect(languageForPath("weird.xyz")).toBe("plaintext");
  });
  it("gives the shell command that runs a file", () => {
    expect(runCommandForPath("main.py")).toBe("python3 main.py");
    expect(runCommandForPath("src/my app.py")).toBe("python3 'src/my app.py'");
    expect(runCommandForPath("index.js")).toBe("node index.js");
    expect(runCommandForPath("a.c")).toBe("gcc a.c -o a && ./a");
    expect(runCommandForPath("README.md")).toBeNull();
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
  });
});

describe("tabs", () => {
  it("opens a tab loading, then ready; opening again only activates", () => {
    let s = run([{ type: "open", path: "a.py" }]);
    expect(tabsToLoad(s).map((t) => t.path)).toEqual(["a.py"]);
    s = run([{ type: "loaded", path: "a.py", content: "x", version: 1, isBinary: false }, { type: "open", path: "b.py" }, { type: "open", path: "a.py" }], s);
    expect(s.tabs.map((t) => t.path)).toEqual(["a.py", "b.py"]);
    expect(s.active).toBe("a.py");
    expect(tab(s, "a.py").language).toBe("python");
  });

  it("tracks dirtiness against the saved content", () => {
    let s = opened();
    expect(isDirty(tab(s))).toBe(false);
    s = tabsReducer(s, { type: "edit", path: "main.py", content: "print(2)\n" });
    expect(isDirty(tab(s))).toBe(true);
    s = tabsReducer(s, { type: "edit", path: "main.py", content: "print(1)\n" });
    expect(isDirty(tab(s))).toBe(false);
  });

  it("closing the active tab activates its neighbour", () => {
    const s = run([{ type: "open", path: "a" }, { type: "open", path: "b" }, { type: "open", path: "c" }, { type: "activate", path: "b" }, { type: "close", path: "b" }]);
    expect(s.active).toBe("c");
    expect(run([{ type: "close", path: "c" }], s).active).toBe("a");
  });

  it("a save sends the loaded version as base_version and moves to the new version", () => {
    let s = run([{ type: "edit", path: "main.py", content: "v2" }], opened());
    expect(baseVersionForSave(tab(s), false)).toBe(2);
    s = run([{ type: "save_started", path: "main.py" }, { type: "saved", path: "main.py", content: "v2", version: 3 }], s);
    expect(tab(s)).toMatchObject({ version: 3, savedContent: "v2", saving: false });
    expect(isDirty(tab(s))).toBe(false);
  });

  it("a 409 shows a conflict; overwrite uses the server's version, reload theirs reloads", () => {
    let s = run([{ type: "edit", path: "main.py", content: "mine" }, { type: "save_started", path: "main.py" }, { type: "save_conflict", path: "main.py", currentVersion: 5 }], opened());
    expect(tab(s).notice).toEqual({ kind: "conflict", version: 5 });
    expect(tab(s).content).toBe("mine");
    expect(baseVersionForSave(tab(s), true)).toBe(5);
    expect(baseVersionForSave(tab(s), false)).toBe(2);
    s = tabsReducer(s, { type: "reload", path: "main.py" });
    expect(tab(s)).toMatchObject({ status: "loading", notice: null });
  });
});

describe("changes on disk", () => {
  it("reloads a clean tab, notifies a dirty one, ignores versions it already has", () => {
    const clean = opened();
    expect(externalChangeDecision(tab(clean), 2)).toBe("ignore");
    expect(externalChangeDecision(tab(clean), 3)).toBe("reload");
    expect(tab(tabsReducer(clean, { type: "disk_changed", path: "main.py", version: 3 })).status).toBe("loading");
    const dirty = tabsReducer(clean, { type: "edit", path: "main.py", content: "edited" });
    const s = tabsReducer(dirty, { type: "disk_changed", path: "main.py", version: 3 });
    expect(tab(s)).toMatchObject({ status: "ready", content: "edited", notice: { kind: "changed", version: 3 } });
    expect(baseVersionForSave(tab(s), true)).toBe(3);
  });

  it("our own save's event does not count as an outside change", () => {
    let s = run([{ type: "edit", path: "main.py", content: "x" }, { type: "save_started", path: "main.py" }], opened());
    // The event for our save arrives before the HTTP answer.
    s = tabsReducer(s, { type: "disk_changed", path: "main.py", version: 3 });
    s = tabsReducer(s, { type: "saved", path: "main.py", content: "x", version: 3 });
    expect(tab(s)).toMatchObject({ notice: null, version: 3, status: "ready", pendingVersion: null });
  });

  it("a newer outside write during our save is noticed when the save answers", () => {
    let s = run([{ type: "edit", path: "main.py", content: "x" }, { type: "save_started", path: "main.py" }], opened());
    s = tabsReducer(s, { type: "disk_changed", path: "main.py", version: 4 });
    s = tabsReducer(s, { type: "saved", path: "main.py", content: "x", version: 3 });
    expect(tab(s).status).toBe("loading");
  });

  it("marks deleted files, and follows moves of the file or its folder", () => {
    let s = opened("src/a.py");
    s = tabsReducer(s, { type: "disk_deleted", path: "src" });
    expect(tab(s, "src/a.py").notice).toEqual({ kind: "deleted" });
    expect(baseVersionForSave(tab(s, "src/a.py"), false)).toBe(0);
    s = tabsReducer(opened("src/a.py"), { type: "disk_moved", from: "src", to: "lib" });
    expect(s.tabs.map((t) => t.path)).toEqual(["lib/a.py"]);
    expect(s.active).toBe("lib/a.py");
    s = tabsReducer(s, { type: "disk_moved", from: "lib/a.py", to: "lib/a.js" });
    expect(tab(s, "lib/a.js").language).toBe("javascript");
  });
});

describe("restoring tabs after a reload", () => {
  it("reopens saved paths as loading tabs and keeps the active one", () => {
    const s = restoreTabs(["a.py", "b.py", "a.py", ""], "b.py");
    expect(s.tabs.map((t) => `${t.path}:${t.status}`)).toEqual(["a.py:loading", "b.py:loading"]);
    expect(s.active).toBe("b.py");
    expect(restoreTabs(["a.py"], "gone.py").active).toBe("a.py");
    expect(restoreTabs([], null)).toEqual({ tabs: [], active: null });
  });
});
