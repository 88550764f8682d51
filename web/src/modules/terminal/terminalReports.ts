/**
 * What a terminal emulator sends on its own, as if typed: its answers to a program's queries (cursor
 * position, device attributes, colours, modes, settings). Used to drop the answers xterm.js gives to a
 * reattach's replayed scrollback: the program that asked is long gone and the shell would run them.
 */

const ESC = "\\x1b";
const ST = `(?:\\x07|${ESC}\\\\)`;

const REPORT = [
  `${ESC}\\[\\??[0-9;]*R`, // cursor position (CPR / DECXCPR)
  `${ESC}\\[[?>=][0-9;]*c`, // device attributes (primary, secondary, tertiary)
  `${ESC}P!\\|[0-9A-Fa-f]*${ST}`, // tertiary DA as DCS
  `${ESC}\\[\\??[0-9;]*n`, // device status
  `${ESC}\\[\\??[0-9;]*\\$y`, // DECRPM: a mode's state
  `${ESC}\\][0-9]+;[^\\x07\\x1b]*${ST}`, // OSC colour / clipboard answers
  `${ESC}P[0-9]*[$+>]?[r|][^\\x1b\\x07]*${ST}`, // DECRQSS, XTGETTCAP, XTVERSION answers
  `${ESC}\\[[0-9;]*t`, // window state / size reports
  `${ESC}\\[\\?[0-9;]*u`, // keyboard protocol flags
].join("|");

const ONLY_REPORTS = new RegExp(`^(?:${REPORT})+$`);

/** Whether ``data`` (one onData string) consists of terminal reports only, with nothing typed. */
export function isTerminalReport(data: string): boolean {
  return data.length > 0 && ONLY_REPORTS.test(data);
}
