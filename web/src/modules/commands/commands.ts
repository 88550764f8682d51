/** The IDE's commands, as listed by the command palette (Ctrl+Shift+P) with their shortcuts. */

export interface IdeCommand {
  id: string;
  title: string;
  /** As shown, e.g. "Ctrl+Shift+F". */
  shortcut?: string;
  run(): void;
}

/** Commands whose title holds every word of the query (any order, any case). */
export function filterCommands(commands: IdeCommand[], query: string): IdeCommand[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  return commands.filter((c) => words.every((w) => c.title.toLowerCase().includes(w) || c.id.includes(w)));
}

/** Whether a keydown matches a shortcut written like "Ctrl+Shift+P" (Ctrl is Cmd on a Mac). */
export function matchesShortcut(e: Pick<KeyboardEvent, "ctrlKey" | "metaKey" | "shiftKey" | "altKey" | "key">, shortcut: string): boolean {
  const parts = shortcut.split("+");
  const key = parts[parts.length - 1]!.toLowerCase();
  const want = new Set(parts.slice(0, -1).map((p) => p.toLowerCase()));
  return (
    (e.ctrlKey || e.metaKey) === want.has("ctrl") &&
    e.shiftKey === want.has("shift") &&
    e.altKey === want.has("alt") &&
    e.key.toLowerCase() === (key === "backquote" ? "`" : key)
  );
}
