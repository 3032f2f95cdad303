import { useState, type FormEvent } from "react";
import { call, type CreatedKey, type Key, type Listing } from "../api";
import { Table } from "../components/Table";
import { useLoad } from "../components/useLoad";
import { int, usd, when } from "../format";

function numberOrNull(raw: string, name: string): number | null {
  if (raw.trim() === "") return null;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a number of at least 0.`);
  return n;
}

export function Keys() {
  const keys = useLoad(() => call<Listing<Key>>("GET", "/admin/keys").then((r) => r.data), []);
  const [name, setName] = useState("");
  const [models, setModels] = useState("");
  const [rpm, setRpm] = useState("");
  const [tpm, setTpm] = useState("");
  const [budget, setBudget] = useState("");
  const [period, setPeriod] = useState("month");
  const [secret, setSecret] = useState<{ name: string; key: string; verb: string } | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function create(e: FormEvent) {
    e.preventDefault();
    setError(null);
    try {
      const budgetUsd = numberOrNull(budget, "Budget (USD)");
      const body = {
        name: name.trim(),
        models: models
          .split(",")
          .map((m) => m.trim())
          .filter(Boolean),
        rpm: numberOrNull(rpm, "RPM"),
        tpm: numberOrNull(tpm, "TPM"),
        budget_usd: budgetUsd,
        ...(budgetUsd !== null ? { budget_period: period } : {}),
      };
      const made = await call<CreatedKey>("POST", "/admin/keys", { body });
      setSecret({ name: made.name, key: made.key, verb: "created" });
      setName("");
      setModels("");
      setRpm("");
      setTpm("");
      setBudget("");
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
          <label htmlFor="key-rpm">RPM</label>
          <input id="key-rpm" inputMode="numeric" value={rpm} onChange={(e) => setRpm(e.target.value)} />
          <label htmlFor="key-tpm">TPM</label>
          <input id="key-tpm" inputMode="numeric" value={tpm} onChange={(e) => setTpm(e.target.value)} />
          <label htmlFor="key-budget">Budget (USD)</label>
          <input
            id="key-budget"
            inputMode="decimal"
            value={budget}
            onChange={(e) => setBudget(e.target.value)}
          />
          <label htmlFor="key-period">Budget period</label>
          <select id="key-period" value={period} onChange={(e) => setPeriod(e.target.value)}>
            <option value="day">day</option>
            <option value="week">week</option>
            <option value="month">month</option>
            <option value="total">total</option>
          </select>
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
              cell: (k) => (k.budget_usd === null ? "—" : `${usd(k.budget_usd)} / ${k.budget_period}`),
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
