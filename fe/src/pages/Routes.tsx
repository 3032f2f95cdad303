import { useState, type FormEvent } from "react";
import { call, type Listing, type Provider, type RouteListing } from "../api";
import { Table } from "../components/Table";
import { useLoad } from "../components/useLoad";

export function RoutesPage() {
  const routes = useLoad(() => call<RouteListing>("GET", "/admin/routes"), []);
  const providers = useLoad(
    () => call<Listing<Provider>>("GET", "/admin/providers").then((r) => r.data),
    [],
  );
  const [pattern, setPattern] = useState("");
  const [provider, setProvider] = useState("");
  const [upstream, setUpstream] = useState("");
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function swap(e: FormEvent) {
    e.preventDefault();
    setError(null);
    setMessage(null);
    const existing = routes.data?.data.find((r) => r.pattern === pattern.trim());
    try {
      await call("PUT", "/admin/routes", {
        body: {
          pattern: pattern.trim(),
          targets: [{ provider, upstream_model: upstream.trim() || null }],
          ...(existing ? { position: existing.position } : {}),
        },
      });
      setMessage(`${pattern.trim()} now goes to ${provider}${upstream.trim() ? `:${upstream.trim()}` : ""}.`);
      routes.reload();
    } catch (err) {
      setError((err as Error).message);
    }
  }

  const names = (providers.data ?? []).map((p) => p.name);
  const data = routes.data;
  return (
    <>
      <section aria-labelledby="swap">
        <h2 id="swap">Swap the provider behind a model</h2>
        <form className="grid-form" onSubmit={swap}>
          <label htmlFor="swap-model">Model or pattern</label>
          <input
            id="swap-model"
            list="route-patterns"
            required
            value={pattern}
            onChange={(e) => setPattern(e.target.value)}
          />
          <datalist id="route-patterns">
            {(data?.data ?? []).map((r) => (
              <option key={r.pattern} value={r.pattern} />
            ))}
          </datalist>
          <label htmlFor="swap-provider">Provider</label>
          <select id="swap-provider" required value={provider} onChange={(e) => setProvider(e.target.value)}>
            <option value="">(choose)</option>
            {names.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
          <label htmlFor="swap-upstream">Upstream model (optional)</label>
          <input id="swap-upstream" value={upstream} onChange={(e) => setUpstream(e.target.value)} />
          <button type="submit">Swap provider</button>
        </form>
        <div role="status">{message && <p className="ok">{message}</p>}</div>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
      </section>
      <section aria-labelledby="route-table">
        <h2 id="route-table">Routes (first match wins)</h2>
        {routes.error && <p className="error">{routes.error}</p>}
        <Table
          caption="Routes in match order"
          rows={data?.data ?? []}
          rowKey={(r) => r.pattern}
          columns={[
            { header: "Pattern", cell: (r) => <code>{r.pattern}</code> },
            {
              header: "Providers (in fallback order)",
              cell: (r) =>
                r.targets.map((t) => (t.upstream_model ? `${t.provider}:${t.upstream_model}` : t.provider)).join(", "),
            },
            { header: "Source", cell: (r) => r.source },
          ]}
        />
        {data && (
          <p className="note">
            Primary provider (takes every model no route matches): {data.primary_provider ?? "none"}.
            {Object.keys(data.aliases).length > 0 && (
              <> Aliases: {Object.entries(data.aliases).map(([a, t]) => `${a} → ${t}`).join(", ")}.</>
            )}
          </p>
        )}
      </section>
    </>
  );
}
