import { vi } from "vitest";

export interface Seen {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

/** Replaces fetch with answers by "METHOD /path" (query ignored); records every call. */
export function fakeGateway(answers: Record<string, { status?: number; body: unknown }>) {
  const seen: Seen[] = [];
  const fn = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input);
    const method = init?.method ?? "GET";
    const path = url.split("?")[0];
    seen.push({
      method,
      url,
      headers: (init?.headers ?? {}) as Record<string, string>,
      body: init?.body ? JSON.parse(String(init.body)) : undefined,
    });
    const answer = answers[`${method} ${path}`] ?? {
      status: 404,
      body: { error: { message: `Unknown path ${path}.`, type: "invalid_request_error", code: "unknown_path" } },
    };
    return new Response(JSON.stringify(answer.body), {
      status: answer.status ?? 200,
      headers: { "content-type": "application/json" },
    });
  });
  vi.stubGlobal("fetch", fn);
  return seen;
}
