import { describe, expect, it } from "vitest";
import { decodeServerMessage, encodeInput, encodeResize, isFatalClose } from "./protocol";
import { backoffDelay } from "./reconnect";
import { TerminalConnection, type ConnectionState } from "./terminalConnection";
import { loadTerminalTabs, newTerminalId, nextTerminalTitle, saveTerminalTabs } from "./terminalIds";
import { FakeClock, FakeSocket } from "./testFakes";

describe("protocol", () => {
  it("encodes input as UTF-8 bytes and resize as JSON text", () => {
    expect([...encodeInput("é\r")]).toEqual([0xc3, 0xa9, 0x0d]);
    expect(JSON.parse(encodeResize(120.7, 0))).toEqual({ type: "resize", cols: 120, rows: 1 });
  });
  it("decodes binary output and control messages", () => {
    const out = decodeServerMessage(new TextEncoder().encode("hi").buffer);
    expect(out?.type).toBe("output");
    expect(new TextDecoder().decode((out as { data: Uint8Array }).data)).toBe("hi");
    expect(decodeServerMessage('{"type":"ready","terminal_id":"t1","reattached":true}')).toEqual({ type: "ready", terminal_id: "t1", reattached: true, replay_bytes: 0 });
    expect(decodeServerMessage('{"type":"ready","terminal_id":"t1","reattached":true,"replay_bytes":12}')).toMatchObject({ replay_bytes: 12 });
    expect(decodeServerMessage('{"type":"exit","code":130}')).toEqual({ type: "exit", code: 130 });
    expect(decodeServerMessage('{"type":"command","command":"ls","exit_code":0,"cwd":"/w","duration_ms":5}')).toMatchObject({ command: "ls", exit_code: 0 });
    expect(decodeServerMessage('{"type":"error","error":"bad_message","message":"boom"}')).toEqual({ type: "error", error: "bad_message", message: "boom" });
    expect(decodeServerMessage('{"type":"pong"}')).toEqual({ type: "pong" });
  });
  it("ignores malformed or unknown frames", () => {
    expect(decodeServerMessage("{oops")).toBeNull();
    expect(decodeServerMessage('{"type":"nope"}')).toBeNull();
    expect(decodeServerMessage(42)).toBeNull();
  });
  it("knows which close codes are final", () => {
    expect(isFatalClose(4401)).toBe(true);
    expect(isFatalClose(4404)).toBe(true);
    expect(isFatalClose(4500)).toBe(false);
    expect(isFatalClose(1006)).toBe(false);
  });
});

describe("backoff", () => {
  it("grows exponentially up to a cap, with jitter below the nominal delay", () => {
    expect([0, 1, 2, 3, 10].map((a) => backoffDelay(a, undefined, () => 0))).toEqual([500, 1000, 2000, 4000, 10000]);
    expect(backoffDelay(0, undefined, () => 1)).toBe(350);
  });
});

function setup() {
  const clock = new FakeClock();
  const sockets: FakeSocket[] = [];
  const output: string[] = [];
  const states: ConnectionState[] = [];
  let resets = 0;
  const conn = new TerminalConnection({
    url: (cols, rows) => `ws://h/api/sessions/s1/terminals/t-abc?cols=${cols}&rows=${rows}`,
    createSocket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    events: {
      output: (d) => output.push(new TextDecoder().decode(d)),
      reset: () => resets++,
      state: (s) => states.push(s),
      control: () => {},
    },
    clock,
    random: () => 0,
    cols: 100,
    rows: 30,
  });
  return { clock, sockets, output, states, conn, resets: () => resets };
}

