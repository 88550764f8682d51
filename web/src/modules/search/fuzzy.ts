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

/** The score of `path` for `query` (lower-cased, no spaces), or null when it does not match. */
export function fuzzyScore(path: string, lowerPath: string, query: string): FuzzyHit | null {
  if (query.length === 0) return { path, score: 0, positions: [] };
  const nameStart = path.lastIndexOf("/") + 1;
  // Prefer matching inside the file name: start the scan as late as still lets the whole query match.
  const positions: number[] = [];
  let qi = query.length - 1;
  for (let i = lowerPath.length - 1; i >= 0 && qi >= 0; i--) {
    if (lowerPath.charCodeAt(i) === query.charCodeAt(qi)) {
      positions.push(i);
      qi--;
    }
  }
  if (qi >= 0) return null;
  positions.reverse();
  let score = 0;
  for (let k = 0; k < positions.length; k++) {
    const p = positions[k]!;
    score += 1;
    if (k > 0 && positions[k - 1] === p - 1) score += 5;
    if (isBoundary(path, p)) score += 4;
    if (p >= nameStart) score += 2;
  }
  if (lowerPath.slice(nameStart).startsWith(query)) score += 10;
  score -= path.length * 0.01;
  return { path, score, positions };
}

export interface FuzzyIndex {
  paths: string[];
  lower: string[];
}

export function buildIndex(paths: string[]): FuzzyIndex {
  return { paths, lower: paths.map((p) => p.toLowerCase()) };
}

/** The best `limit` matches of `query` among the index's paths, best first. */
export function fuzzySearch(index: FuzzyIndex, rawQuery: string, limit = 50): FuzzyHit[] {
  const query = rawQuery.toLowerCase().replace(/\s+/g, "");
  const hits: FuzzyHit[] = [];
  for (let i = 0; i < index.paths.length; i++) {
    const hit = fuzzyScore(index.paths[i]!, index.lower[i]!, query);
    if (hit) hits.push(hit);
  }
  hits.sort((a, b) => b.score - a.score || a.path.localeCompare(b.path));
  return hits.slice(0, limit);
}
