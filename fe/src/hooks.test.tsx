import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { Hooks } from "./pages/Hooks";
import { fakeGateway } from "./test-helpers";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

it("lists deliveries, narrows to failures and replays an event", async () => {
  const seen = fakeGateway({
    "GET /admin/hooks": { body: { object: "list", data: [{ name: "crm", kind: "webhook", events: ["key.*"], url: "https://crm.example/h", source: "config" }] } },
    "GET /admin/hooks/log": {
      body: {
        object: "list",
        data: [{ hook: "crm", event_id: "evt_1", type: "key.created", state: "dead", attempts: 5, last_status: 500, last_error: "HTTP 500", created_at: 1764633600 }],
      },
    },
    "POST /admin/hooks/replay/evt_1": { body: { event_id: "evt_1", queued: 1 } },
  });
  render(<Hooks />);
  const table = await screen.findByRole("table", { name: "Deliveries, newest first" });
  expect(within(table).getAllByRole("columnheader").map((h) => h.textContent)).toContain("Last error");
  expect(await within(table).findByText("evt_1")).toBeTruthy();
  fireEvent.click(screen.getByLabelText(/Failures/));
  await waitFor(() => expect(seen.some((s) => s.url.includes("failed=true"))).toBe(true));
  fireEvent.click(within(table).getByRole("button", { name: "Replay evt_1" }));
  expect(await screen.findByText("Event evt_1: 1 deliveries queued again.")).toBeTruthy();
});

const apiHook = { name: "crm2", kind: "webhook", events: ["user.*"], url: "https://crm.example/h2", source: "api" };
const configHook = { name: "crm", kind: "webhook", events: ["key.*"], url: "https://crm.example/h", source: "config" };
const hookList = (...data: unknown[]) => ({ body: { object: "list", data } });
const noLog = { body: { object: "list", data: [] } };
const whoami = (access: string) => ({ body: { object: "identity", access, can_write: access === "admin", sees_all: true } });

