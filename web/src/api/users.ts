/** Account endpoints (`/api/users/...`). */
import { request } from "./http";
import type { AuthResponse, LoginRequest, RegisterRequest, User } from "./types";

export function register(username: string, email: string, password: string): Promise<AuthResponse> {
  return request<AuthResponse>("/api/users/register", { method: "POST", body: { username, email, password } satisfies RegisterRequest });
}

export function login(username: string, password: string): Promise<AuthResponse> {
  return request<AuthResponse>("/api/users/login", { method: "POST", body: { username, password } satisfies LoginRequest });
}

export function logout(): Promise<void> {
  return request<void>("/api/users/logout", { method: "POST" });
}

export function me(): Promise<User> {
  return request<User>("/api/users/me");
}

/** Deletes the account and everything in it; the password confirms (403 `wrong_password`). */
export function deleteAccount(password: string): Promise<void> {
  return request<void>("/api/users/me", { method: "DELETE", body: { password } });
}
