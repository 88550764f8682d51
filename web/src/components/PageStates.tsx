/** Full-page loading and error states shared by every page. */
import type { ReactNode } from "react";

export function Spinner({ small, label }: { small?: boolean; label?: string }) {
  return <span className={small ? "spinner spinner-sm" : "spinner"} role="status" aria-label={label ?? "Loading"} />;
}

export function FullPageSpinner({ label }: { label: string }) {
  return (
    <div className="page-center" aria-busy="true">
      <Spinner label={label} />
      <div>{label}</div>
    </div>
  );
}

export function FullPageError({ title, message, onRetry, children }: { title: string; message: string; onRetry?: () => void; children?: ReactNode }) {
  return (
    <div className="page-center" role="alert">
      <h1>{title}</h1>
      <div>{message}</div>
      <div style={{ display: "flex", gap: 8 }}>
        {onRetry && (
          <button className="btn btn-primary" onClick={onRetry}>
            Try again
          </button>
        )}
        {children}
      </div>
    </div>
  );
}
