/**
 * Types of the HTTP API, taken from schema.gen.ts, which scripts/gen-api-types.sh generates from the
 * backend's OpenAPI schema (tests/unit/test_api_types_in_sync.py fails when it is stale).
 * Hand-written here only: narrower unions the schema types as plain strings.
 */
import type { components } from "./schema.gen";

type Schemas = components["schemas"];

export type RegisterRequest = Schemas["RegisterIn"];
export type LoginRequest = Schemas["LoginIn"];
export type User = Schemas["UserOut"];
export type AuthResponse = Schemas["AuthOut"];

/** The schema says `string`; these are the states the UI distinguishes (others are shown as they are). */
export type SandboxStatus = "stopped" | "starting" | "running" | "stopping" | "error" | (string & {});

export type Session = Schemas["SessionOut"];
export type SessionCreate = Schemas["SessionIn"];
export type SessionUpdate = Schemas["SessionPatch"];

export type FileItem = Schemas["ItemOut"];
export type ItemList = Schemas["ItemList"];
export type ItemType = FileItem["type"];
export type FileContent = Schemas["FileOut"];
export type SaveRequest = Schemas["SaveIn"];
export type MoveRequest = Schemas["MoveIn"];
export type WorkspaceStatus = Schemas["StatusOut"];
export type EnsureDefaultResult = Schemas["EnsureDefaultOut"];

export type Language = Schemas["LanguageOut"];
export type SandboxState = Schemas["SandboxStateOut"];
export type TerminalInfo = Schemas["TerminalOut"];
export type TerminalCommand = Schemas["CommandOut"];
export type RunRequest = Schemas["RunIn"];
export type RunStarted = Schemas["RunStartedOut"];

export type SearchResult = Schemas["SearchOut"];
export type SearchFileResult = Schemas["SearchFile"];
export type Template = Schemas["TemplateOut"];
/** Every field is answered by GET (the server fills the defaults). */
export type Preferences = Required<Schemas["Preferences"]>;
export type ImportResult = Schemas["ImportOut"];
