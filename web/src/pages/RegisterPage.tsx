import { useState, type FormEvent, type ReactElement } from "react";
import { Link, useLocation } from "../modules/router/router";
import { ApiError, errorMessage } from "../api/errors";
import { Brand } from "../components/Brand";
import { ThemeToggle } from "../components/ThemeToggle";
import { useAuth } from "../modules/auth/AuthContext";

type FieldName = "username" | "email" | "password";

/** Server field errors by form field, from a 422's `fields` (`loc` ends with the field name). */
function fieldErrors(err: unknown): Partial<Record<FieldName, string>> {
  const out: Partial<Record<FieldName, string>> = {};
  if (!(err instanceof ApiError)) return out;
  for (const f of err.fields) {
    const name = f.loc[f.loc.length - 1];
    if (name === "username" || name === "email" || name === "password") out[name] ??= f.msg;
  }
  return out;
}

export function RegisterPage() {
  const { register } = useAuth();
  const location = useLocation();
  const [username, setUsername] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [fields, setFields] = useState<Partial<Record<FieldName, string>>>({});

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setFields({});
    try {
      await register(username.trim(), email.trim(), password);
    } catch (err) {
      const byField = fieldErrors(err);
      setFields(byField);
      setError(Object.keys(byField).length > 0 ? "Please correct the fields below." : errorMessage(err));
      setBusy(false);
    }
  };

  const field = (id: FieldName, label: string, input: ReactElement, hint?: string) => (
    <div className="field">
      <label htmlFor={`reg-${id}`}>{label}</label>
      {input}
      {fields[id] ? (
        <span className="field-error" id={`reg-${id}-error`}>{fields[id]}</span>
      ) : hint ? (
        <span className="field-hint">{hint}</span>
      ) : null}
    </div>
  );

  return (
    <main className="auth-shell">
      <div className="auth-card">
        <div style={{ display: "flex", justifyContent: "space-between", alignItems: "center" }}>
          <Brand />
          <ThemeToggle />
        </div>
        <h1>Create your account</h1>
        <p className="subtitle">Code in your browser, run it in a sandbox.</p>
        {error && (
          <div className="alert alert-error" role="alert">
            {error}
          </div>
        )}
        <form onSubmit={onSubmit} noValidate>
          {field(
            "username",
            "Username",
            <input id="reg-username" className="input" autoComplete="username" autoFocus value={username} aria-invalid={fields.username ? true : undefined} aria-describedby={fields.username ? "reg-username-error" : undefined} onChange={(e) => setUsername(e.target.value)} />,
          )}
          {field(
            "email",
            "Email",
            <input id="reg-email" className="input" type="email" autoComplete="email" value={email} aria-invalid={fields.email ? true : undefined} aria-describedby={fields.email ? "reg-email-error" : undefined} onChange={(e) => setEmail(e.target.value)} />,
          )}
          {field(
            "password",
            "Password",
            <input id="reg-password" className="input" type="password" autoComplete="new-password" value={password} aria-invalid={fields.password ? true : undefined} aria-describedby={fields.password ? "reg-password-error" : undefined} onChange={(e) => setPassword(e.target.value)} />,
            "At least 8 characters.",
          )}
          <button className="btn btn-primary btn-block" type="submit" disabled={busy || !username.trim() || !email.trim() || !password}>
            {busy ? "Creating account…" : "Create account"}
          </button>
        </form>
        <div className="auth-footer">
          Already have an account? <Link to={`/login${location.search}`}>Sign in</Link>
        </div>
      </div>
    </main>
  );
}
