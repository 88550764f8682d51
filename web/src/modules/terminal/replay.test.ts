import { describe, expect, it } from "vitest";
import { REPLAY_SETTLE_MS, TerminalConnection } from "./terminalConnection";
import { isTerminalReport } from "./terminalReports";
import { FakeClock, FakeSocket } from "./testFakes";

/** What xterm.js answers to vim's start-up queries (finding 5 of issue 12). */
const ANSWERS = ["\x1b[2;2R", "\x1b[>0;276;0c", "\x1b[?1;2c", "\x1b]10;rgb:d7d7/dada/e0e0\x1b\\", "\x1b]11;rgb:0c0c/0e0e/1313\x07", "\x1bP1$r0m\x1b\\", "\x1b[?2004;2$y", "\x1b[0n"];
const KEYS = ["a", "ls -l\r", "\r", "\x03", "\x1b[A", "\x1b[1;5D", "\x1bOP", "\x1b[15~", "\x1b[200~pasted\x1b[201~", "\x7f", "é"];

describe("terminal reports", () => {
  it("recognizes the emulator's answers, alone or several in one string", () => {
    for (const a of ANSWERS) expect(isTerminalReport(a), JSON.stringify(a)).toBe(true);
    expect(isTerminalReport(ANSWERS.join(""))).toBe(true);
  });
  it("never takes typed keys for a report", () => {
    for (const k of KEYS) expect(isTerminalReport(k), JSON.stringify(k)).toBe(false);
    expect(isTerminalReport("\x1b[2;2Rls\r")).toBe(false);
    expect(isTerminalReport("")).toBe(false);
  });
});

function setup() {
  const clock = new FakeClock();
  const sockets: FakeSocket[] = [];
  const writes: { text: string; parsed?: () => void }[] = [];
  const conn = new TerminalConnection({
    url: () => "ws://h/api/sessions/s1/terminals/t1",
    createSocket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    events: {
      output: (d, parsed) => writes.push({ text: new TextDecoder().decode(d), parsed }),
      reset: () => {},
      state: () => {},
      control: () => {},
    },
    clock,
    random: () => 0,
  });
  conn.connect();
  sockets[0]!.open();
  return { clock, sockets, writes, conn };
}

const bytes = (s: string) => new TextEncoder().encode(s).buffer;

describe("replay after a reattach", () => {
  it("drops the emulator's answers to the replay until the emulator has processed it, keeps keystrokes", () => {
    const t = setup();
    const replay = "$ vim\r\n\x1b[6n\x1b[>c\x1b]11;?\x07$ ";
    t.sockets[0]!.receive(JSON.stringify({ type: "ready", terminal_id: "t1", reattached: true, replay_bytes: replay.length }));
    t.sockets[0]!.receive(bytes(replay));
    expect(t.writes).toHaveLength(1);
    expect(t.writes[0]!.parsed).toBeTypeOf("function");
    // xterm.js parses the replay and answers its queries through onData -> sendInput.
    for (const a of ANSWERS) t.conn.sendInput(a);
    t.conn.sendInput("l");
    t.writes[0]!.parsed!();
    t.conn.sendInput("s\r");
    // After the replay, reports are input again (a live program asking gets its answer).
    t.conn.sendInput("\x1b[5;1R");
    expect(t.sockets[0]!.sentBytes()).toEqual(["l", "s\r", "\x1b[5;1R"]);
  });

  it("splits a frame that holds the end of the replay and live output", () => {
    const t = setup();
    t.sockets[0]!.receive(JSON.stringify({ type: "ready", terminal_id: "t1", reattached: true, replay_bytes: 3 }));
    t.sockets[0]!.receive(bytes("ab"));
    t.sockets[0]!.receive(bytes("cLIVE"));
    expect(t.writes.map((w) => [w.text, w.parsed !== undefined])).toEqual([["ab", true], ["c", true], ["LIVE", false]]);
    t.writes[0]!.parsed!();
    t.conn.sendInput("\x1b[2;2R");
    t.writes[1]!.parsed!();
    t.writes[1]!.parsed!(); // a second call changes nothing
    t.conn.sendInput("\x1b[3;3R");
    expect(t.sockets[0]!.sentBytes()).toEqual(["\x1b[3;3R"]);
  });

  it("no replay, no filtering: a fresh terminal's answers reach the program that asked", () => {
    const t = setup();
    t.sockets[0]!.receive(JSON.stringify({ type: "ready", terminal_id: "t1", reattached: false, replay_bytes: 0 }));
    t.sockets[0]!.receive(bytes("\x1b[6n"));
    expect(t.writes[0]!.parsed).toBeUndefined();
    t.conn.sendInput("\x1b[1;1R");
    expect(t.sockets[0]!.sentBytes()).toEqual(["\x1b[1;1R"]);
  });

  it("stops filtering after a while if the view never reports the replay processed", () => {
    const t = setup();
    t.sockets[0]!.receive(JSON.stringify({ type: "ready", terminal_id: "t1", reattached: true, replay_bytes: 4 }));
    t.sockets[0]!.receive(bytes("\x1b[6n"));
    t.conn.sendInput("\x1b[2;2R");
    t.clock.advance(REPLAY_SETTLE_MS);
    t.conn.sendInput("\x1b[2;2R");
    expect(t.sockets[0]!.sentBytes()).toEqual(["\x1b[2;2R"]);
  });

  it("a reconnect's replay is filtered too", () => {
    const t = setup();
    t.sockets[0]!.receive(JSON.stringify({ type: "ready", terminal_id: "t1", reattached: false, replay_bytes: 0 }));
    t.sockets[0]!.receive(bytes("\x1b[6n"));
    t.sockets[0]!.serverClose(1006);
    t.clock.advance(500);
    t.sockets[1]!.open();
    t.sockets[1]!.receive(JSON.stringify({ type: "ready", terminal_id: "t1", reattached: true, replay_bytes: 4 }));
    t.sockets[1]!.receive(bytes("\x1b[6n"));
    t.conn.sendInput("\x1b[2;2R");
    t.conn.sendInput("x");
    expect(t.sockets[1]!.sentBytes()).toEqual(["x"]);
  });
});
