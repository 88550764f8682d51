/** Matching a pathname against route patterns like "/s/:uuid" (the app's few routes need nothing more). */

export type Params = Record<string, string>;

export function matchPath(pattern: string, pathname: string): Params | null {
  if (pattern === "*") return {};
  const strip = (s: string) => s.replace(/\/+$/, "") || "/";
  const pp = strip(pattern).split("/");
  const sp = strip(pathname).split("/");
  if (pp.length !== sp.length) return null;
  const params: Params = {};
  for (let i = 0; i < pp.length; i++) {
    const p = pp[i]!;
    const s = sp[i]!;
    if (p.startsWith(":")) {
      if (!s) return null;
      try {
        params[p.slice(1)] = decodeURIComponent(s);
      } catch {
        return null;
      }
    } else if (p !== s) {
      return null;
    }
  }
  return params;
}

/** A same-origin path for ?next= redirects, or "/" for anything else (an open-redirect guard). */
export function safeNextPath(next: string | null): string {
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/";
}
