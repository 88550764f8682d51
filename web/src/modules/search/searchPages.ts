/** Paged search answers: each page continues the previous one (the server's `next` cursor), and a file's lines may be split across two pages. */
import type { SearchResult } from "../../api/types";

/** The results shown so far with the next page appended: a file the previous page ended in gets the rest of its lines, counts add up, and `next`/`truncated` are the new page's. */
export function appendSearchPage(shown: SearchResult, page: SearchResult): SearchResult {
  const files = shown.files.slice();
  for (const f of page.files) {
    const last = files[files.length - 1];
    if (last && last.path === f.path) files[files.length - 1] = { ...last, matches: [...last.matches, ...f.matches] };
    else files.push(f);
  }
  return { files, match_count: shown.match_count + page.match_count, truncated: page.truncated, next: page.next };
}
