/**
 * A minimal history router (pushState + popstate) with the parts of the react-router API this app uses:
 * Router, Routes/Route, Link, Navigate, useLocation, useNavigate, useParams. It keeps the first-load bundle small.
 */
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type AnchorHTMLAttributes, type MouseEvent, type ReactElement, type ReactNode } from "react";
import { matchPath, type Params } from "./matchRoute";

export interface RouterLocation {
  pathname: string;
  search: string;
}

type NavigateFn = (to: string, opts?: { replace?: boolean }) => void;

interface RouterValue {
  location: RouterLocation;
  navigate: NavigateFn;
}

const RouterContext = createContext<RouterValue | null>(null);
const ParamsContext = createContext<Params>({});

const current = (): RouterLocation => ({ pathname: window.location.pathname, search: window.location.search });

export function Router({ children }: { children: ReactNode }) {
  const [location, setLocation] = useState(current);
  useEffect(() => {
    const onPop = () => setLocation(current());
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);
  const navigate = useCallback<NavigateFn>((to, opts) => {
    if (opts?.replace) window.history.replaceState(null, "", to);
    else window.history.pushState(null, "", to);
    setLocation(current());
    window.scrollTo(0, 0);
  }, []);
  const value = useMemo(() => ({ location, navigate }), [location, navigate]);
  return <RouterContext.Provider value={value}>{children}</RouterContext.Provider>;
}

function useRouter(): RouterValue {
  const v = useContext(RouterContext);
  if (!v) throw new Error("router hook outside <Router>");
  return v;
}

export const useLocation = (): RouterLocation => useRouter().location;
export const useNavigate = (): NavigateFn => useRouter().navigate;
export const useParams = (): Params => useContext(ParamsContext);

export interface RouteProps {
  path: string;
  element: ReactNode;
}

/** Declares a route; only meaningful as a child of <Routes>. */
export function Route(_props: RouteProps): null {
  return null;
}

/** Renders the element of the first <Route> whose path matches. */
export function Routes({ children }: { children: ReactElement<RouteProps>[] }) {
  const { location } = useRouter();
  for (const child of children) {
    const params = matchPath(child.props.path, location.pathname);
    if (params) return <ParamsContext.Provider value={params}>{child.props.element}</ParamsContext.Provider>;
  }
  return null;
}

export function Navigate({ to, replace }: { to: string; replace?: boolean }) {
  const navigate = useNavigate();
  useEffect(() => navigate(to, { replace: replace ?? false }), [navigate, to, replace]);
  return null;
}

type LinkProps = Omit<AnchorHTMLAttributes<HTMLAnchorElement>, "href"> & { to: string };

/** An <a> that navigates in place on a plain left click and behaves like a link otherwise (new tab, copy). */
export function Link({ to, onClick, ...rest }: LinkProps) {
  const navigate = useNavigate();
  const handle = (e: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(e);
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey || rest.target) return;
    e.preventDefault();
    navigate(to);
  };
  return <a href={to} onClick={handle} {...rest} />;
}
