import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { Marketplace } from "./pages/Marketplace";
import { publishBody } from "./pages/MarketPublish";
import { fakeGateway } from "./test-helpers";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const list = (data: unknown[]) => ({ body: { object: "list", data } });
const whoami = (access: string) => ({
  body: { object: "identity", access, can_write: access === "admin", sees_all: access !== "member" },
});
const remote = { id: "lst_r", name: "Ada's gateway", origin: "reg_a", local: false, via: null,
  models: [{ name: "llama3", input: 0.1, output: 0.2 }], latency_ms: 12, uptime: 1, age_s: 5 };
const mine = { ...remote, id: "lst_m", name: "Our gateway", origin: "reg_me", local: true };
const peer = { id: "http://peer.test:9000", url: "http://peer.test:9000", registry_id: "reg_peer", name: "peer-one",
  has_token: false, last_poll: 1764633600, last_status: 200, last_error: null, listings: 2, refused: 0 };
const apiError = (status: number, message: string, param: string | null = null) => ({
  status,
  body: { error: { message, type: "invalid_request_error", param, code: null } },
});

function gateway(extra: Record<string, { status?: number; body: unknown }> = {}) {
  return fakeGateway({
    "GET /admin/whoami": whoami("admin"),
    "GET /admin/market/listings": list([remote, mine]),
    "GET /admin/market/peers": list([peer]),
    ...extra,
  });
}


describe("publish a listing", () => {
  it("sends only the fields filled in, with prices as numbers", () => {
    expect(
      publishBody({ models: " a, ,b ", name: "", region: "eu", api_format: "openai", price_in: "0.5", price_out: "1", price_cached: "" }),
    ).toEqual({ api_format: "openai", models: ["a", "b"], price_in: 0.5, price_out: 1, region: "eu" });
    expect(
      publishBody({ models: "", name: "", region: "", api_format: "anthropic", price_in: "", price_out: "", price_cached: "" }),
    ).toEqual({ api_format: "anthropic" });
  });

  it("publishes, reports the listing and asks for the listings again", async () => {
    const seen = gateway({
      "POST /admin/market/listings": {
        status: 201,
        body: { id: "lst_new", name: "Ours", endpoint: "http://gw.test/v1", models: [{ name: "m1" }, { name: "m2" }] },
      },
    });
    render(<Marketplace />);
    const form = await screen.findByRole("form", { name: "Publish listing" });
    fireEvent.change(within(form).getByLabelText("Models to list"), { target: { value: "m1, m2" } });
    fireEvent.change(within(form).getByLabelText("Input price (USD per 1M tokens)"), { target: { value: "0.25" } });
    fireEvent.change(within(form).getByLabelText("Output price (USD per 1M tokens)"), { target: { value: "2" } });
    fireEvent.change(within(form).getByLabelText("Listing name"), { target: { value: "Ours" } });
    fireEvent.change(within(form).getByLabelText("API format"), { target: { value: "anthropic" } });
    const before = seen.filter((s) => s.url.startsWith("/admin/market/listings") && s.method === "GET").length;
    fireEvent.click(within(form).getByRole("button", { name: "Publish listing" }));
    const status = await screen.findByText("Published lst_new (Ours): m1, m2 at http://gw.test/v1.");
    expect(status.closest("[role=status]")).not.toBeNull();
    const post = seen.find((s) => s.method === "POST")!;
    expect(post.url).toBe("/admin/market/listings");
    expect(post.body).toEqual({ models: ["m1", "m2"], price_in: 0.25, price_out: 2, name: "Ours", api_format: "anthropic" });
    expect((within(form).getByLabelText("Models to list") as HTMLInputElement).value).toBe("");
    await waitFor(() =>
      expect(seen.filter((s) => s.url.startsWith("/admin/market/listings") && s.method === "GET").length).toBe(before + 1),
    );
  });

  it("shows the gateway's refusal in the form and keeps what was typed", async () => {
    gateway({ "POST /admin/market/listings": apiError(400, "No price for 'm9': give --price-in and --price-out.", "models") });
    render(<Marketplace />);
    const form = await screen.findByRole("form", { name: "Publish listing" });
    fireEvent.change(within(form).getByLabelText("Models to list"), { target: { value: "m9" } });
    fireEvent.click(within(form).getByRole("button", { name: "Publish listing" }));
    expect((await within(form).findByRole("alert")).textContent).toBe("No price for 'm9': give --price-in and --price-out.");
    expect((within(form).getByLabelText("Models to list") as HTMLInputElement).value).toBe("m9");
    expect(screen.queryByText(/^Published/)).toBeNull();
  });

  it("unpublishes this gateway's own listing, never another's", async () => {
    vi.stubGlobal("confirm", vi.fn(() => true));
    const seen = gateway({ "DELETE /admin/market/listings/lst_m": { body: { id: "lst_m", deleted: true, keys_revoked: 3 } } });
    render(<Marketplace />);
    const table = await screen.findByRole("table", { name: "Marketplace listings as the registry offers them" });
    expect(within(table).queryByRole("button", { name: "Unpublish Ada's gateway" })).toBeNull();
    fireEvent.click(await within(table).findByRole("button", { name: "Unpublish Our gateway" }));
    expect(await screen.findByText("Unpublished Our gateway; 3 subscriber key(s) revoked.")).toBeTruthy();
    expect(seen.some((s) => s.method === "DELETE" && s.url === "/admin/market/listings/lst_m")).toBe(true);
  });
});

