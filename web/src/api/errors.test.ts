import { describe, expect, it } from "vitest";
import { ApiError, errorFromResponse, errorMessage } from "./errors";

describe("errorFromResponse", () => {
  it("reads the documented {error, message} body and keeps extra fields", () => {
    const e = errorFromResponse(409, JSON.stringify({ error: "version_conflict", message: "The file changed.", current_version: 7 }));
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(409);
    expect(e.code).toBe("version_conflict");
    expect(e.message).toBe("The file changed.");
    expect(e.currentVersion).toBe(7);
  });

  it("reads validation errors with their fields", () => {
    const e = errorFromResponse(
      422,
      JSON.stringify({ error: "validation_error", message: "Invalid request", fields: [{ loc: ["body", "password"], msg: "too short" }] }),
    );
    expect(e.code).toBe("validation_error");
    expect(e.fields).toEqual([{ loc: ["body", "password"], msg: "too short" }]);
    expect(errorMessage(e)).toBe("Invalid request password: too short");
  });

  it("understands FastAPI's default {detail} shapes", () => {
    expect(errorFromResponse(404, JSON.stringify({ detail: "Not Found" })).message).toBe("Not Found");
    expect(errorFromResponse(404, JSON.stringify({ detail: "Not Found" })).code).toBe("http_404");
    const v = errorFromResponse(422, JSON.stringify({ detail: [{ loc: ["body", "email"], msg: "not an email", type: "x" }] }));
    expect(v.code).toBe("validation_error");
    expect(v.message).toBe("email: not an email");
  });

  it("falls back to a status text for a body that is not JSON (e.g. a proxy's HTML page)", () => {
    const e = errorFromResponse(502, "<html>Bad gateway</html>");
    expect(e.code).toBe("http_502");
    expect(e.message).toMatch(/unreachable/);
    expect(errorFromResponse(418, "").message).toBe("Request failed (HTTP 418).");
  });

  it("tells how long to wait when rate limited", () => {
    const e = errorFromResponse(429, JSON.stringify({ error: "rate_limited", message: "Too many attempts.", retry_after: 29.2 }));
    expect(e.retryAfter).toBe(29.2);
    expect(errorMessage(e)).toBe("Too many attempts. (try again in 30 s)");
  });
});

describe("errorMessage", () => {
  it("handles anything thrown", () => {
    expect(errorMessage(new Error("boom"))).toBe("boom");
    expect(errorMessage("plain")).toBe("plain");
  });
});
