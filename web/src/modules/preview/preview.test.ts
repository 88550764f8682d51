// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { imageType, isMarkdown, renderMarkdown } from "./preview";

describe("renderMarkdown", () => {
  it("renders Markdown", () => {
    expect(renderMarkdown("# Title\n\n**bold**")).toContain("<h1");
    expect(renderMarkdown("**bold**")).toContain("<strong>bold</strong>");
  });

  it("drops scripts, event handlers and javascript: links", () => {
    const html = renderMarkdown('<script>alert(1)</script>\n\n<img src="x" onerror="alert(2)">\n\n[x](javascript:alert(3))\n\n<a href="javascript:alert(4)">y</a>');
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/onerror/i);
    expect(html).not.toMatch(/javascript:/i);
  });
});

describe("preview kinds", () => {
  it("knows images and Markdown by extension", () => {
    expect(imageType("a/logo.SVG")).toBe("image/svg+xml");
    expect(imageType("photo.jpeg")).toBe("image/jpeg");
    expect(imageType("main.py")).toBeNull();
    expect(isMarkdown("README.md")).toBe(true);
    expect(isMarkdown("notes.txt")).toBe(false);
  });
});

describe("renderMarkdown without the attribute renaming", () => {
  it("still strips handlers that the renaming misses (DOMPurify is the wall)", () => {
    const html = renderMarkdown('<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>\n\n<img src=x\nonerror=alert(1)>\n\n<p onclick=alert(1)>para</p>');
    expect(html).not.toMatch(/onerror|onclick|javascript:/i);
  });
});
