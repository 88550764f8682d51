import { useState, type FormEvent } from "react";
import { Link, useLocation } from "../modules/router/router";
import { ApiError, errorMessage } from "../api/errors";
import { Brand } from "../components/Brand";
import { ThemeToggle } from "../components/ThemeToggle";
import { useAuth } from "../modules/auth/AuthContext";

export function LoginPage() {
  const { login } = useAuth();
  const location = useLocation();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await login(username.trim(), password);
      // GuestOnly redirects to ?next= once signed in.
    } catch (err) {
      setError(err instanceof ApiError && err.code === "invalid_credentials" ? "Wrong username or password." : errorMessage(err));
      setBusy(false);
    }
  };

  return (
    <main className="auth-shell">
      <div className="auth-card">
        <div style={{ display: "flex", justifyContent: "space-between", alignItems: "center" }}>
          <Brand />
          <ThemeToggle />
        </div>
        <h1>Sign in</h1>
        <p className="subtitle">Welcome back. Your workspaces are waiting.</p>
        {error && (
          <div className="alert alert-error" role="alert">
            {error}
          </div>
        )}
        <form onSubmit={onSubmit} noValidate>
          <div className="field">
            <label htmlFor="login-username">Username or email</label>
            <input id="login-username" className="input" autoComplete="username" autoFocus required value={username} onChange={(e) => setUsername(e.target.value)} />
          </div>
          <div className="field">
            <label htmlFor="login-password">Password</label>
            <input id="login-password" className="input" type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
          </div>
          <button className="btn btn-primary btn-block" type="submit" disabled={busy || !username.trim() || !password}>
            {busy ? "Signing in…" : "Sign in"}
          </button>
        </form>
        <div className="auth-footer">
          New here? <Link to={`/register${location.search}`}>Create an account</Link>
        </div>
      </div>
    </main>
  );
}
