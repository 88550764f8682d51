/** Ports programs of a session listen on, and their preview URLs. */
import { request } from "./http";
import type { components } from "./schema.gen";

export type PortInfo = components["schemas"]["PortOut"];

export function listPorts(uuid: string): Promise<PortInfo[]> {
  return request<components["schemas"]["PortsOut"]>(`/api/sessions/${encodeURIComponent(uuid)}/ports`).then((r) => r.ports);
}

export function previewUrl(uuid: string, port: number, path = "/"): string {
  return `/api/sessions/${encodeURIComponent(uuid)}/preview/${port}${path.startsWith("/") ? path : `/${path}`}`;
}
