/** Who is signed in: checked once with /api/users/me, updated by login/register/logout and by any 401. */
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { ApiError, errorMessage } from "../../api/errors";
import { onUnauthorized } from "../../api/http";
import * as users from "../../api/users";
import type { User } from "../../api/types";

export type AuthState = { status: "loading" } | { status: "error"; message: string } | { status: "anonymous" } | { status: "signed_in"; user: User };

interface AuthValue {
  state: AuthState;
  login(username: string, password: string): Promise<void>;
  register(username: string, email: string, password: string): Promise<void>;
  logout(): Promise<void>;
  deleteAccount(password: string): Promise<void>;
  retry(): void;
}

const AuthContext = createContext<AuthValue | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<AuthState>({ status: "loading" });
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let cancelled = false;
    users.me().then(
      (user) => !cancelled && setState({ status: "signed_in", user }),
      (err: unknown) => {
        if (cancelled) return;
        if (err instanceof ApiError && (err.status === 401 || err.status === 403)) setState({ status: "anonymous" });
        else setState({ status: "error", message: errorMessage(err) });
      },
    );
    return () => {
      cancelled = true;
    };
  }, [attempt]);

  useEffect(() => onUnauthorized(() => setState((s) => (s.status === "signed_in" ? { status: "anonymous" } : s))), []);

  const login = useCallback(async (username: string, password: string) => {
    const res = await users.login(username, password);
    setState({ status: "signed_in", user: res.user });
  }, []);
  const register = useCallback(async (username: string, email: string, password: string) => {
    const res = await users.register(username, email, password);
    setState({ status: "signed_in", user: res.user });
  }, []);
  const logout = useCallback(async () => {
    try {
      await users.logout();
    } finally {
      setState({ status: "anonymous" });
    }
  }, []);
  const deleteAccount = useCallback(async (password: string) => {
    await users.deleteAccount(password);
    setState({ status: "anonymous" });
  }, []);
  const retry = useCallback(() => {
    setState({ status: "loading" });
    setAttempt((a) => a + 1);
  }, []);

  const value = useMemo(() => ({ state, login, register, logout, deleteAccount, retry }), [state, login, register, logout, deleteAccount, retry]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const v = useContext(AuthContext);
  if (!v) throw new Error("useAuth outside AuthProvider");
  return v;
}
