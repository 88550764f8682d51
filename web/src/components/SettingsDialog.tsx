/** The editor settings of the signed-in user: font size, tab size, word wrap, key bindings, theme (saved on the server). */
import { useState, type FormEvent } from "react";
import { errorMessage } from "../api/errors";
import type { Preferences } from "../api/types";
import { Modal } from "./Dialog";

export function SettingsDialog({ initial, onSave, onClose }: { initial: Preferences; onSave(p: Preferences): Promise<void>; onClose(): void }) {
  const [p, setP] = useState<Preferences>(initial);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!Number.isInteger(p.font_size) || p.font_size < 8 || p.font_size > 40) {
      setError("Font size: a whole number from 8 to 40.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await onSave(p);
      onClose();
    } catch (err) {
      setError(errorMessage(err));
      setBusy(false);
    }
  };
  return (
    <Modal labelledBy="settings-title" onCancel={onClose}>
      <form onSubmit={(e) => void submit(e)} className="settings-form">
        <h2 id="settings-title">Settings</h2>
        <label>
          Font size
          <input className="input" type="number" min={8} max={40} value={p.font_size} data-autofocus onChange={(e) => setP({ ...p, font_size: Number(e.target.value) })} />
        </label>
        <label>
          Tab size
          <select className="input" value={p.tab_size} onChange={(e) => setP({ ...p, tab_size: Number(e.target.value) })}>
            {[2, 3, 4, 8].map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <label className="settings-check">
          <input type="checkbox" checked={p.word_wrap} onChange={(e) => setP({ ...p, word_wrap: e.target.checked })} />
          Word wrap
        </label>
        <label>
          Key bindings
          <select className="input" value={p.key_bindings} onChange={(e) => setP({ ...p, key_bindings: e.target.value as Preferences["key_bindings"] })}>
            <option value="default">Default</option>
            <option value="vim">Vim</option>
          </select>
        </label>
        <label>
          Theme
          <select className="input" value={p.theme} onChange={(e) => setP({ ...p, theme: e.target.value as Preferences["theme"] })}>
            <option value="system">System</option>
            <option value="dark">Dark</option>
            <option value="light">Light</option>
          </select>
        </label>
        {error && (
          <p className="form-error" role="alert">
            {error}
          </p>
        )}
        <div className="dialog-actions">
          <button type="button" className="btn" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" disabled={busy}>
            Save
          </button>
        </div>
      </form>
    </Modal>
  );
}
