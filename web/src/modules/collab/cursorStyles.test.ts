import { describe, expect, it } from "vitest";
import { cssString, cursorCss } from "./cursorStyles";

describe("cursorCss", () => {
  it("labels each remote cursor with its name and colour, never our own", () => {
    const css = cursorCss([[1, { user: { name: "ann", color: "#e06c75" } }], [2, { user: { name: "me", color: "#61afef" } }]], 2);
    expect(css).toContain(".yRemoteSelectionHead-1::after{content:\"ann\"");
    expect(css).toContain("border-left:2px solid #e06c75");
    expect(css).not.toContain("-2{");
  });
  it("escapes names and refuses colours that are not #rrggbb (no CSS injection)", () => {
    expect(cssString('a"}b\\')).toBe('"a\\"}b\\\\"');
    const css = cursorCss([[3, { user: { name: "x", color: "red;}body{display:none" } }]], 0);
    expect(css).not.toContain("display:none");
    expect(css).toContain("#888888");
  });
});
