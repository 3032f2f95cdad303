import { useState, type FormEvent } from "react";
import { call, type CreatedKey, type Key, type Listing } from "../api";
import { Table } from "../components/Table";
import { useLoad } from "../components/useLoad";
import { LimitFields } from "../components/LimitFields";
import { int, usd, when } from "../format";
import { budgetText, noLimits, parseLimits } from "../limits";

export function Keys() {
  const keys = useLoad(() => call<Listing<Key>>("GET", "/admin/keys").then((r) => r.data), []);
  const [name, setName] = useState("");
  const [models, setModels] = useState("");
  const [limits, setLimits] = useState(noLimits);
  const [secret, setSecret] = useState<{ name: string; key: string; verb: string } | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function create(e: FormEvent) {
    e.preventDefault();
    setError(null);
    try {
      const { budget_period, ...counts } = parseLimits(limits);
      const body = {
        name: name.trim(),
        models: models
          .split(",")
          .map((m) => m.trim())
          .filter(Boolean),
        ...counts,
        ...(counts.budget_usd !== null ? { budget_period } : {}),
      };
      const made = await call<CreatedKey>("POST", "/admin/keys", { body });
      setSecret({ name: made.name, key: made.key, verb: "created" });
      setName("");
      setModels("");
      setLimits({ ...noLimits, period: limits.period });
      keys.reload();
    } catch (err) {
      setError((err as Error).message);
    }
  }

  async function act(key: Key, action: "rotate" | "revoke") {
    setError(null);
    if (action === "revoke" && !window.confirm(`Revoke the key ${key.name} (${key.id})?`)) return;
    try {
      const res = await call<CreatedKey>("POST", `/admin/keys/${encodeURIComponent(key.id)}/${action}`);
      if (action === "rotate") setSecret({ name: res.name, key: res.key, verb: "rotated" });
      keys.reload();
    } catch (err) {
      setError((err as Error).message);
    }
  }

  return (
    <>
      <section aria-labelledby="new-key">
        <h2 id="new-key">Create a key</h2>
        <form className="grid-form" onSubmit={create}>
          <label htmlFor="key-name">Name</label>
          <input id="key-name" required value={name} onChange={(e) => setName(e.target.value)} />
          <label htmlFor="key-models">Models</label>
          <input
            id="key-models"
            placeholder="e.g. gpt-4o*, echo (empty: every model)"
            value={models}
            onChange={(e) => setModels(e.target.value)}
          />
          <LimitFields prefix="key" value={limits} onChange={setLimits} />
          <button type="submit">Create key</button>
        </form>
        <div role="status" className={secret ? "secret" : "visually-hidden"}>
          {secret && (
            <>
              <p>
                Key {secret.name} {secret.verb}. Copy the secret now: it is shown only once.
              </p>
              <code className="secret-value">{secret.key}</code>
            </>
          )}
        </div>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
      </section>
      <section aria-labelledby="key-list">
        <h2 id="key-list">Keys</h2>
        {keys.error && <p className="error">{keys.error}</p>}
        <Table
          caption="API keys"
          rows={keys.data ?? []}
          rowKey={(k) => k.id}
          columns={[
            { header: "Name", cell: (k) => k.name },
            { header: "ID", cell: (k) => <code>{k.id}</code> },
            { header: "Hint", cell: (k) => <code>{k.hint}</code> },
            { header: "Models", cell: (k) => (k.models.length ? k.models.join(", ") : "all") },
            { header: "RPM", cell: (k) => int(k.rpm), numeric: true },
            { header: "TPM", cell: (k) => int(k.tpm), numeric: true },
            {
              header: "Budget",
              cell: (k) => budgetText(k, usd),
              numeric: true,
            },
            { header: "Status", cell: (k) => (k.is_admin ? `${k.status} (admin)` : k.status) },
            { header: "Created", cell: (k) => when(k.created_at) },
            {
              header: "Actions",
              cell: (k) =>
                k.status === "active" && !k.is_admin ? (
                  <span className="actions">
                    <button type="button" onClick={() => act(k, "rotate")} aria-label={`Rotate ${k.name}`}>
                      Rotate
                    </button>
                    <button type="button" onClick={() => act(k, "revoke")} aria-label={`Revoke ${k.name}`}>
                      Revoke
                    </button>
                  </span>
                ) : null,
            },
          ]}
        />
      </section>
    </>
  );
}
