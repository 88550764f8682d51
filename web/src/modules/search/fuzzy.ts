/**
 * Fuzzy matching of file paths for quick open (Ctrl+P): the query's characters must appear in order;
 * consecutive characters, a start of a name or word and the file name (over its folders) score higher.
 */

export interface FuzzyHit {
  path: string;
  score: number;
  /** Indexes in `path` of the matched characters (for highlighting). */
  positions: number[];
}

function isBoundary(path: string, i: number): boolean {
  if (i === 0) return true;
  const prev = path.charCodeAt(i - 1);
  // '/', '_', '-', '.', ' ' or a lower->upper case change start a word
  if (prev === 47 || prev === 95 || prev === 45 || prev === 46 || prev === 32) return true;
  const c = path[i]!;
  return c !== c.toLowerCase() && path[i - 1] === path[i - 1]!.toLowerCase();
}

/** The score of `path` for `query` (lower-cased, no spaces) with the matched indexes written to
 * `out`, or null when it does not match. No allocation: it runs for every path on every keystroke. */
function scoreInto(path: string, lowerPath: string, query: string, out: Int32Array): number | null {
  const nameStart = path.lastIndexOf("/") + 1;
  // Prefer matching inside the file name: scan from the end, so the match sits as late as it can.
  let qi = query.length - 1;
  for (let i = lowerPath.length - 1; i >= 0 && qi >= 0; i--) {
    if (lowerPath.charCodeAt(i) === query.charCodeAt(qi)) out[qi--] = i;
  }
  if (qi >= 0) return null;
  let score = 0;
  for (let k = 0; k < query.length; k++) {
    const p = out[k]!;
    score += 1;
    if (k > 0 && out[k - 1] === p - 1) score += 5;
    if (isBoundary(path, p)) score += 4;
    if (p >= nameStart) score += 2;
  }
  if (lowerPath.startsWith(query, nameStart)) score += 10;
  return score - path.length * 0.01;
}

/** The score of `path` for `query` (lower-cased, no spaces), or null when it does not match. */
export function fuzzyScore(path: string, lowerPath: string, query: string): FuzzyHit | null {
  if (query.length === 0) return { path, score: 0, positions: [] };
  const out = new Int32Array(query.length);
  const score = scoreInto(path, lowerPath, query, out);
  return score === null ? null : { path, score, positions: Array.from(out) };
}

export interface FuzzyIndex {
  paths: string[];
  lower: string[];
}

export function buildIndex(paths: string[]): FuzzyIndex {
  return { paths, lower: paths.map((p) => p.toLowerCase()) };
}

const better = (a: { score: number; path: string }, b: { score: number; path: string }) => b.score - a.score || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

/** The best `limit` matches of `query` among the index's paths, best first (a bounded top-k: no sort of every match). */
export function fuzzySearch(index: FuzzyIndex, rawQuery: string, limit = 50): FuzzyHit[] {
  const query = rawQuery.toLowerCase().replace(/\s+/g, "");
  if (query.length === 0) return index.paths.slice(0, limit).map((path) => ({ path, score: 0, positions: [] }));
  const out = new Int32Array(query.length);
  const top: { score: number; path: string; i: number }[] = [];
  for (let i = 0; i < index.paths.length; i++) {
    const path = index.paths[i]!;
    const score = scoreInto(path, index.lower[i]!, query, out);
    if (score === null) continue;
    if (top.length === limit && better({ score, path }, top[limit - 1]!) >= 0) continue;
    let at = top.length;
    while (at > 0 && better({ score, path }, top[at - 1]!) < 0) at--;
    top.splice(at, 0, { score, path, i });
    if (top.length > limit) top.pop();
  }
  return top.map((t) => {
    scoreInto(t.path, index.lower[t.i]!, query, out);
    return { path: t.path, score: t.score, positions: Array.from(out) };
  });
}
