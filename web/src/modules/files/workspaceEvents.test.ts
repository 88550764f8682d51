import { describe, expect, it, vi } from "vitest";
import type { FileItem } from "../../api/types";
import { EventsConnection } from "./eventsConnection";
import { applyWorkspaceEvent, parseWorkspaceEvent, syncNotice } from "./workspaceEvents";
import { FakeClock, FakeSocket } from "../terminal/testFakes";

const f = (path: string, version = 1): FileItem => ({ path, name: path.split("/").pop()!, type: "file", size: 1, version, content_hash: null, is_binary: false, updated_at: "" });

describe("parseWorkspaceEvent", () => {
  it("parses the documented events", () => {
    expect(parseWorkspaceEvent('{"type":"file_changed","path":"a.py","item_type":"file","version":3,"size":10,"source":"sandbox"}')).toEqual({
      type: "file_changed", path: "a.py", item_type: "file", version: 3, size: 10, source: "sandbox",
    });
    expect(parseWorkspaceEvent('{"type":"file_moved","from":"a","to":"b","source":"api"}')).toEqual({ type: "file_moved", from: "a", to: "b", item_type: "file", source: "api" });
    expect(parseWorkspaceEvent('{"type":"sandbox_status","status":"running"}')).toEqual({ type: "sandbox_status", status: "running" });
    expect(parseWorkspaceEvent('{"type":"run_started","execution_id":"e1","user_id":7,"events":"/api/executions/e1/events"}')).toEqual({ type: "run_started", execution_id: "e1", user_id: 7, events: "/api/executions/e1/events" });
    expect(parseWorkspaceEvent('{"type":"run_started","execution_id":"e1"}')).toBeNull();
    expect(parseWorkspaceEvent('{"type":"conflict","path":"a","conflict_path":"a.conflict","message":"m"}')).toMatchObject({ type: "conflict", conflict_path: "a.conflict" });
  });
  it("parses sync problems and the server's resync, and words a notice for them", () => {
    const err = parseWorkspaceEvent('{"type":"sync_error","path":"bad\\\\xff.txt","error":"invalid_path","message":"not valid UTF-8"}');
    expect(err).toEqual({ type: "sync_error", path: "bad\\xff.txt", error: "invalid_path", message: "not valid UTF-8" });
    expect(syncNotice(err!)).toBe("not valid UTF-8");
    expect(syncNotice({ type: "sync_error", path: "big.bin", error: "file_too_large", message: "" })).toContain("big.bin");
    const storm = parseWorkspaceEvent('{"type":"resync","reason":"sync_backlog"}');
    expect(storm).toEqual({ type: "resync", reason: "sync_backlog" });
    expect(syncNotice(storm!)).toContain("reloaded");
    expect(parseWorkspaceEvent('{"type":"resync"}')).toEqual({ type: "resync" });
    expect(syncNotice({ type: "resync" })).toBeNull();
    expect(parseWorkspaceEvent('{"type":"sync_error","path":"x"}')).toBeNull();
  });
  it("ignores malformed and unknown messages", () => {
    expect(parseWorkspaceEvent("not json")).toBeNull();
    expect(parseWorkspaceEvent('{"type":"file_changed"}')).toBeNull();
    expect(parseWorkspaceEvent('{"type":"whatever"}')).toBeNull();
    expect(parseWorkspaceEvent("null")).toBeNull();
  });
});

describe("applyWorkspaceEvent", () => {
  const list = [f("a.py"), f("dir/b.py")];
  it("adds and updates files (with parents)", () => {
    const out = applyWorkspaceEvent(list, { type: "file_changed", path: "new/c.py", item_type: "file", version: 1, size: 3, source: "sandbox" });
    expect(out.map((i) => i.path)).toEqual(["a.py", "dir/b.py", "new", "new/c.py"]);
    const upd = applyWorkspaceEvent(list, { type: "file_changed", path: "a.py", item_type: "file", version: 5, size: 3, source: "sandbox" });
    expect(upd.find((i) => i.path === "a.py")!.version).toBe(5);
  });
  it("deletes and moves", () => {
    expect(applyWorkspaceEvent(list, { type: "file_deleted", path: "dir", item_type: "folder", source: "sandbox" }).map((i) => i.path)).toEqual(["a.py"]);
    expect(applyWorkspaceEvent(list, { type: "file_moved", from: "dir", to: "lib", item_type: "folder", source: "api" }).map((i) => i.path)).toEqual(["a.py", "lib/b.py"]);
  });
  it("leaves the list alone for other events", () => {
    expect(applyWorkspaceEvent(list, { type: "sandbox_status", status: "running" })).toBe(list);
  });
});

describe("EventsConnection", () => {
  it("delivers parsed events, reconnects after a drop and asks for a resync", () => {
    const clock = new FakeClock();
    const sockets: FakeSocket[] = [];
    const onEvent = vi.fn();
    const onResync = vi.fn();
    const states: string[] = [];
    const c = new EventsConnection({
      url: "ws://h/api/sessions/u/events",
      createSocket: (url) => {
        const s = new FakeSocket(url);
        sockets.push(s);
        return s;
      },
      onEvent,
      onState: (s) => states.push(s),
      onResync,
      clock,
      random: () => 0,
    });
    c.connect();
    sockets[0]!.open();
    sockets[0]!.receive('{"type":"file_deleted","path":"x","source":"api"}');
    expect(onEvent).toHaveBeenCalledWith({ type: "file_deleted", path: "x", item_type: "file", source: "api" });
    expect(onResync).not.toHaveBeenCalled();
    sockets[0]!.receive('{"type":"resync"}'); // the server dropped events for this socket
    expect(onResync).toHaveBeenCalledTimes(1);
    onResync.mockClear();
    sockets[0]!.serverClose(1006);
    expect(states.at(-1)).toBe("reconnecting");
    clock.advance(500);
    expect(sockets).toHaveLength(2);
    sockets[1]!.open();
    expect(onResync).toHaveBeenCalledTimes(1);
    c.dispose();
    expect(states.at(-1)).toBe("closed");
  });

  it("stops on an authentication close", () => {
    const clock = new FakeClock();
    const sockets: FakeSocket[] = [];
    const states: string[] = [];
    const c = new EventsConnection({
      url: "ws://h/e",
      createSocket: (url) => {
        const s = new FakeSocket(url);
        sockets.push(s);
        return s;
      },
      onEvent: () => {},
      onState: (s) => states.push(s),
      onResync: () => {},
      clock,
    });
    c.connect();
    sockets[0]!.serverClose(4401);
    clock.advance(60_000);
    expect(sockets).toHaveLength(1);
    expect(states.at(-1)).toBe("failed");
  });
});
