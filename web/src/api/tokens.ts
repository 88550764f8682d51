/** API tokens (`/api/tokens`): credentials for programs using the Judge0-compatible API. */
import { request } from "./http";
import type { components } from "./schema.gen";

export type ApiToken = components["schemas"]["TokenOut"];
export type ApiTokenCreated = components["schemas"]["TokenCreatedOut"];

export function listTokens(): Promise<ApiToken[]> {
  return request<ApiToken[]>("/api/tokens");
}

export function createToken(name: string): Promise<ApiTokenCreated> {
  return request<ApiTokenCreated>("/api/tokens", { method: "POST", body: { name } });
}

export function deleteToken(id: number): Promise<void> {
  return request<void>(`/api/tokens/${id}`, { method: "DELETE" });
}
