import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError } from "./errors";
import { buildUrl, encodePath, onUnauthorized, request, setFetch, wsUrl } from "./http";
import { writeFile } from "./workspace";

function respond(status: number, body: string, contentType = "application/json") {
  return vi.fn(async (_input: string, _init: RequestInit) => new Response(status === 204 ? null : body, { status, headers: { "Content-Type": contentType } }));
}

afterEach(() => setFetch((i, init) => fetch(i, init)));

describe("request", () => {
  it("sends JSON with same-origin credentials and parses the answer", async () => {
    const f = respond(200, JSON.stringify({ ok: true }));
    setFetch(f);
    await expect(request("/api/x", { method: "POST", body: { a: 1 } })).resolves.toEqual({ ok: true });
    const [url, init] = f.mock.calls[0]!;
    expect(url).toBe("/api/x");
    expect(init.credentials).toBe("same-origin");
    expect(init.method).toBe("POST");
    expect(init.body).toBe('{"a":1}');
    expect((init.headers as Record<string, string>)["Content-Type"]).toBe("application/json");
  });

  it("returns undefined for 204", async () => {
    setFetch(respond(204, ""));
    await expect(request("/api/x", { method: "DELETE" })).resolves.toBeUndefined();
  });

  it("throws a typed ApiError with the server's code and message", async () => {
    setFetch(respond(401, JSON.stringify({ error: "invalid_credentials", message: "Wrong username or password" })));
    const err = await request("/api/users/login", { method: "POST", body: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe("invalid_credentials");
    expect((err as ApiError).message).toBe("Wrong username or password");
  });

  it("turns a failed fetch into a network_error", async () => {
    setFetch(async () => {
      throw new TypeError("Failed to fetch");
    });
    const err = (await request("/api/x").catch((e: unknown) => e)) as ApiError;
    expect(err.code).toBe("network_error");
    expect(err.isNetworkError).toBe(true);
  });

  it("rejects a success answer that is not JSON", async () => {
    setFetch(respond(200, "<html></html>", "text/html"));
    await expect(request("/api/x")).rejects.toMatchObject({ code: "bad_response" });
  });

  it("tells listeners about 401 so the app can show the login page", async () => {
    const listener = vi.fn();
    const off = onUnauthorized(listener);
    setFetch(respond(401, JSON.stringify({ error: "not_authenticated", message: "Sign in" })));
    await request("/api/sessions/").catch(() => undefined);
    expect(listener).toHaveBeenCalledTimes(1);
    off();
  });

  it("sends base_version with a save and reports a 409 conflict's current version", async () => {
    const f = respond(409, JSON.stringify({ error: "version_conflict", message: "stale", current_version: 4 }));
    setFetch(f);
    const err = (await writeFile("u-1", "src/my file.py", "x", 3).catch((e: unknown) => e)) as ApiError;
    expect(f.mock.calls[0]![0]).toBe("/api/workspace/u-1/file/src/my%20file.py");
    expect(JSON.parse(f.mock.calls[0]![1].body as string)).toEqual({ content: "x", encoding: "utf-8", base_version: 3 });
    expect(err.status).toBe(409);
    expect(err.currentVersion).toBe(4);
  });
});

describe("URLs", () => {
  it("encodes each path segment but keeps the slashes", () => {
    expect(encodePath("a b/c#d/é.py")).toBe("a%20b/c%23d/%C3%A9.py");
  });
  it("builds query strings and skips undefined values", () => {
    expect(buildUrl("/x", { a: 1, b: undefined, c: "z z" })).toBe("/x?a=1&c=z+z");
    expect(buildUrl("/x", {})).toBe("/x");
  });
  it("makes ws:// and wss:// URLs on the page's own host", () => {
    expect(wsUrl("/api/t", { cols: 80 }, { protocol: "http:", host: "localhost:5173" })).toBe("ws://localhost:5173/api/t?cols=80");
    expect(wsUrl("/api/t", undefined, { protocol: "https:", host: "cc.example" })).toBe("wss://cc.example/api/t");
  });
});
