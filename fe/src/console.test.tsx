import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { App } from "./App";
import { SignIn } from "./pages/SignIn";
import { Keys } from "./pages/Keys";
import { Usage } from "./pages/Usage";
import { Marketplace } from "./pages/Marketplace";
import { RoutesPage } from "./pages/Routes";
import { Overview } from "./pages/Overview";
import { delta, toCsv } from "./format";
import { fakeGateway } from "./test-helpers";

const KEY = "tgk-admin-component-test";
const list = (data: unknown[]) => ({ body: { object: "list", data } });

beforeEach(() => {
  sessionStorage.clear();
  localStorage.clear();
  window.location.hash = "";
});
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("sign-in", () => {
  it("checks the key with the admin API and keeps it in session storage only", async () => {
    const seen = fakeGateway({ "GET /admin/keys": list([]) });
    const done = vi.fn();
    render(<SignIn onSignedIn={done} />);
    fireEvent.change(screen.getByLabelText("API key"), { target: { value: KEY } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    await waitFor(() => expect(done).toHaveBeenCalledWith(KEY));
    expect(seen[0].headers.authorization).toBe(`Bearer ${KEY}`);
    expect(seen[0].url).not.toContain(KEY);
    expect(Object.values(sessionStorage)).toContain(KEY);
    expect(localStorage.length).toBe(0);
    expect(document.cookie).toBe("");
  });

  it("shows the gateway's message for a wrong key and keeps nothing", async () => {
    fakeGateway({
      "GET /admin/keys": { status: 401, body: { error: { message: "Invalid admin key.", type: "authentication_error" } } },
    });
    render(<SignIn onSignedIn={vi.fn()} />);
    fireEvent.change(screen.getByLabelText("API key"), { target: { value: "tgk-wrong" } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByRole("alert")).toHaveProperty("textContent", "Invalid admin key.");
    expect(sessionStorage.length).toBe(0);
  });
});

describe("navigation", () => {
  it("reaches every page from a navigation landmark by its name", async () => {
    sessionStorage.setItem("tokgateway.key", KEY);
    fakeGateway({});
    render(<App />);
    const nav = screen.getByRole("navigation");
    for (const name of ["Overview", "Usage", "Keys", "Providers", "Routes", "Marketplace", "Hooks", "Settings"]) {
      const link = within(nav).getByRole("link", { name });
      expect(link.getAttribute("href")).toBe(`#/${name.toLowerCase()}`);
    }
    expect(within(nav).getByRole("link", { name: "Overview" }).getAttribute("aria-current")).toBe("page");
  });
});

describe("keys", () => {
  it("creates a key from the form and shows the secret once in a status element", async () => {
    sessionStorage.setItem("tokgateway.key", KEY);
    const seen = fakeGateway({
      "GET /admin/keys": list([]),
      "POST /admin/keys": {
        body: { id: "key_1", name: "ci", key: "tgk-secret-once", models: ["gpt-4o"], status: "active" },
      },
    });
    render(<Keys />);
    fireEvent.change(screen.getByLabelText("Name"), { target: { value: "ci" } });
    fireEvent.change(screen.getByLabelText("Models"), { target: { value: "gpt-4o, echo ," } });
    fireEvent.change(screen.getByLabelText("Budget (USD)"), { target: { value: "2.5" } });
    fireEvent.click(screen.getByRole("button", { name: "Create key" }));
    const status = await screen.findByText("tgk-secret-once");
    expect(status.closest("[role=status]")).not.toBeNull();
    const post = seen.find((s) => s.method === "POST")!;
    expect(post.body).toEqual({
      name: "ci",
      models: ["gpt-4o", "echo"],
      rpm: null,
      tpm: null,
      budget_usd: 2.5,
      budget_period: "month",
    });
  });

  it("rotates a key and shows the new secret once; revokes only after asking", async () => {
    const row = { id: "key_9", name: "bot", hint: "tgk-…abcd", models: [], rpm: null, tpm: null, budget_usd: null,
      budget_period: "month", is_admin: false, status: "active", created_at: 1764633600 };
    const seen = fakeGateway({
      "GET /admin/keys": list([row]),
      "POST /admin/keys/key_9/rotate": { body: { ...row, key: "tgk-rotated-secret" } },
      "POST /admin/keys/key_9/revoke": { body: { ...row, status: "revoked" } },
    });
    render(<Keys />);
    fireEvent.click(await screen.findByRole("button", { name: "Rotate bot" }));
    const secret = await screen.findByText("tgk-rotated-secret");
    expect(secret.closest("[role=status]")!.textContent).toContain("rotated");
    const confirm = vi.fn(() => false);
    vi.stubGlobal("confirm", confirm);
    fireEvent.click(screen.getByRole("button", { name: "Revoke bot" }));
    expect(confirm).toHaveBeenCalled();
    expect(seen.some((s) => s.url.endsWith("/revoke"))).toBe(false);
    confirm.mockReturnValue(true);
    fireEvent.click(screen.getByRole("button", { name: "Revoke bot" }));
    await waitFor(() => expect(seen.some((s) => s.method === "POST" && s.url.endsWith("/revoke"))).toBe(true));
  });

  it("refuses a budget that is not a number before calling the gateway", async () => {
    const seen = fakeGateway({ "GET /admin/keys": list([]) });
    render(<Keys />);
    fireEvent.change(screen.getByLabelText("Name"), { target: { value: "x" } });
    fireEvent.change(screen.getByLabelText("Budget (USD)"), { target: { value: "lots" } });
    fireEvent.click(screen.getByRole("button", { name: "Create key" }));
    expect((await screen.findByRole("alert")).textContent).toContain("Budget (USD)");
    expect(seen.some((s) => s.method === "POST")).toBe(false);
  });

  it("lists keys in a table with column headers", async () => {
    fakeGateway({
      "GET /admin/keys": list([
        { id: "key_9", name: "bot", hint: "tgk-…abcd", models: [], rpm: 60, tpm: null, budget_usd: null,
          budget_period: "month", is_admin: false, status: "active", created_at: 1764633600 },
      ]),
    });
    render(<Keys />);
    const table = await screen.findByRole("table", { name: "API keys" });
    const headers = within(table).getAllByRole("columnheader").map((h) => h.textContent);
    expect(headers).toEqual(expect.arrayContaining(["Name", "ID", "Models", "RPM", "Budget", "Status"]));
    expect(await within(table).findByText("bot")).toBeTruthy();
    expect(within(table).getByRole("button", { name: "Rotate bot" })).toBeTruthy();
  });
});

describe("usage", () => {
  it("asks the ledger grouped as chosen, with the time filter in UTC", async () => {
    const seen = fakeGateway({
      "GET /admin/usage": list([
        { group: "gpt-4o", requests: 3, errors: 1, prompt_tokens: 10, completion_tokens: 5, cached_tokens: 0, cost_usd: 0.25 },
      ]),
    });
    render(<Usage />);
    expect(await screen.findByText("gpt-4o")).toBeTruthy();
    fireEvent.change(screen.getByLabelText("Group by"), { target: { value: "team" } });
    fireEvent.change(screen.getByLabelText("Since (UTC)"), { target: { value: "2026-11-01T00:00" } });
    await waitFor(() => expect(seen.at(-1)!.url).toContain("group_by=team"));
    expect(decodeURIComponent(seen.at(-1)!.url)).toContain("since=2026-11-01T00:00:00Z");
    expect(screen.getByRole("table", { name: "Usage by team" })).toBeTruthy();
  });
});

describe("overview", () => {
  it("shows totals with the change against the previous period", async () => {
    let calls = 0;
    let latencyCalls = 0;
    vi.stubGlobal(
      "fetch",
      vi.fn(async (input: RequestInfo | URL) => {
        const url = new URL(String(input), "http://x");
        if (url.pathname === "/admin/usage/latency") {
          latencyCalls += 1;
          const body = { object: "latency", requests: 5, p50_ms: latencyCalls === 1 ? 12 : 8, p99_ms: 40 };
          return new Response(JSON.stringify(body), { status: 200 });
        }
        calls += 1;
        // the first call is the current period, the second the previous one
        const rows =
          url.searchParams.get("group_by") !== null
            ? []
            : [{ group: "all", requests: calls === 1 ? 30 : 20, errors: 0, prompt_tokens: 1, completion_tokens: 1, cached_tokens: 0, cost_usd: 1 }];
        return new Response(JSON.stringify({ object: "list", data: rows }), { status: 200 });
      }),
    );
    render(<Overview />);
    await waitFor(() => expect(screen.getByTestId("total-requests").textContent).toBe("30"));
    expect(screen.getByRole("img", { name: /^Requests:/ })).toBeTruthy();
    expect(calls).toBe(6 + 12);
    expect(latencyCalls).toBe(2 + 12);
    expect(screen.getByTestId("total-p50").textContent).toBe("12 ms");
    expect(screen.getByTestId("total-p99").textContent).toBe("40 ms");
    // requests 30 against 20, p50 12 ms against 8 ms
    expect(screen.getAllByText(/^\+50%/, { selector: ".stat-delta" })).toHaveLength(2);
    expect(screen.getByRole("img", { name: /^p99 latency:/ })).toBeTruthy();
  });
});

describe("routes", () => {
  it("swaps the provider behind a model in one PUT, keeping the route's place", async () => {
    const seen = fakeGateway({
      "GET /admin/routes": {
        body: {
          object: "list",
          data: [{ pattern: "gpt-4o", targets: [{ provider: "openai", upstream_model: null }], position: 3, source: "config" }],
          aliases: {},
          primary_provider: null,
        },
      },
      "GET /admin/providers": list([
        { name: "openai", kind: "openai", base_url: "", has_credential: true, source: "config", health: { status: "ok" } },
        { name: "local", kind: "openai-compatible", base_url: "", has_credential: false, source: "config", health: { status: "ok" } },
      ]),
      "PUT /admin/routes": { status: 201, body: {} },
    });
    render(<RoutesPage />);
    await screen.findByRole("option", { name: "local" });
    await screen.findByText("openai", { selector: "td" });
    fireEvent.change(screen.getByLabelText("Model or pattern"), { target: { value: "gpt-4o" } });
    fireEvent.change(screen.getByLabelText("Provider"), { target: { value: "local" } });
    fireEvent.click(screen.getByRole("button", { name: "Swap provider" }));
    await screen.findByText("gpt-4o now goes to local.");
    const put = seen.find((s) => s.method === "PUT")!;
    expect(put.body).toEqual({ pattern: "gpt-4o", targets: [{ provider: "local", upstream_model: null }], position: 3 });
  });
});

describe("marketplace", () => {
  it("says an older gateway has no marketplace instead of showing sample data", async () => {
    fakeGateway({});
    render(<Marketplace />);
    expect((await screen.findByText(/does not answer the marketplace API/)).textContent).toContain("Nothing is shown");
    expect(screen.queryByRole("table")).toBeNull();
  });

  it("browses, compares and uses listings when the gateway answers", async () => {
    const lst = { id: "lst_1", name: "Ada's gateway", origin: "reg_a", local: false, via: null,
      models: [{ name: "llama3", input: 0.1, output: 0.2 }], latency_ms: 12, uptime: 1, age_s: 5 };
    const seen = fakeGateway({
      "GET /admin/market/listings": list([lst]),
      "GET /admin/market/compare/llama3": list([
        { id: "lst_1", name: "Ada's gateway", origin: "reg_a", input: 0.1, output: 0.2, effective_usd: 0.0003, latency_ms: 12, uptime: 1 },
      ]),
      "POST /admin/market/use": {
        body: { id: "lst_1", status: "active", provider: "market-lst_1", routes: [{ model: "llama3", upstream_model: "llama3" }] },
      },
    });
    render(<Marketplace />);
    const table = await screen.findByRole("table", { name: "Marketplace listings as the registry offers them" });
    expect(within(table).getByText("llama3")).toBeTruthy();
    fireEvent.change(screen.getByLabelText("Model"), { target: { value: "llama3" } });
    fireEvent.click(screen.getByRole("button", { name: "Compare" }));
    const offers = await screen.findByRole("table", { name: "Offers for llama3, cheapest first" });
    expect(within(offers).getAllByRole("columnheader").map((h) => h.textContent)).toContain("Typical request");
    fireEvent.click(within(table).getByRole("button", { name: "Use Ada's gateway" }));
    expect(await screen.findByText(/Using Ada's gateway: provider market-lst_1, routes llama3/)).toBeTruthy();
    expect(seen.find((s) => s.method === "POST")!.body).toEqual({ listing_id: "lst_1" });
  });
});

describe("format", () => {
  it("states deltas and quotes CSV", () => {
    expect(delta(30, 20)).toBe("+50%");
    expect(delta(5, 10)).toBe("−50%");
    expect(delta(3, 0)).toBe("new");
    expect(delta(0, 0)).toBe("0%");
    expect(toCsv(["a", "b"], [["x,y", 'say "hi"']])).toBe('a,b\r\n"x,y","say ""hi"""\r\n');
  });
});
