/**
 * What the editor previews instead of (or beside) the text: images and Markdown. Markdown is rendered
 * with marked and then sanitized by DOMPurify (no script, no event handlers, no javascript: URLs);
 * images, SVG included, are shown through <img> from a blob URL, where an SVG's script never runs.
 */
import DOMPurify from "dompurify";
import { Marked, type Token } from "marked";

const IMAGE_TYPES: Record<string, string> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  bmp: "image/bmp",
  ico: "image/x-icon",
  svg: "image/svg+xml",
};

function extension(path: string): string {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
}

/** The image MIME type of a path, or null when it is not a previewable image. */
export function imageType(path: string): string | null {
  return IMAGE_TYPES[extension(path)] ?? null;
}

export function isMarkdown(path: string): boolean {
  const ext = extension(path);
  return ext === "md" || ext === "markdown";
}

// Raw HTML inside Markdown has its event-handler attributes renamed before DOMPurify parses it: they
// would be removed anyway, but Chromium reports a CSP violation for an inline handler as soon as it
// parses one, even in DOMPurify's inert document. Safety does not rest on this: DOMPurify does it.
const HANDLER_ATTR = /([\s/"'])on([a-z]+\s*=)/gi;
const markdown = new Marked({
  gfm: true,
  walkTokens(token: Token) {
    if (token.type === "html") token.text = token.text.replace(HANDLER_ATTR, "$1data-removed-on$2");
  },
});

/** Markdown as sanitized HTML (safe to insert). */
export function renderMarkdown(source: string): string {
  const html = markdown.parse(source, { async: false });
  return DOMPurify.sanitize(html, {
    USE_PROFILES: { html: true },
    FORBID_TAGS: ["style", "form", "iframe"],
    FORBID_ATTR: ["style"],
    ALLOW_DATA_ATTR: false,
  });
}
