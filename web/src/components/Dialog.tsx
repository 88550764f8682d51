/** Modal dialogs: a confirmation and a one-field prompt. Escape cancels; focus starts inside and is trapped. */
import { useEffect, useId, useRef, useState, type KeyboardEvent, type ReactNode } from "react";

export function Modal({ labelledBy, onCancel, children }: { labelledBy: string; onCancel: () => void; children: ReactNode }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const previous = document.activeElement as HTMLElement | null;
    const el = ref.current;
    const first = el?.querySelector<HTMLElement>("[data-autofocus]") ?? el?.querySelector<HTMLElement>("button, input");
    first?.focus();
    return () => previous?.focus?.();
  }, []);
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === "Escape") {
      e.stopPropagation();
      onCancel();
    } else if (e.key === "Tab" && ref.current) {
      const focusable = Array.from(ref.current.querySelectorAll<HTMLElement>("button:not(:disabled), input, select"));
      if (focusable.length === 0) return;
      const first = focusable[0]!;
      const last = focusable[focusable.length - 1]!;
      if (e.shiftKey && document.activeElement === first) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && document.activeElement === last) {
        e.preventDefault();
        first.focus();
      }
    }
  };
  return (
    <div className="dialog-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onCancel()}>
      <div className="dialog" role="dialog" aria-modal="true" aria-labelledby={labelledBy} ref={ref} onKeyDown={onKeyDown}>
        {children}
      </div>
    </div>
  );
}

export function ConfirmDialog(props: {
  title: string;
  message: ReactNode;
  confirmLabel: string;
  danger?: boolean;
  busy?: boolean;
  error?: string | null;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const id = useId();
  return (
    <Modal labelledBy={id} onCancel={props.onCancel}>
      <h2 id={id}>{props.title}</h2>
      <p>{props.message}</p>
      {props.error && <div className="alert alert-error" role="alert">{props.error}</div>}
      <div className="dialog-actions">
        <button className="btn" onClick={props.onCancel} data-autofocus>
          Cancel
        </button>
        <button className={props.danger ? "btn btn-danger" : "btn btn-primary"} onClick={props.onConfirm} disabled={props.busy}>
          {props.busy ? "Working…" : props.confirmLabel}
        </button>
      </div>
    </Modal>
  );
}

export function PromptDialog(props: {
  title: string;
  label: string;
  initialValue: string;
  confirmLabel: string;
  busy?: boolean;
  error?: string | null;
  validate?: (value: string) => string | null;
  /** "password": a masked field whose value is passed on as typed (not trimmed). */
  inputType?: "text" | "password";
  danger?: boolean;
  onConfirm: (value: string) => void;
  onCancel: () => void;
}) {
  const id = useId();
  const inputId = useId();
  const secret = props.inputType === "password";
  const [value, setValue] = useState(props.initialValue);
  const [touched, setTouched] = useState(false);
  const problem = props.validate?.(value) ?? null;
  const shown = (touched && problem) || props.error || null;
  return (
    <Modal labelledBy={id} onCancel={props.onCancel}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setTouched(true);
          if (!problem) props.onConfirm(secret ? value : value.trim());
        }}
      >
        <h2 id={id}>{props.title}</h2>
        <div className="field">
          <label htmlFor={inputId}>{props.label}</label>
          <input
            id={inputId}
            className="input"
            type={secret ? "password" : "text"}
            autoComplete={secret ? "current-password" : undefined}
            value={value}
            data-autofocus
            aria-invalid={shown ? true : undefined}
            onChange={(e) => {
              setValue(e.target.value);
              setTouched(true);
            }}
            onFocus={(e) => e.target.select()}
          />
          {shown && <span className="field-error" role="alert">{shown}</span>}
        </div>
        <div className="dialog-actions">
          <button type="button" className="btn" onClick={props.onCancel}>
            Cancel
          </button>
          <button type="submit" className={props.danger ? "btn btn-danger" : "btn btn-primary"} disabled={props.busy || Boolean(problem)}>
            {props.busy ? "Working…" : props.confirmLabel}
          </button>
        </div>
      </form>
    </Modal>
  );
}
