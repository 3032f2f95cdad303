import { useState } from "react";
import { ApiError, call } from "../api";
import { Table } from "../components/Table";
import { useLoad } from "../components/useLoad";

interface ConfigRow {
  key: string;
  value: string;
  layer: string;
}

interface Config {
  data: ConfigRow[];
  files: string[];
  env: string;
}

async function config(): Promise<Config | null> {
  try {
    return await call<Config>("GET", "/admin/config");
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

export function Settings() {
  const found = useLoad(config, []);
  const [filter, setFilter] = useState("");
  if (!found.loaded) return <p>Asking the gateway for its configuration…</p>;
  if (found.error)
    return (
      <p role="alert" className="error">
        {found.error}
      </p>
    );
  if (!found.data)
    return (
      <p className="unavailable">
        This gateway does not serve its effective configuration over the admin API. On the
        gateway's machine, <code>gateway config show</code> prints every key, masked where secret,
        with the layer that set it.
      </p>
    );
  const f = filter.trim().toLowerCase();
  const rows = found.data.data.filter(
    (r) => !f || r.key.toLowerCase().includes(f) || r.layer.toLowerCase().includes(f),
  );
  return (
    <>
      <p className="note">
        Environment {found.data.env}; files: {found.data.files.join(", ") || "none (built-in defaults)"}.
        Secrets are masked by the gateway. Change them in the files or the environment, then{" "}
        <code>gateway reload</code>.
      </p>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <label htmlFor="config-filter">Filter keys</label>
        <input id="config-filter" value={filter} onChange={(e) => setFilter(e.target.value)} />
      </form>
      <Table
        caption="Effective configuration and the layer that set each key"
        rows={rows}
        rowKey={(r) => r.key}
        columns={[
          { header: "Key", cell: (r) => <code>{r.key}</code> },
          { header: "Value", cell: (r) => <code>{r.value}</code> },
          { header: "Layer", cell: (r) => r.layer },
        ]}
      />
    </>
  );
}