describe("add and delete hooks", () => {
  it("adds a webhook and shows the secret the gateway generated, once", async () => {
    const gw = {
      "GET /admin/whoami": whoami("admin"),
      "GET /admin/hooks": hookList(configHook),
      "GET /admin/hooks/log": noLog,
      "POST /admin/hooks": {
        status: 201,
        body: { ...apiHook, secret_env: null, command: null, timeout_s: null, enabled: true, secret: "whsec_c2VjcmV0LXNob3duLW9uY2U=" },
      },
    };
    const seen = fakeGateway(gw);
    render(<Hooks />);
    const form = await screen.findByRole("form", { name: "Add hook" });
    fireEvent.change(within(form).getByLabelText("Hook name"), { target: { value: "crm2" } });
    fireEvent.change(within(form).getByLabelText("Events"), { target: { value: "user.*" } });
    fireEvent.change(within(form).getByLabelText("Webhook URL"), { target: { value: "https://crm.example/h2" } });
    gw["GET /admin/hooks"] = hookList(configHook, apiHook);
    fireEvent.click(within(form).getByRole("button", { name: "Add hook" }));
    const secret = await screen.findByText("whsec_c2VjcmV0LXNob3duLW9uY2U=");
    expect(secret.closest("[role=status]")!.textContent).toContain("shown only once");
    expect(screen.getByText("Added webhook hook crm2 for user.*.")).toBeTruthy();
    expect(seen.find((s) => s.method === "POST")!.body).toEqual({
      name: "crm2", kind: "webhook", events: "user.*", url: "https://crm.example/h2",
    });
    // the new hook is listed (without its secret); adding another clears the old secret
    const table = screen.getByRole("table", { name: "Provisioning hooks" });
    expect(await within(table).findByText("crm2")).toBeTruthy();
    expect(within(table).queryByText(/whsec_/)).toBeNull();
    gw["POST /admin/hooks"] = { status: 201, body: { ...apiHook, name: "crm3" } } as typeof gw["POST /admin/hooks"];
    fireEvent.change(within(form).getByLabelText("Hook name"), { target: { value: "crm3" } });
    fireEvent.change(within(form).getByLabelText("Events"), { target: { value: "user.*" } });
    fireEvent.change(within(form).getByLabelText("Webhook URL"), { target: { value: "https://crm.example/h3" } });
    fireEvent.click(within(form).getByRole("button", { name: "Add hook" }));
    await screen.findByText("Added webhook hook crm3 for user.*.");
    expect(screen.queryByText("whsec_c2VjcmV0LXNob3duLW9uY2U=")).toBeNull();
  });

  it("sends a script hook's command and no webhook fields", async () => {
    const seen = fakeGateway({
      "GET /admin/whoami": whoami("admin"),
      "GET /admin/hooks": hookList(),
      "GET /admin/hooks/log": noLog,
      "POST /admin/hooks": { status: 201, body: { name: "sync", kind: "script", events: ["key.created"], command: "/bin/sync", source: "api" } },
    });
    render(<Hooks />);
    const form = await screen.findByRole("form", { name: "Add hook" });
    fireEvent.change(within(form).getByLabelText("Webhook URL"), { target: { value: "https://left.over" } });
    fireEvent.change(within(form).getByLabelText("Kind"), { target: { value: "script" } });
    expect(within(form).queryByLabelText("Webhook URL")).toBeNull();
    fireEvent.change(within(form).getByLabelText("Hook name"), { target: { value: "sync" } });
    fireEvent.change(within(form).getByLabelText("Events"), { target: { value: "key.created" } });
    fireEvent.change(within(form).getByLabelText("Command"), { target: { value: "/bin/sync" } });
    fireEvent.change(within(form).getByLabelText("Timeout (s)"), { target: { value: "2.5" } });
    fireEvent.click(within(form).getByRole("button", { name: "Add hook" }));
    await screen.findByText("Added script hook sync for key.created.");
    expect(seen.find((s) => s.method === "POST")!.body).toEqual({
      name: "sync", kind: "script", events: "key.created", command: "/bin/sync", timeout_s: 2.5,
    });
    expect(screen.queryByText(/shown only once/)).toBeNull();
  });

  it("shows the gateway's refusal in the form", async () => {
    fakeGateway({
      "GET /admin/whoami": whoami("admin"),
      "GET /admin/hooks": hookList(configHook),
      "GET /admin/hooks/log": noLog,
      "POST /admin/hooks": {
        status: 400,
        body: { error: { message: "Hook 'crm' is defined in the configuration files; change it there.", type: "invalid_request_error", param: "name" } },
      },
    });
    render(<Hooks />);
    const form = await screen.findByRole("form", { name: "Add hook" });
    fireEvent.change(within(form).getByLabelText("Hook name"), { target: { value: "crm" } });
    fireEvent.change(within(form).getByLabelText("Events"), { target: { value: "key.*" } });
    fireEvent.change(within(form).getByLabelText("Webhook URL"), { target: { value: "https://crm.example/h" } });
    fireEvent.click(within(form).getByRole("button", { name: "Add hook" }));
    expect((await within(form).findByRole("alert")).textContent).toBe(
      "Hook 'crm' is defined in the configuration files; change it there.",
    );
    expect((within(form).getByLabelText("Hook name") as HTMLInputElement).value).toBe("crm");
  });

  it("deletes a hook added through the API; one from the configuration has no Delete", async () => {
    vi.stubGlobal("confirm", vi.fn(() => true));
    const gw = {
      "GET /admin/whoami": whoami("admin"),
      "GET /admin/hooks": hookList(configHook, apiHook),
      "GET /admin/hooks/log": noLog,
      "DELETE /admin/hooks/crm2": { body: { name: "crm2", deleted: true } },
    };
    const seen = fakeGateway(gw);
    render(<Hooks />);
    const table = await screen.findByRole("table", { name: "Provisioning hooks" });
    const del = await within(table).findByRole("button", { name: "Delete crm2" });
    expect(within(table).queryByRole("button", { name: "Delete crm" })).toBeNull();
    gw["GET /admin/hooks"] = hookList(configHook);
    fireEvent.click(del);
    expect(await screen.findByText("Hook crm2 deleted.")).toBeTruthy();
    expect(seen.some((s) => s.method === "DELETE" && s.url === "/admin/hooks/crm2")).toBe(true);
    await waitFor(() => expect(within(table).queryByText("crm2")).toBeNull());
  });

  it("offers a viewer no way to change hooks", async () => {
    fakeGateway({
      "GET /admin/whoami": whoami("viewer"),
      "GET /admin/hooks": { status: 403, body: { error: { message: "This key is not an admin key.", type: "permission_error" } } },
      "GET /admin/hooks/log": { status: 403, body: { error: { message: "This key is not an admin key.", type: "permission_error" } } },
    });
    render(<Hooks />);
    expect(await screen.findByText(/Signed in with a viewer key: this page is read-only/)).toBeTruthy();
    expect((await screen.findByRole("alert")).textContent).toBe("This key is not an admin key.");
    expect(screen.queryByRole("form", { name: "Add hook" })).toBeNull();
  });
});
