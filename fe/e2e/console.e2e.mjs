// The console end to end in a real headless Chromium (Debian's, driven by
// playwright-core). Run by tests/e2e/test_console.py, which talks to this
// script over a line protocol: this script prints one JSON object per line on
// stdout when it needs the test to act through the gateway (with the official
// openai SDK) and reads the test's JSON answer from stdin.
//
// env: GATEWAY_URL, ADMIN_KEY, SHOTS (a directory), CHROMIUM (default /usr/bin/chromium)
import { chromium } from "playwright-core";
import { join } from "node:path";
import { createInterface } from "node:readline";

const BASE = process.env.GATEWAY_URL;
const ADMIN_KEY = process.env.ADMIN_KEY;
const SHOTS = process.env.SHOTS;
const MODEL = process.env.MODEL ?? "console-model";
const HOOK_URL = process.env.HOOK_URL; // a webhook receiver the test runs
const PEER_URL = process.env.PEER_URL; // another gateway whose registry has one listing
const NAV = ["Overview", "Usage", "Keys", "Providers", "Routes", "Marketplace", "Hooks", "Settings"];
const TIMEOUT = 15000;

const answers = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
function say(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}
async function ask(obj) {
  say(obj);
  const next = await answers.next();
  if (next.done) throw new Error("the test closed stdin");
  const reply = JSON.parse(next.value);
  if (!reply.ok) throw new Error(`the test reports: ${reply.error}`);
  return reply;
}
function check(cond, message) {
  if (!cond) throw new Error(message);
}
async function shot(page, name) {
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  say({ step: "screenshot", path });
}
/** Polls ``read`` until ``ok(value)``; reloads the page's data with ``refresh``. */
async function until(read, ok, what, refresh) {
  const deadline = Date.now() + TIMEOUT;
  let last;
  while (Date.now() < deadline) {
    last = await read().catch((e) => `(${e.message})`);
    if (ok(last)) return last;
    if (refresh) await refresh();
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what}: last saw ${JSON.stringify(last)}`);
}
async function go(page, name) {
  await page.getByRole("navigation").getByRole("link", { name, exact: true }).click();
  await page.getByRole("heading", { level: 1, name }).waitFor({ timeout: TIMEOUT });
}
/** The rows of the table with this caption, as arrays of cell texts. */
async function rows(page, caption) {
  const table = page.getByRole("table", { name: caption });
  await table.waitFor({ timeout: TIMEOUT });
  return table.locator("tbody tr").evaluateAll((trs) =>
    trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent.trim())),
  );
}
async function headers(page, caption) {
  return page.getByRole("table", { name: caption }).getByRole("columnheader").allTextContents();
}

async function signInByKeyboard(page, url) {
  await page.goto(url);
  await page.getByLabel("API key").waitFor({ timeout: TIMEOUT });
  // keyboard only: Tab to the field, type, Enter submits
  await page.keyboard.press("Tab");
  check(
    await page.getByLabel("API key").evaluate((el) => el === document.activeElement),
    "Tab does not reach the API key field first",
  );
  await page.keyboard.type(ADMIN_KEY);
  await page.keyboard.press("Enter");
  const nav = page.getByRole("navigation");
  await nav.waitFor({ timeout: TIMEOUT });
  for (const name of NAV) {
    await nav.getByRole("link", { name, exact: true }).waitFor({ timeout: TIMEOUT });
  }
  check(!page.url().includes(ADMIN_KEY), "the key is in the URL");
  const storage = await page.evaluate(() => ({
    session: Object.values(sessionStorage),
    local: Object.keys(localStorage).length,
    cookies: document.cookie,
  }));
  check(storage.session.includes(ADMIN_KEY), "the key is not in sessionStorage");
  check(storage.local === 0 && storage.cookies === "", "the key leaked into localStorage or cookies");
}

async function desktop(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const external = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(BASE) && !r.url().startsWith("data:") && !r.url().startsWith("blob:"))
      external.push(r.url());
  });
  const failures = [];
  page.on("pageerror", (e) => failures.push(e.message));

  // a wrong key is refused on the form
  await page.goto(`${BASE}/ui/`);
  await page.getByLabel("API key").fill("tgk-not-a-key");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").waitFor({ timeout: TIMEOUT });

  await signInByKeyboard(page, `${BASE}/ui/`);
  await shot(page, "01-overview-empty");

  // Keys: create one; the secret appears once, in a status element
  await go(page, "Keys");
  await page.getByLabel("Name", { exact: true }).fill("console-e2e");
  await page.getByLabel("Models", { exact: true }).fill(MODEL);
  await page.getByLabel("Budget (USD)", { exact: true }).fill("5");
  await page.getByRole("button", { name: "Create key" }).click();
  const status = page.getByRole("status").filter({ hasText: "shown only once" });
  await status.waitFor({ timeout: TIMEOUT });
  const secret = (await status.locator("code").textContent()).trim();
  check(/^tgk-/.test(secret), `no secret in the status element: ${secret}`);
  const keyRows = await until(
    () => rows(page, "API keys"),
    (rs) => rs.some((r) => r[0] === "console-e2e"),
    "the new key is not listed",
  );
  const keyRow = keyRows.find((r) => r[0] === "console-e2e");
  const keyId = keyRow[1];
  check(!keyRows.flat().some((c) => c.includes(secret)), "the secret is shown in the key list");
  check((await headers(page, "API keys")).includes("Budget"), "the key table has no Budget column");
  await shot(page, "02-key-created");

  // the test uses the key through the gateway with the openai SDK
  const first = await ask({ step: "key_created", key: secret, key_id: keyId, model: MODEL });

  // Usage: the request, by model, by key and by provider
  await go(page, "Usage");
  const refresh = () => page.getByRole("button", { name: "Refresh" }).click();
  await until(
    () => rows(page, "Usage by model"),
    (rs) => rs.some((r) => r[0] === MODEL && r[1] === "1"),
    "Usage by model does not show the request",
    refresh,
  );
  await page.getByLabel("Group by").selectOption("key");
  await until(
    () => rows(page, "Usage by key"),
    (rs) => rs.some((r) => r[0] === keyId && r[1] === "1"),
    "Usage by key does not show the new key's request",
    refresh,
  );
  await page.getByLabel("Group by").selectOption("provider");
  await until(
    () => rows(page, "Usage by provider"),
    (rs) => rs.some((r) => r[0] === first.provider && r[1] === "1"),
    "Usage by provider does not show the first provider",
    refresh,
  );
  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: "Export CSV" }).click();
  const csvPath = join(SHOTS, "usage-by-provider.csv");
  await (await download).saveAs(csvPath);
  say({ step: "csv", path: csvPath });
  await shot(page, "03-usage");

  // Overview: the totals count it
  await go(page, "Overview");
  const total = await until(
    () => page.getByTestId("total-requests").textContent(),
    (t) => t === String(first.requests_total),
    "Overview's request total",
    () => page.getByRole("button", { name: "Refresh" }).click(),
  );
  const p50 = await page.getByTestId("total-p50").textContent();
  check(/^\d+(\.\d+)? ms$/.test(p50), `Overview's p50 latency is ${p50}`);
  const models = await rows(page, "Usage by model, this period against the previous one");
  check(models.some((r) => r[0] === MODEL), "Overview's by-model table lacks the model");
  check(
    (await page.getByRole("img", { name: /^Requests:/ }).count()) === 1,
    "no requests chart on the Overview",
  );
  await shot(page, "04-overview");

  // Routes: swap the provider behind the model in one action
  await go(page, "Routes");
  const before = await rows(page, "Routes in match order");
  const route = before.find((r) => r[0] === MODEL);
  check(route && route[1].startsWith(first.provider), `route for ${MODEL} is not on ${first.provider}`);
  await page.getByLabel("Model or pattern").fill(MODEL);
  await page.getByLabel("Provider", { exact: true }).selectOption(first.swap_to);
  await page.getByRole("button", { name: "Swap provider" }).click();
  await page.getByRole("status").filter({ hasText: `now goes to ${first.swap_to}` }).waitFor({ timeout: TIMEOUT });
  await until(
    () => rows(page, "Routes in match order"),
    (rs) => rs.some((r) => r[0] === MODEL && r[1] === first.swap_to),
    "the route table does not show the swap",
  );
  await shot(page, "05-routes-swapped");
  const second = await ask({ step: "swapped", model: MODEL, provider: first.swap_to });

  await go(page, "Usage");
  await page.getByLabel("Group by").selectOption("provider");
  await until(
    () => rows(page, "Usage by provider"),
    (rs) => rs.some((r) => r[0] === second.provider && r[1] === "1"),
    "Usage by provider does not show the request on the new provider",
    refresh,
  );

  // Keys: rotate (a new secret, once; the old one is refused), then revoke
  await go(page, "Keys");
  await page.getByRole("button", { name: "Rotate console-e2e" }).click();
  const rotated = page.getByRole("status").filter({ hasText: "rotated" });
  await rotated.waitFor({ timeout: TIMEOUT });
  const newSecret = (await rotated.locator("code").textContent()).trim();
  check(/^tgk-/.test(newSecret) && newSecret !== secret, "rotation showed no new secret");
  await ask({ step: "rotated", old: secret, key: newSecret });
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Revoke console-e2e" }).click();
  await until(
    () => rows(page, "API keys"),
    (rs) => rs.some((r) => r[0] === "console-e2e" && r[7] === "revoked"),
    "the key is not shown revoked",
  );
  await ask({ step: "revoked", key: newSecret });
  await shot(page, "06-key-revoked");

  // Providers: health, and a test request through the gateway
  await go(page, "Providers");
  const provs = await rows(page, "Providers and their health");
  check(provs.some((r) => r[0] === first.provider && r[4].startsWith("ok")), "provider health missing");
  await page.getByLabel("Model to send").fill(MODEL);
  await page.getByRole("button", { name: "Send test request" }).click();
  await page
    .getByRole("status")
    .filter({ hasText: `by provider ${first.swap_to}` })
    .waitFor({ timeout: TIMEOUT });
  await shot(page, "07-providers");

  // the other pages: real tables, or an honest "not available"
  await go(page, "Hooks");
  check((await headers(page, "Deliveries, newest first")).includes("Event"), "Hooks table headers");
  await hooks(page);
  await go(page, "Marketplace");
  // this gateway's registry has a marketplace: its (empty) listings, a compare form
  const market = await rows(page, "Marketplace listings as the registry offers them");
  check(market.length === 1 && /No listings/.test(market[0][0]), `listings: ${JSON.stringify(market)}`);
  await page.getByLabel("Model", { exact: true }).fill(MODEL);
  await page.getByRole("button", { name: "Compare" }).click();
  await page.getByRole("table", { name: `Offers for ${MODEL}, cheapest first` }).waitFor({ timeout: TIMEOUT });
  await shot(page, "08-marketplace");
  await marketplace(page);
  await go(page, "Settings");
  const config = await rows(page, "Effective configuration and the layer that set each key");
  check(config.some((r) => r[0] === "gateway.port" && r[2] === "environment"), "Settings lacks gateway.port (environment)");
  const secretRow = config.find((r) => r[0] === "provider.mock.api_key");
  check(secretRow && !secretRow[1].includes("sk-mock-upstream"), `secret not masked: ${secretRow}`);
  await page.getByLabel("Filter keys").fill("routes.");
  const filtered = await rows(page, "Effective configuration and the layer that set each key");
  check(filtered.length >= 1 && filtered.every((r) => r[0].startsWith("routes.")), "the filter does not narrow");
  await go(page, "Users and Teams");
  const users = await rows(page, "Users");
  check(users.some((r) => r[0] === "admin@localhost"), "the admin user is not listed");
  await people(page);

  check(external.length === 0, `requests left the gateway's origin: ${external.join(", ")}`);
  check(failures.length === 0, `page errors: ${failures.join("; ")}`);
  await context.close();
  return { total, second };
}

