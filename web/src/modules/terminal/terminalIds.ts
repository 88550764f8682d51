/**
 * The terminal ids a browser tab uses for a session, kept in sessionStorage so that a reload reattaches
 * to the same shells (the id is the client-made reconnect token; a new tab gets new shells).
 */
import { VALID_TERMINAL_ID } from "./protocol";

export interface TerminalTab {
  id: string;
  title: string;
}

type StorageLike = Pick<Storage, "getItem" | "setItem" | "removeItem">;

const key = (sessionUuid: string) => `cc.terminals.${sessionUuid}`;

export function newTerminalId(random: () => number = Math.random): string {
  let s = "";
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  for (let i = 0; i < 12; i++) s += alphabet[Math.floor(random() * alphabet.length)];
  return `t-${s}`;
}

export function loadTerminalTabs(storage: StorageLike | null, sessionUuid: string): TerminalTab[] {
  if (!storage) return [];
  try {
    const raw = storage.getItem(key(sessionUuid));
    if (!raw) return [];
    const parsed: unknown = JSON.parse(raw);
    if (!Array.isArray(parsed)) return [];
    return parsed.filter(
      (t): t is TerminalTab =>
        typeof t === "object" && t !== null && typeof (t as TerminalTab).id === "string" && VALID_TERMINAL_ID.test((t as TerminalTab).id) && typeof (t as TerminalTab).title === "string",
    );
  } catch {
    return [];
  }
}

export function saveTerminalTabs(storage: StorageLike | null, sessionUuid: string, tabs: readonly TerminalTab[]): void {
  if (!storage) return;
  try {
    if (tabs.length === 0) storage.removeItem(key(sessionUuid));
    else storage.setItem(key(sessionUuid), JSON.stringify(tabs));
  } catch {
    /* storage full or disabled: terminals still work, they just won't survive a reload */
  }
}

/** "Terminal N" with the smallest N not taken. */
export function nextTerminalTitle(tabs: readonly TerminalTab[]): string {
  const taken = new Set(tabs.map((t) => t.title));
  for (let n = 1; ; n++) if (!taken.has(`Terminal ${n}`)) return `Terminal ${n}`;
}

export function safeSessionStorage(): StorageLike | null {
  try {
    return typeof window !== "undefined" ? window.sessionStorage : null;
  } catch {
    return null;
  }
}

/**
 * A collaborator's tabs after a look at the shared session's live terminals: every live one gets a
 * tab (the same tabs as everyone's); on the first look, a session without any terminal gets a new
 * shell unless the caller only watches (a viewer cannot open one).
 */
export function adoptLiveTerminals(tabs: readonly TerminalTab[], live: readonly string[], opts: { first: boolean; readOnly: boolean; newId?: () => string }): TerminalTab[] {
  const known = new Set(tabs.map((t) => t.id));
  let next = [...tabs];
  for (const id of live) {
    if (!known.has(id)) {
      next = [...next, { id, title: nextTerminalTitle(next) }];
      known.add(id);
    }
  }
  if (opts.first && next.length === 0 && !opts.readOnly) next = [{ id: (opts.newId ?? newTerminalId)(), title: "Terminal 1" }];
  return next;
}
