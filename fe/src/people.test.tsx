import { afterEach, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { People } from "./pages/People";
import { fakeGateway } from "./test-helpers";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const none = { rpm: null, tpm: null, budget_usd: null, budget_period: "month" };
const admin = { id: "usr_admin", email: "admin@localhost", role: "admin", status: "active", is_admin: true, teams: [], ...none };
const bob = { id: "usr_bob", email: "bob@example.com", role: "member", status: "active", is_admin: false,
  teams: ["team_ml"], ...none, rpm: 30 };
const eve = { id: "usr_eve", email: "eve@example.com", role: "viewer", status: "disabled", is_admin: false, teams: [], ...none };
const ml = { id: "team_ml", name: "ml", members: ["usr_bob"], ...none, budget_usd: 12.5, budget_period: "week" };

function gateway(extra: Record<string, { status?: number; body: unknown }> = {}) {
  return fakeGateway({
    "GET /admin/users": { body: { object: "list", data: [admin, bob, eve] } },
    "GET /admin/teams": { body: { object: "list", data: [ml] } },
    ...extra,
  });
}

it("lists users and teams in tables, with team names, member emails and budgets", async () => {
  gateway();
  render(<People />);
  const users = await screen.findByRole("table", { name: "Users" });
  expect(within(users).getAllByRole("columnheader").map((h) => h.textContent)).toEqual([
    "Email", "ID", "Role", "Status", "Teams", "RPM", "TPM", "Budget", "Actions",
  ]);
  const bobRow = (await within(users).findByText("bob@example.com")).closest("tr")!;
  expect(within(bobRow).getByText("ml")).toBeTruthy();
  const teams = screen.getByRole("table", { name: "Teams" });
  const mlRow = within(teams).getByText("ml").closest("tr")!;
  expect(within(mlRow).getByText("bob@example.com")).toBeTruthy();
  expect(within(mlRow).getByText("$12.50 / week")).toBeTruthy();
  // the admin user is edited (limits) but never disabled; a disabled user can be enabled
  expect(within(users).queryByRole("button", { name: "Disable admin@localhost" })).toBeNull();
  expect(within(users).getByRole("button", { name: "Enable eve@example.com" })).toBeTruthy();
});

it("edits a user's role and limits with labelled fields, then gives the focus back", async () => {
  const seen = gateway({ "PATCH /admin/users/usr_bob": { body: { ...bob, role: "viewer" } } });
  render(<People />);
  const edit = await screen.findByRole("button", { name: "Edit bob@example.com" });
  fireEvent.click(edit);
  const editor = screen.getByRole("region", { name: "Edit user bob@example.com" });
  expect(document.activeElement).toBe(within(editor).getByRole("heading", { name: "Edit user bob@example.com" }));
  expect((within(editor).getByLabelText("RPM") as HTMLInputElement).value).toBe("30");
  fireEvent.change(within(editor).getByLabelText("Role"), { target: { value: "viewer" } });
  fireEvent.change(within(editor).getByLabelText("TPM"), { target: { value: "20000" } });
  fireEvent.change(within(editor).getByLabelText("Budget (USD)"), { target: { value: "5" } });
  fireEvent.change(within(editor).getByLabelText("Budget period"), { target: { value: "day" } });
  fireEvent.click(within(editor).getByRole("button", { name: "Save user" }));
  expect(await screen.findByText("User bob@example.com saved.")).toBeTruthy();
  const patch = seen.find((s) => s.method === "PATCH")!;
  expect(patch.url).toBe("/admin/users/usr_bob");
  expect(patch.body).toEqual({ role: "viewer", rpm: 30, tpm: 20000, budget_usd: 5, budget_period: "day" });
  await waitFor(() => expect(screen.queryByRole("region", { name: /^Edit user/ })).toBeNull());
  expect(document.activeElement).toBe(screen.getByRole("button", { name: "Edit bob@example.com" }));
});

it("clears a limit with an empty field and never sends the admin user's role", async () => {
  const seen = gateway({ "PATCH /admin/users/usr_admin": { body: admin } });
  render(<People />);
  fireEvent.click(await screen.findByRole("button", { name: "Edit admin@localhost" }));
  const editor = screen.getByRole("region", { name: "Edit user admin@localhost" });
  expect(within(editor).queryByLabelText("Role")).toBeNull();
  fireEvent.change(within(editor).getByLabelText("RPM"), { target: { value: "" } });
  fireEvent.click(within(editor).getByRole("button", { name: "Save user" }));
  await waitFor(() => expect(seen.some((s) => s.method === "PATCH")).toBe(true));
  expect(seen.find((s) => s.method === "PATCH")!.body).toEqual({ rpm: null, tpm: null, budget_usd: null, budget_period: "month" });
});

it("names a bad limit before calling the gateway, and Escape closes the editor", async () => {
  const seen = gateway();
  render(<People />);
  fireEvent.click(await screen.findByRole("button", { name: "Edit bob@example.com" }));
  const editor = screen.getByRole("region", { name: "Edit user bob@example.com" });
  fireEvent.change(within(editor).getByLabelText("RPM"), { target: { value: "1.5" } });
  fireEvent.click(within(editor).getByRole("button", { name: "Save user" }));
  expect((await screen.findByRole("alert")).textContent).toBe("RPM must be a whole number above 0.");
  expect(seen.some((s) => s.method === "PATCH")).toBe(false);
  fireEvent.keyDown(within(editor).getByLabelText("RPM"), { key: "Escape" });
  expect(screen.queryByRole("region", { name: /^Edit user/ })).toBeNull();
});

it("shows the gateway's refusal of a change", async () => {
  gateway({
    "PATCH /admin/users/usr_bob": {
      status: 400,
      body: { error: { message: "'budget_usd' must be a number >= 0 or null.", type: "invalid_request_error" } },
    },
  });
  render(<People />);
  fireEvent.click(await screen.findByRole("button", { name: "Edit bob@example.com" }));
  fireEvent.click(screen.getByRole("button", { name: "Save user" }));
  expect((await screen.findByRole("alert")).textContent).toContain("budget_usd");
  // still open: nothing was saved
  expect(screen.getByRole("region", { name: "Edit user bob@example.com" })).toBeTruthy();
});

it("sets a team's budget and adds and removes members", async () => {
  const seen = gateway({
    "PATCH /admin/teams/team_ml": { body: ml },
    "POST /admin/teams/team_ml/members/usr_eve": { body: { ...ml, members: ["usr_bob", "usr_eve"] } },
    "DELETE /admin/teams/team_ml/members/usr_bob": { body: { ...ml, members: [] } },
  });
  render(<People />);
  fireEvent.click(await screen.findByRole("button", { name: "Edit team ml" }));
  const editor = screen.getByRole("region", { name: "Edit team ml" });
  const limits = within(editor).getByRole("form", { name: "Limits of team ml" });
  expect((within(limits).getByLabelText("Budget (USD)") as HTMLInputElement).value).toBe("12.5");
  fireEvent.change(within(limits).getByLabelText("Budget (USD)"), { target: { value: "40" } });
  fireEvent.change(within(limits).getByLabelText("Budget period"), { target: { value: "month" } });
  fireEvent.change(within(limits).getByLabelText("RPM"), { target: { value: "600" } });
  fireEvent.click(within(limits).getByRole("button", { name: "Save limits" }));
  expect(await screen.findByText("Limits of team ml saved.")).toBeTruthy();
  expect(seen.find((s) => s.method === "PATCH")!.body).toEqual({ rpm: 600, tpm: null, budget_usd: 40, budget_period: "month" });

  const members = within(editor).getByRole("table", { name: "Members of ml" });
  expect(within(members).getByText("bob@example.com")).toBeTruthy();
  // only users outside the team are offered
  const pick = within(editor).getByLabelText("User to add") as HTMLSelectElement;
  expect([...pick.options].map((o) => o.textContent)).toEqual(["admin@localhost", "eve@example.com"]);
  fireEvent.change(pick, { target: { value: "usr_eve" } });
  fireEvent.click(within(editor).getByRole("button", { name: "Add member" }));
  expect(await screen.findByText("eve@example.com added to team ml.")).toBeTruthy();
  expect(seen.some((s) => s.method === "POST" && s.url === "/admin/teams/team_ml/members/usr_eve")).toBe(true);

  fireEvent.click(within(members).getByRole("button", { name: "Remove bob@example.com from ml" }));
  expect(await screen.findByText("bob@example.com removed from team ml.")).toBeTruthy();
  expect(seen.some((s) => s.method === "DELETE" && s.url === "/admin/teams/team_ml/members/usr_bob")).toBe(true);
});

it("disables an active user and enables a disabled one", async () => {
  const seen = gateway({
    "POST /admin/users/usr_bob/disable": { body: { ...bob, status: "disabled" } },
    "PATCH /admin/users/usr_eve": { body: { ...eve, status: "active" } },
  });
  render(<People />);
  fireEvent.click(await screen.findByRole("button", { name: "Disable bob@example.com" }));
  expect(await screen.findByText("User bob@example.com disabled.")).toBeTruthy();
  fireEvent.click(screen.getByRole("button", { name: "Enable eve@example.com" }));
  expect(await screen.findByText("User eve@example.com enabled.")).toBeTruthy();
  expect(seen.find((s) => s.method === "PATCH")!.body).toEqual({ status: "active" });
});

it("creates a user and a team from their forms", async () => {
  const seen = gateway({
    "POST /admin/users": { status: 201, body: { ...bob, id: "usr_new", email: "new@example.com" } },
    "POST /admin/teams": { status: 201, body: { ...ml, id: "team_new", name: "ops" } },
  });
  render(<People />);
  fireEvent.change(await screen.findByLabelText("Email"), { target: { value: " new@example.com " } });
  fireEvent.change(screen.getByLabelText("Role"), { target: { value: "viewer" } });
  fireEvent.click(screen.getByRole("button", { name: "Create user" }));
  expect(await screen.findByText("User new@example.com created.")).toBeTruthy();
  fireEvent.change(screen.getByLabelText("Team name"), { target: { value: "ops" } });
  fireEvent.click(screen.getByRole("button", { name: "Create team" }));
  expect(await screen.findByText("Team ops created.")).toBeTruthy();
  const posts = seen.filter((s) => s.method === "POST");
  expect(posts.map((p) => p.body)).toEqual([{ email: "new@example.com", role: "viewer" }, { name: "ops" }]);
});

it("offers a viewer the tables but no create forms and no edit buttons", async () => {
  gateway({ "GET /admin/whoami": { body: { object: "identity", access: "viewer", can_write: false, sees_all: true } } });
  render(<People />);
  expect(await screen.findByText(/Signed in with a viewer key: this page is read-only/)).toBeTruthy();
  const users = await screen.findByRole("table", { name: "Users" });
  expect(await within(users).findByText("bob@example.com")).toBeTruthy();
  expect(screen.queryByRole("button", { name: "Create user" })).toBeNull();
  expect(screen.queryByRole("button", { name: "Create team" })).toBeNull();
  expect(screen.queryByRole("button", { name: /^(Edit|Disable|Enable) / })).toBeNull();
});