// Users and Teams: a user and a team made in the console, the user's limits
// set, the user added to the team and a budget on the team; the test reads
// them back through the admin API.
async function people(page) {
  const email = "ada@console.test";
  const teamName = "console-team";
  await page.getByLabel("Email", { exact: true }).fill(email);
  await page.getByRole("button", { name: "Create user" }).click();
  await page.getByRole("status").filter({ hasText: `User ${email} created.` }).waitFor({ timeout: TIMEOUT });
  await page.getByLabel("Team name", { exact: true }).fill(teamName);
  await page.getByRole("button", { name: "Create team" }).click();
  await page.getByRole("status").filter({ hasText: `Team ${teamName} created.` }).waitFor({ timeout: TIMEOUT });

  // the user's limits, from the keyboard: Enter on Edit, type, Enter saves, focus comes back
  const edit = page.getByRole("button", { name: `Edit ${email}` });
  await edit.focus();
  await page.keyboard.press("Enter");
  const userEditor = page.getByRole("region", { name: `Edit user ${email}` });
  await userEditor.waitFor({ timeout: TIMEOUT });
  check(
    await userEditor.getByRole("heading").evaluate((el) => el === document.activeElement),
    "the user editor does not take the focus",
  );
  await userEditor.getByLabel("RPM", { exact: true }).focus();
  await page.keyboard.type("120");
  await page.keyboard.press("Enter");
  await page.getByRole("status").filter({ hasText: `User ${email} saved.` }).waitFor({ timeout: TIMEOUT });
  await userEditor.waitFor({ state: "detached", timeout: TIMEOUT });
  check(await edit.evaluate((el) => el === document.activeElement), "the focus is not back on Edit");

  await page.getByRole("button", { name: `Edit team ${teamName}` }).click();
  const teamEditor = page.getByRole("region", { name: `Edit team ${teamName}` });
  await teamEditor.getByLabel("User to add").selectOption({ label: email });
  await teamEditor.getByRole("button", { name: "Add member" }).click();
  await page.getByRole("status").filter({ hasText: `${email} added to team ${teamName}.` }).waitFor({ timeout: TIMEOUT });
  await until(
    () => rows(page, `Members of ${teamName}`),
    (rs) => rs.some((r) => r[0] === email),
    "the member table does not show the new member",
  );
  const limits = teamEditor.getByRole("form", { name: `Limits of team ${teamName}` });
  await limits.getByLabel("Budget (USD)", { exact: true }).fill("25");
  await limits.getByLabel("Budget period").selectOption("week");
  await limits.getByLabel("TPM", { exact: true }).fill("50000");
  await limits.getByRole("button", { name: "Save limits" }).click();
  await page.getByRole("status").filter({ hasText: `Limits of team ${teamName} saved.` }).waitFor({ timeout: TIMEOUT });
  await until(
    () => rows(page, "Teams"),
    (rs) => rs.some((r) => r[0] === teamName && r[2] === email && r[5] === "$25.00 / week"),
    "the team table does not show the member and the budget",
  );
  await until(
    () => rows(page, "Users"),
    (rs) => rs.some((r) => r[0] === email && r[4] === teamName && r[5] === "120"),
    "the user row lacks its team or RPM",
  );
  await shot(page, "09-users-and-teams");
  await ask({ step: "people", email, team: teamName });
}

