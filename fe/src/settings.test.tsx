import { afterEach, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, within } from "@testing-library/react";
import { Settings } from "./pages/Settings";
import { fakeGateway } from "./test-helpers";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

it("shows each key with the layer that set it, and filters", async () => {
  fakeGateway({
    "GET /admin/config": {
      body: {
        object: "list",
        env: "dev",
        files: ["/etc/tokgateway/setting.ini"],
        data: [
          { key: "gateway.port", value: "8081", layer: "default" },
          { key: "provider.openai.api_key", value: "sk-…abcd", layer: "setting.ini" },
        ],
      },
    },
  });
  render(<Settings />);
  const table = await screen.findByRole("table", { name: "Effective configuration and the layer that set each key" });
  expect(within(table).getAllByRole("columnheader").map((h) => h.textContent)).toEqual(["Key", "Value", "Layer"]);
  fireEvent.change(screen.getByLabelText("Filter keys"), { target: { value: "provider" } });
  expect(within(table).queryByText("gateway.port")).toBeNull();
  expect(within(table).getByText("sk-…abcd")).toBeTruthy();
});

it("says so when the gateway has no configuration API", async () => {
  fakeGateway({});
  render(<Settings />);
  expect((await screen.findByText(/gateway config show/)).closest(".unavailable")).not.toBeNull();
});
