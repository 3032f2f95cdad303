// The console served by a mesh router, in a real headless Chromium: sign in,
// then the pages whose data lives in the other services (Settings: the
// router's own configuration; Users and Teams and Keys: auth; Providers: the
// registry). Run by tests/integration/test_mesh_console.py; prints one JSON
// line with what it saw.
//
// env: GATEWAY_URL (the router), ADMIN_KEY, SHOTS (a directory), CHROMIUM
import { chromium } from "playwright-core";
import { join } from "node:path";

const BASE = process.env.GATEWAY_URL;
const TIMEOUT = 15000;

async function go(page, name) {
  await page.getByRole("navigation").getByRole("link", { name, exact: true }).click();
  await page.getByRole("heading", { level: 1, name }).waitFor({ timeout: TIMEOUT });
}
async function rows(page, caption) {
  const table = page.getByRole("table", { name: caption });
  await table.waitFor({ timeout: TIMEOUT });
  // the first load may still be under way: wait for a row that is not the empty note
  await table.locator("tbody tr td:not(.empty)").first().waitFor({ timeout: TIMEOUT });
  return table.locator("tbody tr").evaluateAll((trs) =>
    trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent.trim())),
  );
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking"],
});
let code = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${BASE}/ui/`);
  await page.getByLabel("API key").fill(process.env.ADMIN_KEY);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation").waitFor({ timeout: TIMEOUT });

  await go(page, "Settings");
  const config = await rows(page, "Effective configuration and the layer that set each key");
  const authUrl = config.find((r) => r[0] === "gateway.auth_url");

  await go(page, "Users and Teams");
  const users = (await rows(page, "Users")).map((r) => r[0]);

  await go(page, "Providers");
  const providers = (await rows(page, "Providers and their health")).map((r) => r[0]);

  await go(page, "Keys");
  await page.getByLabel("Name", { exact: true }).fill("mesh-console");
  await page.getByRole("button", { name: "Create key" }).click();
  await page.getByRole("status").filter({ hasText: "shown only once" }).waitFor({ timeout: TIMEOUT });
  let keyId = null;
  for (let i = 0; i < 40 && keyId === null; i++) {
    const found = (await rows(page, "API keys")).find((r) => r[0] === "mesh-console");
    keyId = found ? found[1] : null;
    if (keyId === null) await new Promise((r) => setTimeout(r, 250));
  }
  const screenshot = join(process.env.SHOTS, "mesh-keys.png");
  await page.screenshot({ path: screenshot, fullPage: true });
  if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
  process.stdout.write(
    JSON.stringify({ settings_auth_url: authUrl ? authUrl[1] : null, users, providers, key_id: keyId, screenshot }) + "\n",
  );
} catch (err) {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
