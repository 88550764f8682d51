import { lazy, Suspense, useEffect, useState, type ReactNode } from "react";
import { Navigate, Route, Routes, useLocation } from "./modules/router/router";
import { FullPageError, FullPageSpinner } from "./components/PageStates";
import { useAuth } from "./modules/auth/AuthContext";
import { safeNextPath } from "./modules/router/matchRoute";
import { DashboardPage } from "./pages/DashboardPage";
import { LoginPage } from "./pages/LoginPage";
import { NotFoundPage } from "./pages/NotFoundPage";
import { PublicLinkPage } from "./pages/PublicLinkPage";
import { RegisterPage } from "./pages/RegisterPage";

// The IDE (with Monaco and xterm) is its own chunk: the login page and dashboard load without it.
type WorkspaceModule = typeof import("./pages/WorkspacePage");
let workspaceModule: WorkspaceModule | null = null;
const loadWorkspacePage = () => import("./pages/WorkspacePage").then((m) => (workspaceModule = m));
const LazyWorkspacePage = lazy(loadWorkspacePage);

/** The IDE, at once when its chunk is already here (prefetched on the login page): through
 * React.lazy it would suspend for a tick, and React keeps a fallback it has shown for 300 ms. */
function WorkspacePage() {
  const [Loaded] = useState(() => workspaceModule?.default ?? null);
  return Loaded ? <Loaded /> : <LazyWorkspacePage />;
}

function RequireAuth({ children }: { children: ReactNode }) {
  const { state, retry } = useAuth();
  const location = useLocation();
  if (state.status === "loading") return <FullPageSpinner label="Checking your session…" />;
  if (state.status === "error") return <FullPageError title="Cannot reach the server" message={state.message} onRetry={retry} />;
  if (state.status === "anonymous") {
    const next = location.pathname + location.search;
    return <Navigate to={`/login${next !== "/" ? `?next=${encodeURIComponent(next)}` : ""}`} replace />;
  }
  return <>{children}</>;
}

function GuestOnly({ children }: { children: ReactNode }) {
  const { state } = useAuth();
  const location = useLocation();
  const next = new URLSearchParams(location.search).get("next");
  const nextIsWorkspace = safeNextPath(next).startsWith("/s/");
  // Signing in to open a workspace: fetch and evaluate the IDE's chunk while the user types, so it
  // is not on the way from "Sign in" to the terminal (the login page's own first load is unchanged).
  useEffect(() => {
    // A failure here is not the user's concern yet: the route loads the chunk again when it is needed.
    if (nextIsWorkspace) loadWorkspacePage().catch(() => undefined);
  }, [nextIsWorkspace]);
  if (state.status === "loading") return <FullPageSpinner label="Loading…" />;
  if (state.status === "signed_in") return <Navigate to={safeNextPath(next)} replace />;
  return <>{children}</>;
}

export function App() {
  return (
    <Routes>
      <Route path="/login" element={<GuestOnly><LoginPage /></GuestOnly>} />
      <Route path="/register" element={<GuestOnly><RegisterPage /></GuestOnly>} />
      <Route path="/" element={<RequireAuth><DashboardPage /></RequireAuth>} />
      <Route
        path="/s/:uuid"
        element={
          <RequireAuth>
            <Suspense fallback={<FullPageSpinner label="Loading the editor…" />}>
              <WorkspacePage />
            </Suspense>
          </RequireAuth>
        }
      />
      <Route path="/p/:token" element={<PublicLinkPage />} />
      <Route path="*" element={<NotFoundPage />} />
    </Routes>
  );
}
