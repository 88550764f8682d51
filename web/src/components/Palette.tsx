/** Quick open (Ctrl+P: fuzzy file names) and the command palette (Ctrl+Shift+P, or ">" in quick open). */
import { useMemo, useState, type KeyboardEvent } from "react";
import { filterCommands, type IdeCommand } from "../modules/commands/commands";
import { buildIndex, fuzzySearch } from "../modules/search/fuzzy";
import { Modal } from "./Dialog";

interface PaletteProps {
  mode: "files" | "commands";
  paths: string[];
  commands: IdeCommand[];
  onOpenFile(path: string): void;
  onClose(): void;
}

function Highlighted({ text, positions }: { text: string; positions: number[] }) {
  const set = new Set(positions);
  return (
    <>
      {Array.from(text, (ch, i) =>
        set.has(i) ? (
          <mark key={i} className="palette-hl">
            {ch}
          </mark>
        ) : (
          ch
        ),
      )}
    </>
  );
}

export function Palette({ mode, paths, commands, onOpenFile, onClose }: PaletteProps) {
  const [query, setQuery] = useState(mode === "commands" ? ">" : "");
  const [selected, setSelected] = useState(0);
  const index = useMemo(() => buildIndex(paths), [paths]);
  const isCommands = query.startsWith(">");
  const fileHits = useMemo(() => (isCommands ? [] : fuzzySearch(index, query, 50)), [index, query, isCommands]);
  const commandHits = useMemo(() => (isCommands ? filterCommands(commands, query.slice(1)) : []), [commands, query, isCommands]);
  const count = isCommands ? commandHits.length : fileHits.length;

  const choose = (i: number) => {
    onClose();
    if (isCommands) commandHits[i]?.run();
    else if (fileHits[i]) onOpenFile(fileHits[i].path);
  };
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const step = e.key === "ArrowDown" ? 1 : -1;
      setSelected((s) => (count === 0 ? 0 : (s + step + count) % count));
    } else if (e.key === "Enter") {
      e.preventDefault();
      choose(selected);
    }
  };

  return (
    <Modal labelledBy="palette-input" onCancel={onClose}>
      <div className="palette">
        <input
          id="palette-input"
          className="input palette-input"
          data-autofocus
          aria-label={isCommands ? "Type a command" : "Type a file name (> for commands)"}
          placeholder={isCommands ? "Type a command" : "Go to file… (type > for commands)"}
          value={query}
          onChange={(e) => {
            setQuery(e.target.value);
            setSelected(0);
          }}
          onKeyDown={onKeyDown}
          role="combobox"
          aria-expanded="true"
          aria-controls="palette-list"
        />
        <ul id="palette-list" className="palette-list" role="listbox">
          {isCommands
            ? commandHits.map((c, i) => (
                <li key={c.id} role="option" aria-selected={i === selected} className={`palette-item ${i === selected ? "is-selected" : ""}`} onMouseDown={() => choose(i)} onMouseEnter={() => setSelected(i)}>
                  <span className="palette-title">{c.title}</span>
                  {c.shortcut && <kbd className="palette-kbd">{c.shortcut}</kbd>}
                </li>
              ))
            : fileHits.map((h, i) => {
                const slash = h.path.lastIndexOf("/");
                return (
                  <li key={h.path} role="option" aria-selected={i === selected} className={`palette-item ${i === selected ? "is-selected" : ""}`} onMouseDown={() => choose(i)} onMouseEnter={() => setSelected(i)} data-path={h.path}>
                    <span className="palette-title">
                      <Highlighted text={h.path.slice(slash + 1)} positions={h.positions.filter((p) => p > slash).map((p) => p - slash - 1)} />
                    </span>
                    <span className="palette-dir">{slash > 0 ? h.path.slice(0, slash) : ""}</span>
                  </li>
                );
              })}
          {count === 0 && <li className="palette-empty">{isCommands ? "No matching command" : "No matching file"}</li>}
        </ul>
      </div>
    </Modal>
  );
}
