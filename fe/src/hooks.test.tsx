import { afterEach, expect, it, vi } from "vitest";
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