/** The form's own alert, once it says ``text``. */
async function formAlert(form, text) {
  await form.getByRole("alert").filter({ hasText: text }).waitFor({ timeout: TIMEOUT });
}

// Hooks: a webhook added in the console, its generated secret shown once; the
// test's receiver verifies the console's test delivery with that secret; then
// the hook is deleted. A refused URL is reported in the form.
async function hooks(page) {
  const name = "console-hook";
  const form = page.getByRole("form", { name: "Add hook" });
  await form.getByLabel("Hook name", { exact: true }).fill(name);
  await form.getByLabel("Events", { exact: true }).fill("key.*, user.created");
  await form.getByLabel("Webhook URL", { exact: true }).fill("ftp://files.example/in");
  await form.getByRole("button", { name: "Add hook" }).click();
  await formAlert(form, "'url' must be an http:// or https:// URL.");
  await form.getByLabel("Webhook URL", { exact: true }).fill(HOOK_URL);
  await form.getByRole("button", { name: "Add hook" }).click();
  const shown = page.getByRole("status").filter({ hasText: "shown only once" });
  await shown.waitFor({ timeout: TIMEOUT });
  const secret = (await shown.locator("code").textContent()).trim();
  check(/^whsec_/.test(secret), `no signing secret shown: ${secret}`);
  check((await form.getByRole("alert").count()) === 0, "the form still shows the old error");
  const listed = await until(
    () => rows(page, "Provisioning hooks"),
    (rs) => rs.some((r) => r[0] === name && r[2] === "key.*, user.created" && r[4] === "api"),
    "the new hook is not listed",
  );
  check(!listed.flat().some((c) => c.includes(secret)), "the secret is shown in the hook list");
  await ask({ step: "hook_added", name, secret });
  await page.getByRole("button", { name: `Test ${name}` }).click();
  await page.getByRole("status").filter({ hasText: `Test of ${name}: {"ok":true` }).waitFor({ timeout: TIMEOUT });
  await ask({ step: "hook_tested", name });
  await shot(page, "08-hooks");
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: `Delete ${name}` }).click();
  await page.getByRole("status").filter({ hasText: `Hook ${name} deleted.` }).waitFor({ timeout: TIMEOUT });
  await until(
    () => rows(page, "Provisioning hooks"),
    (rs) => !rs.some((r) => r[0] === name),
    "the deleted hook is still listed",
  );
  await ask({ step: "hook_deleted", name });
}

