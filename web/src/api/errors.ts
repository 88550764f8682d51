/** Typed errors of the API client: every failed request becomes an ApiError with the server's code and message. */

export interface FieldError {
  loc: (string | number)[];
  msg: string;
}

/** An error answered by the server (4xx/5xx) or a failure to reach it (`status` 0, code `network_error`). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly fields: FieldError[];
  /** Everything else the error body carried (`retry_after`, `current_version`, ...). */
  readonly extra: Record<string, unknown>;

  constructor(status: number, code: string, message: string, fields: FieldError[] = [], extra: Record<string, unknown> = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.fields = fields;
    this.extra = extra;
  }

  get isNetworkError(): boolean {
    return this.status === 0;
  }

  /** Seconds to wait, for 429 `rate_limited`. */
  get retryAfter(): number | null {
    const v = this.extra["retry_after"];
    return typeof v === "number" ? v : null;
  }

  /** The server's version of a file, for 409 `version_conflict`. */
  get currentVersion(): number | null {
    const v = this.extra["current_version"];
    return typeof v === "number" ? v : null;
  }
}

const STATUS_TEXT: Record<number, string> = {
  400: "The request was not valid.",
  401: "You are not signed in.",
  403: "You are not allowed to do that.",
  404: "Not found.",
  409: "It changed meanwhile: conflict.",
  413: "Too large.",
  422: "Some fields are not valid.",
  429: "Too many requests; try again shortly.",
  500: "The server had an error.",
  502: "The server is unreachable (bad gateway).",
  503: "The server is temporarily unavailable.",
};

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function parseFields(v: unknown): FieldError[] {
  if (!Array.isArray(v)) return [];
  const out: FieldError[] = [];
  for (const f of v) {
    if (isRecord(f) && typeof f["msg"] === "string") {
      const loc = Array.isArray(f["loc"]) ? (f["loc"] as unknown[]).filter((x): x is string | number => typeof x === "string" || typeof x === "number") : [];
      out.push({ loc, msg: f["msg"] });
    }
  }
  return out;
}

/** Human text for a validation error's fields: "password: too short; email: not an email". */
export function describeFields(fields: FieldError[]): string {
  return fields
    .map((f) => {
      const where = f.loc.filter((x) => x !== "body").join(".");
      return where ? `${where}: ${f.msg}` : f.msg;
    })
    .join("; ");
}

/**
 * Builds the ApiError for a response status and its body text. Accepts the documented
 * `{error, message, ...}` shape, FastAPI's default `{detail}` shape, or anything else (e.g. an HTML proxy page).
 */
export function errorFromResponse(status: number, bodyText: string): ApiError {
  let body: unknown = null;
  try {
    body = bodyText ? JSON.parse(bodyText) : null;
  } catch {
    body = null;
  }
  const fallback = STATUS_TEXT[status] ?? `Request failed (HTTP ${status}).`;
  if (!isRecord(body)) return new ApiError(status, `http_${status}`, fallback);

  const fields = parseFields(body["fields"] ?? body["detail"]);
  const code = typeof body["error"] === "string" ? body["error"] : fields.length > 0 ? "validation_error" : `http_${status}`;
  let message: string;
  if (typeof body["message"] === "string" && body["message"]) message = body["message"];
  else if (typeof body["detail"] === "string" && body["detail"]) message = body["detail"];
  else if (fields.length > 0) message = describeFields(fields);
  else message = fallback;

  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) {
    if (k !== "error" && k !== "message" && k !== "fields" && k !== "detail") extra[k] = v;
  }
  return new ApiError(status, code, message, fields, extra);
}

/** Text to show a person for any thrown value. */
export function errorMessage(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.code === "validation_error" && err.fields.length > 0 && !err.message.includes(":")) {
      return `${err.message} ${describeFields(err.fields)}`;
    }
    if (err.code === "rate_limited" && err.retryAfter !== null) {
      return `${err.message} (try again in ${Math.ceil(err.retryAfter)} s)`;
    }
    return err.message;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}