describe("peers", () => {
  it("lists the peers this registry follows", async () => {
    gateway();
    render(<Marketplace />);
    const table = await screen.findByRole("table", { name: "Peer registries this one follows" });
    const row = (await within(table).findByText("http://peer.test:9000")).closest("tr")!;
    expect(within(row).getByText("peer-one")).toBeTruthy();
    expect(within(row).getByText("reg_peer")).toBeTruthy();
    expect(within(row).getByText("2")).toBeTruthy();
  });

  it("adds a peer with its token and reports what it lists", async () => {
    const seen = gateway({ "POST /admin/market/peers": { status: 201, body: { ...peer, url: "http://two.test", name: "two", listings: 4 } } });
    render(<Marketplace />);
    const form = await screen.findByRole("form", { name: "Add a peer" });
    fireEvent.change(within(form).getByLabelText("Peer registry URL"), { target: { value: "http://two.test" } });
    fireEvent.change(within(form).getByLabelText("Peer token"), { target: { value: "feed-secret" } });
    fireEvent.click(within(form).getByRole("button", { name: "Add peer" }));
    expect(await screen.findByText("Following two (reg_peer): 4 listings.")).toBeTruthy();
    expect(seen.find((s) => s.method === "POST")!.body).toEqual({ url: "http://two.test", token: "feed-secret" });
    expect((within(form).getByLabelText("Peer token") as HTMLInputElement).value).toBe("");
  });

  it("shows the gateway's refusal of a peer in the add form", async () => {
    gateway({ "POST /admin/market/peers": apiError(400, "That URL is this registry itself.", "url") });
    render(<Marketplace />);
    const form = await screen.findByRole("form", { name: "Add a peer" });
    fireEvent.change(within(form).getByLabelText("Peer registry URL"), { target: { value: "http://self.test" } });
    fireEvent.click(within(form).getByRole("button", { name: "Add peer" }));
    expect((await within(form).findByRole("alert")).textContent).toBe("That URL is this registry itself.");
    expect((within(form).getByLabelText("Peer registry URL") as HTMLInputElement).value).toBe("http://self.test");
  });

  it("removes a peer by its URL after asking", async () => {
    const confirm = vi.fn(() => true);
    vi.stubGlobal("confirm", confirm);
    const seen = gateway({ "POST /admin/market/peers/remove": { body: { url: peer.url, deleted: true } } });
    render(<Marketplace />);
    fireEvent.click(await screen.findByRole("button", { name: `Remove peer ${peer.url}` }));
    expect(await screen.findByText(`No longer following ${peer.url}.`)).toBeTruthy();
    expect(confirm).toHaveBeenCalledOnce();
    expect(seen.find((s) => s.url === "/admin/market/peers/remove")!.body).toEqual({ url: peer.url });
  });

  it("sends nothing when the removal is not confirmed", async () => {
    vi.stubGlobal("confirm", vi.fn(() => false));
    const seen = gateway();
    render(<Marketplace />);
    fireEvent.click(await screen.findByRole("button", { name: `Remove peer ${peer.url}` }));
    expect(seen.some((s) => s.method === "POST")).toBe(false);
  });
});

describe("roles", () => {
  for (const access of ["viewer", "member"]) {
    it(`offers a ${access} the listings and peers but no way to change them`, async () => {
      gateway({ "GET /admin/whoami": whoami(access) });
      render(<Marketplace />);
      expect(await screen.findByText(new RegExp(`Signed in with a ${access} key: this page is read-only`))).toBeTruthy();
      const listings = screen.getByRole("table", { name: "Marketplace listings as the registry offers them" });
      expect(within(listings).getByText("Ada's gateway")).toBeTruthy();
      expect(await screen.findByText("http://peer.test:9000")).toBeTruthy();
      expect(screen.queryByRole("form", { name: "Publish listing" })).toBeNull();
      expect(screen.queryByRole("form", { name: "Add a peer" })).toBeNull();
      expect(screen.queryByRole("button", { name: /^(Use|Unpublish|Remove peer) / })).toBeNull();
      // reading stays: the compare form is not a change
      expect(screen.getByRole("button", { name: "Compare" })).toBeTruthy();
    });
  }

  it("offers no forms when the gateway cannot say who the key is", async () => {
    gateway({ "GET /admin/whoami": { status: 500, body: { error: { message: "Internal error.", type: "server_error" } } } });
    render(<Marketplace />);
    await screen.findByRole("table", { name: "Marketplace listings as the registry offers them" });
    expect((await screen.findByText(/could not say what this key may change/)).textContent).toContain("Internal error.");
    expect(screen.queryByRole("form", { name: "Publish listing" })).toBeNull();
    expect(screen.queryByRole("form", { name: "Add a peer" })).toBeNull();
  });

  it("offers the forms when the gateway predates the identity route (its API still decides)", async () => {
    fakeGateway({ "GET /admin/market/listings": list([remote]), "GET /admin/market/peers": list([]) });
    render(<Marketplace />);
    expect(await screen.findByRole("form", { name: "Publish listing" })).toBeTruthy();
    expect(screen.queryByText(/read-only/)).toBeNull();
  });
});