describe("TerminalConnection", () => {
  it("connects with the size, sends a resize on open, and passes output and input through", () => {
    const t = setup();
    t.conn.connect();
    expect(t.sockets[0]!.url).toBe("ws://h/api/sessions/s1/terminals/t-abc?cols=100&rows=30");
    t.sockets[0]!.open();
    expect(t.sockets[0]!.binaryType).toBe("arraybuffer");
    expect(t.sockets[0]!.sentText().map((m) => JSON.parse(m))).toEqual([{ type: "resize", cols: 100, rows: 30 }]);
    t.sockets[0]!.receive(new TextEncoder().encode("$ ").buffer);
    expect(t.output).toEqual(["$ "]);
    t.conn.sendInput("ls\r");
    expect(t.sockets[0]!.sentBytes()).toEqual(["ls\r"]);
    t.conn.resize(80, 24);
    expect(JSON.parse(t.sockets[0]!.sentText().at(-1)!)).toEqual({ type: "resize", cols: 80, rows: 24 });
  });

  it("reconnects to the same terminal id after a drop, clearing the screen for the replayed scrollback", () => {
    const t = setup();
    t.conn.connect();
    t.sockets[0]!.open();
    t.sockets[0]!.receive(new TextEncoder().encode("old output").buffer);
    t.sockets[0]!.serverClose(1006);
    expect(t.conn.state).toBe("reconnecting");
    t.conn.sendInput("typed while offline");
    t.clock.advance(499);
    expect(t.sockets).toHaveLength(1);
    t.clock.advance(1);
    expect(t.sockets).toHaveLength(2);
    expect(t.sockets[1]!.url).toContain("/terminals/t-abc?");
    t.sockets[1]!.open();
    expect(t.conn.state).toBe("open");
    // Input typed while offline is delivered after the resize.
    expect(t.sockets[1]!.sentBytes()).toEqual(["typed while offline"]);
    t.sockets[1]!.receive('{"type":"ready","terminal_id":"t-abc","reattached":true}');
    expect(t.resets()).toBe(1);
    t.sockets[1]!.receive(new TextEncoder().encode("old output").buffer);
    expect(t.output).toEqual(["old output", "old output"]);
  });

  it("clears the screen when the replay arrives before the ready message", () => {
    const t = setup();
    t.conn.connect();
    t.sockets[0]!.open();
    t.sockets[0]!.receive(new TextEncoder().encode("x").buffer);
    t.sockets[0]!.serverClose(1001);
    t.clock.advance(500);
    t.sockets[1]!.open();
    t.sockets[1]!.receive(new TextEncoder().encode("x").buffer);
    expect(t.resets()).toBe(1);
  });

  it("does not clear the screen on the first connection", () => {
    const t = setup();
    t.conn.connect();
    t.sockets[0]!.open();
    t.sockets[0]!.receive('{"type":"ready","terminal_id":"t-abc","reattached":true}');
    t.sockets[0]!.receive(new TextEncoder().encode("replay").buffer);
    expect(t.resets()).toBe(0);
  });

  it("backs off further after each failed attempt and resets after a success", () => {
    const t = setup();
    t.conn.connect();
    t.sockets[0]!.serverClose(1006); // never opened
    t.clock.advance(500);
    t.sockets[1]!.serverClose(1006);
    t.clock.advance(999);
    expect(t.sockets).toHaveLength(2);
    t.clock.advance(1);
    expect(t.sockets).toHaveLength(3);
    t.sockets[2]!.open();
    t.sockets[2]!.serverClose(1006);
    t.clock.advance(500);
    expect(t.sockets).toHaveLength(4);
  });

  it("gives up on a fatal close code and says why", () => {
    const t = setup();
    t.conn.connect();
    t.sockets[0]!.serverClose(4401);
    t.clock.advance(60_000);
    expect(t.sockets).toHaveLength(1);
    expect(t.conn.state).toBe("failed");
  });

  it("stops after the shell exits, and restart reconnects the same id", () => {
    const t = setup();
    t.conn.connect();
    t.sockets[0]!.open();
    t.sockets[0]!.receive('{"type":"exit","code":0}');
    t.sockets[0]!.serverClose(1000);
    t.clock.advance(60_000);
    expect(t.conn.state).toBe("exited");
    expect(t.sockets).toHaveLength(1);
    t.conn.restart();
    expect(t.sockets).toHaveLength(2);
    expect(t.sockets[1]!.url).toContain("/terminals/t-abc?");
  });

  it("pings while open and replaces a connection that stopped answering", () => {
    const t = setup();
    t.conn.connect();
    t.sockets[0]!.open();
    t.clock.advance(20_000);
    expect(t.sockets[0]!.sentText().map((m) => JSON.parse(m).type)).toContain("ping");
    t.clock.advance(20_000);
    expect(t.sockets).toHaveLength(1);
    t.clock.advance(20_000); // 60 s without any frame
    expect(t.sockets[0]!.closedWith).toBe(4000);
    t.clock.advance(500);
    expect(t.sockets).toHaveLength(2);
  });

  it("dispose closes the socket and never reconnects", () => {
    const t = setup();
    t.conn.connect();
    t.sockets[0]!.open();
    t.conn.dispose();
    expect(t.sockets[0]!.closedWith).toBe(1000);
    t.clock.advance(60_000);
    expect(t.sockets).toHaveLength(1);
    expect(t.clock.pending()).toBe(0);
    expect(t.conn.state).toBe("closed");
  });

  it("reconnectNow skips the wait", () => {
    const t = setup();
    t.conn.connect();
    t.sockets[0]!.open();
    t.sockets[0]!.serverClose(1006);
    t.conn.reconnectNow();
    expect(t.sockets).toHaveLength(2);
  });
});

describe("terminal ids in sessionStorage", () => {
  class MemoryStorage {
    map = new Map<string, string>();
    getItem(k: string) {
      return this.map.get(k) ?? null;
    }
    setItem(k: string, v: string) {
      this.map.set(k, v);
    }
    removeItem(k: string) {
      this.map.delete(k);
    }
  }
  it("makes valid ids and keeps them per session", () => {
    const id = newTerminalId();
    expect(id).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
    const s = new MemoryStorage();
    saveTerminalTabs(s, "s1", [{ id, title: "Terminal 1" }]);
    expect(loadTerminalTabs(s, "s1")).toEqual([{ id, title: "Terminal 1" }]);
    expect(loadTerminalTabs(s, "s2")).toEqual([]);
    saveTerminalTabs(s, "s1", []);
    expect(s.map.size).toBe(0);
  });
  it("ignores corrupt or invalid entries", () => {
    const s = new MemoryStorage();
    s.setItem("cc.terminals.s1", "{not json");
    expect(loadTerminalTabs(s, "s1")).toEqual([]);
    s.setItem("cc.terminals.s1", JSON.stringify([{ id: "bad id!", title: "x" }, { id: "ok", title: "T" }]));
    expect(loadTerminalTabs(s, "s1")).toEqual([{ id: "ok", title: "T" }]);
    expect(loadTerminalTabs(null, "s1")).toEqual([]);
  });
  it("numbers new terminals with the first free number", () => {
    expect(nextTerminalTitle([{ id: "a", title: "Terminal 1" }, { id: "b", title: "Terminal 3" }])).toBe("Terminal 2");
  });
});
