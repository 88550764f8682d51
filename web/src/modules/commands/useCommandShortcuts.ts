/** Runs the IDE commands' shortcuts, before Monaco and xterm see the keys (capture phase): Ctrl+P would otherwise print the page. */
import { useEffect, useRef } from "react";
import { matchesShortcut, type IdeCommand } from "./commands";

/** `skip`: ids whose shortcut is handled elsewhere (Monaco's Ctrl+S and Ctrl+Enter). */
export function useCommandShortcuts(commands: IdeCommand[], skip: readonly string[] = []): void {
  const latest = useRef({ commands, skip });
  latest.current = { commands, skip };
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (!(e.ctrlKey || e.metaKey)) return;
      const { commands: list, skip: skipped } = latest.current;
      const cmd = list.find((c) => c.shortcut && !skipped.includes(c.id) && matchesShortcut(e, c.shortcut));
      if (!cmd) return;
      e.preventDefault();
      e.stopPropagation();
      cmd.run();
    };
    window.addEventListener("keydown", onKey, true);
    return () => window.removeEventListener("keydown", onKey, true);
  }, []);
}

/** Starts the browser's download of a URL of this origin (an attachment). */
export function downloadUrlInBrowser(url: string): void {
  const a = document.createElement("a");
  a.href = url;
  a.download = "";
  a.click();
}