// Marketplace: a listing published from the console (a model priced nowhere
// is refused in the form first), a peer followed (this registry itself is
// refused), its listing seen here, then the peer removed and the listing
// unpublished.
async function marketplace(page) {
  const listingName = "Console listing";
  const publish = page.getByRole("form", { name: "Publish listing" });
  await publish.getByLabel("Models to list", { exact: true }).fill("console-listed");
  await publish.getByRole("button", { name: "Publish listing" }).click();
  await formAlert(publish, "No price for 'console-listed'");
  await publish.getByLabel("Input price (USD per 1M tokens)", { exact: true }).fill("0.5");
  await publish.getByLabel("Output price (USD per 1M tokens)", { exact: true }).fill("1.5");
  await publish.getByLabel("Listing name", { exact: true }).fill(listingName);
  await publish.getByRole("button", { name: "Publish listing" }).click();
  await page.getByRole("status").filter({ hasText: `(${listingName}): console-listed at ` }).waitFor({ timeout: TIMEOUT });
  await until(
    () => rows(page, "Marketplace listings as the registry offers them"),
    (rs) => rs.some((r) => r[0] === listingName && r[2] === "$0.50 / $1.50" && r[3] === "this gateway"),
    "the published listing is not listed",
  );

  const addPeer = page.getByRole("form", { name: "Add a peer" });
  await addPeer.getByLabel("Peer registry URL", { exact: true }).fill(BASE);
  await addPeer.getByRole("button", { name: "Add peer" }).click();
  await formAlert(addPeer, "That URL is this registry itself.");
  await addPeer.getByLabel("Peer registry URL", { exact: true }).fill(PEER_URL);
  await addPeer.getByRole("button", { name: "Add peer" }).click();
  await page.getByRole("status").filter({ hasText: "Following " }).waitFor({ timeout: TIMEOUT });
  await until(
    () => rows(page, "Peer registries this one follows"),
    (rs) => rs.some((r) => r[0] === PEER_URL && r[3] === "1"),
    "the peer is not listed with its listing",
  );
  const peerListing = await until(
    () => rows(page, "Marketplace listings as the registry offers them"),
    (rs) => rs.some((r) => r[0] === "Peer listing"),
    "the peer's listing is not listed here",
  );
  check(peerListing.find((r) => r[0] === "Peer listing")[3] !== "this gateway", "the peer's listing is called ours");
  await page.getByRole("button", { name: "Use Peer listing" }).waitFor({ timeout: TIMEOUT });
  await ask({ step: "market", listing: listingName, peer: PEER_URL });
  await shot(page, "08-marketplace-forms");

  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: `Remove peer ${PEER_URL}` }).click();
  await page.getByRole("status").filter({ hasText: `No longer following ${PEER_URL}.` }).waitFor({ timeout: TIMEOUT });
  await until(
    () => rows(page, "Marketplace listings as the registry offers them"),
    (rs) => !rs.some((r) => r[0] === "Peer listing"),
    "the removed peer's listing is still listed",
  );
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: `Unpublish ${listingName}` }).click();
  await page.getByRole("status").filter({ hasText: `Unpublished ${listingName}` }).waitFor({ timeout: TIMEOUT });
  await until(
    () => rows(page, "Marketplace listings as the registry offers them"),
    (rs) => rs.length === 1 && /No listings/.test(rs[0][0]),
    "the unpublished listing is still listed",
  );
}

