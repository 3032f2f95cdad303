import { useState, type FormEvent } from "react";
import { call, type Listing, type Provider } from "../api";
import { Table } from "../components/Table";
import { useLoad } from "../components/useLoad";
import { storedKey } from "../session";

interface TestResult {
  ok: boolean;
  status: number;
  text: string;
  requestId: string | null;
  provider: string | null;
  ms: number;
}

/** One chat request through the gateway itself, then the ledger's record of it
 *  (which provider answered, as the gateway saw it). */
async function testModel(model: string): Promise<TestResult> {
  const started = performance.now();
  const resp = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: { authorization: `Bearer ${storedKey()}`, "content-type": "application/json" },
    body: JSON.stringify({ model, max_tokens: 8, messages: [{ role: "user", content: "ping" }] }),
    credentials: "omit",
  });
  const ms = performance.now() - started;
  const body = await resp.json().catch(() => null);
  const requestId = resp.headers.get("x-request-id");
  let provider: string | null = null;
  for (let i = 0; requestId && i < 20 && provider === null; i++) {
    try {
      const row = await call<{ provider: string | null }>("GET", `/admin/usage/${requestId}`);
      provider = row.provider ?? "";
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const text = resp.ok
    ? String(body?.choices?.[0]?.message?.content ?? "")
    : String(body?.error?.message ?? `HTTP ${resp.status}`);
  return { ok: resp.ok, status: resp.status, text, requestId, provider, ms };
}

export function Providers() {
  const providers = useLoad(
    () => call<Listing<Provider>>("GET", "/admin/providers").then((r) => r.data),
    [],
  );
  const [model, setModel] = useState("echo");
  const [result, setResult] = useState<TestResult | null>(null);
  const [busy, setBusy] = useState(false);

  async function test(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    try {
      setResult(await testModel(model.trim()));
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      {providers.error && (
        <p role="alert" className="error">
          {providers.error}
        </p>
      )}
      <Table
        caption="Providers and their health"
        rows={providers.data ?? []}
        rowKey={(p) => p.name}
        columns={[
          { header: "Name", cell: (p) => p.name },
          { header: "Kind", cell: (p) => p.kind },
          { header: "Base URL", cell: (p) => <code>{p.base_url || "—"}</code> },
          { header: "Credential", cell: (p) => (p.has_credential ? "set" : "none") },
          {
            header: "Health",
            cell: (p) => (
              <span className={`health health-${p.health.status}`}>
                {p.health.status}
                {p.health.problem ? `: ${p.health.problem}` : ""}
              </span>
            ),
          },
          { header: "Source", cell: (p) => p.source },
        ]}
      />
      <section aria-labelledby="test-provider">
        <h2 id="test-provider">Test with one request</h2>
        <form className="filters" onSubmit={test}>
          <label htmlFor="test-model">Model to send</label>
          <input id="test-model" value={model} onChange={(e) => setModel(e.target.value)} />
          <button type="submit" disabled={busy || !model.trim()}>
            Send test request
          </button>
        </form>
        <div role="status">
          {result && (
            <p className={result.ok ? "ok" : "error"}>
              {result.ok ? "Answered" : `Failed (${result.status})`} in {result.ms.toFixed(0)} ms
              {result.provider !== null && <> by provider <strong>{result.provider || "(none)"}</strong></>}
              {result.requestId && <> · request {result.requestId}</>}: {result.text}
            </p>
          )}
        </div>
      </section>
    </>
  );
}
