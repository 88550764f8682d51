import { describe, expect, it } from "vitest";
import { matchPath, safeNextPath } from "./matchRoute";

describe("matchPath", () => {
  it("matches static and parameterized routes", () => {
    expect(matchPath("/", "/")).toEqual({});
    expect(matchPath("/login", "/login/")).toEqual({});
    expect(matchPath("/login", "/register")).toBeNull();
    expect(matchPath("/s/:uuid", "/s/abc-123")).toEqual({ uuid: "abc-123" });
    expect(matchPath("/s/:uuid", "/s/")).toBeNull();
    expect(matchPath("/s/:uuid", "/s/a/b")).toBeNull();
    expect(matchPath("/s/:uuid", "/s/%E2%9C%93")).toEqual({ uuid: "✓" });
    expect(matchPath("*", "/anything/else")).toEqual({});
  });
  it("only follows same-origin ?next= paths", () => {
    expect(safeNextPath("/s/1")).toBe("/s/1");
    expect(safeNextPath("//evil.example")).toBe("/");
    expect(safeNextPath("/\\evil.example")).toBe("/");
    expect(safeNextPath("https://evil.example")).toBe("/");
    expect(safeNextPath(null)).toBe("/");
  });
});