// A viewer's key: the same pages, read-only (no write form, no write button).
async function viewer(browser) {
  const { key } = await ask({ step: "viewer_key" });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${BASE}/ui/`);
  await page.getByLabel("API key", { exact: true }).fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation").waitFor({ timeout: TIMEOUT });
  const readOnly = () => page.getByText("Signed in with a viewer key: this page is read-only").waitFor({ timeout: TIMEOUT });
  await go(page, "Marketplace");
  await readOnly();
  await rows(page, "Marketplace listings as the registry offers them");
  await rows(page, "Peer registries this one follows");
  for (const form of ["Publish listing", "Add a peer"])
    check((await page.getByRole("form", { name: form }).count()) === 0, `a viewer sees ${form}`);
  await go(page, "Hooks");
  await readOnly();
  check((await page.getByRole("form", { name: "Add hook" }).count()) === 0, "a viewer sees Add hook");
  await go(page, "Users and Teams");
  await readOnly();
  await until(
    () => rows(page, "Users"),
    (rs) => rs.some((r) => r[0] === "admin@localhost"),
    "a viewer does not see the users",
  );
  check((await page.getByRole("button", { name: "Create user" }).count()) === 0, "a viewer sees Create user");
  check((await page.getByRole("button", { name: /^Edit / }).count()) === 0, "a viewer sees Edit buttons");
  await shot(page, "12-viewer-read-only");
  await context.close();
}

async function phone(browser) {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  const page = await context.newPage();
  await signInByKeyboard(page, `${BASE}/ui/h5/`);
  check(
    await page.locator(".shell").evaluate((el) => el.classList.contains("layout-h5")),
    "/ui/h5/ is not the h5 layout",
  );
  await go(page, "Keys");
  await page.getByRole("button", { name: "Create key" }).waitFor({ timeout: TIMEOUT });
  const width = await page.evaluate(() => ({
    doc: document.documentElement.scrollWidth,
    view: window.innerWidth,
  }));
  check(width.doc <= width.view, `the h5 Keys page scrolls sideways: ${width.doc} > ${width.view}`);
  // the list arrives after the page renders: wait for it rather than read it once
  await until(
    () => rows(page, "API keys"),
    (rs) => rs.some((r) => r[0] === "console-e2e"),
    "h5 key list lacks the key",
  );
  await shot(page, "10-h5-keys");
  await go(page, "Overview");
  await page.getByTestId("total-requests").waitFor({ timeout: TIMEOUT });
  await shot(page, "11-h5-overview");
  await context.close();
}

// launch() starts Chromium on a fresh, empty profile (--user-data-dir) of its own.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage", // a container's /dev/shm is small (64 MB under docker run)
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let code = 0;
try {
  const result = await desktop(browser);
  await viewer(browser);
  await phone(browser);
  say({ step: "done", ...result });
} catch (err) {
  say({ step: "failed", error: String(err && err.stack ? err.stack : err) });
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
