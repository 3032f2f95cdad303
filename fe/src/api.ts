// The gateway's own admin API, called from the same origin with the key held
// in session storage. Errors carry the gateway's OpenAI-shaped message.
import { storedKey } from "./session";

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

export type Query = Record<string, string | number | undefined | null>;

function url(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

export async function call<T>(
  method: string,
  path: string,
  options: { body?: unknown; query?: Query; key?: string } = {},
): Promise<T> {
  const key = options.key ?? storedKey();
  const headers: Record<string, string> = {};
  if (key) headers.authorization = `Bearer ${key}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const resp = await fetch(url(path, options.query), {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    credentials: "omit",
    cache: "no-store",
  });
  const text = await resp.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const err = (data as { error?: { message?: string; code?: string } } | null)?.error;
    throw new ApiError(err?.message ?? `HTTP ${resp.status}`, resp.status, err?.code ?? null);
  }
  return data as T;
}

export interface Listing<T> {
  object: "list";
  data: T[];
}

export interface Key {
  id: string;
  name: string;
  hint: string;
  user_id: string | null;
  team_id: string | null;
  models: string[];
  rpm: number | null;
  tpm: number | null;
  budget_usd: number | null;
  budget_period: string | null;
  is_admin: boolean;
  status: string;
  created_at: number;
  expires_at: number | null;
}

export interface CreatedKey extends Key {
  key: string;
}

export interface UsageRow {
  group: string;
  requests: number;
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens: number;
  cost_usd: number;
}

export interface Provider {
  name: string;
  kind: string;
  base_url: string;
  has_credential: boolean;
  source: string;
  health: { status: string; problem?: string };
}

export interface RouteTarget {
  provider: string;
  upstream_model: string | null;
}

export interface RouteRule {
  pattern: string;
  targets: RouteTarget[];
  position: number;
  source: string;
}

export interface RouteListing extends Listing<RouteRule> {
  aliases: Record<string, string>;
  primary_provider: string | null;
}

export interface User {
  id: string;
  email: string;
  role: string;
  status: string;
  is_admin: boolean;
  teams: string[];
  rpm: number | null;
  tpm: number | null;
  budget_usd: number | null;
  budget_period: string | null;
}

export interface Team {
  id: string;
  name: string;
  members: string[];
  rpm: number | null;
  tpm: number | null;
  budget_usd: number | null;
  budget_period: string | null;
}

export interface Hook {
  name: string;
  kind: string;
  events: string[];
  source?: string;
  [k: string]: unknown;
}

export interface Delivery {
  [k: string]: unknown;
}

export const usage = (query: Query) =>
  call<Listing<UsageRow>>("GET", "/admin/usage", { query }).then((r) => r.data);

export interface Latency {
  requests: number;
  p50_ms: number | null;
  p99_ms: number | null;
}

export const latency = (query: Query) => call<Latency>("GET", "/admin/usage/latency", { query });
