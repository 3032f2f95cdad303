import { useState, type FormEvent } from "react";
import { ApiError, call, type Listing } from "../api";
import { Table } from "../components/Table";
import { ReadOnlyNote } from "../components/ReadOnlyNote";
import { useAccess } from "../components/useAccess";
import { useLoad } from "../components/useLoad";
import { usd } from "../format";
import { MarketPeers } from "./MarketPeers";
import { MarketPublish } from "./MarketPublish";

// The registry's marketplace admin API (asked, never assumed: an older
// gateway answers 404 and the page says so; a mesh router passes it to the registry).
export const MARKET_LISTINGS = "/admin/market/listings";

interface MarketModel {
  name: string;
  input: number | null;
  output: number | null;
}

interface MarketListing {
  id: string;
  name: string;
  origin: string;
  local: boolean;
  via: string | null;
  region?: string | null;
  models: MarketModel[];
  latency_ms: number | null;
  uptime: number | null;
  age_s: number;
}

interface Comparison {
  id: string;
  name: string;
  origin: string;
  input: number | null;
  output: number | null;
  effective_usd: number;
  latency_ms: number | null;
  uptime: number | null;
}

interface Use {
  id: string;
  status: string;
  provider?: string;
  routes?: { model: string; upstream_model: string }[];
}

const pct = (n: number | null) => (n === null ? "—" : `${(n * 100).toFixed(1)}%`);
const msOr = (n: number | null) => (n === null ? "—" : `${n.toFixed(0)} ms`);

async function listings(sort: string): Promise<MarketListing[] | null> {
  try {
    const r = await call<Listing<MarketListing>>("GET", MARKET_LISTINGS, { query: { sort } });
    return r.data;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

export function Marketplace() {
  const [sort, setSort] = useState("");
  const found = useLoad(() => listings(sort), [sort]);
  const who = useAccess();
  const { canWrite } = who;
  const [model, setModel] = useState("");
  const [compared, setCompared] = useState<{ model: string; rows: Comparison[] } | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function compare(e: FormEvent) {
    e.preventDefault();
    setError(null);
    try {
      const m = model.trim();
      const r = await call<Listing<Comparison>>("GET", `/admin/market/compare/${encodeURIComponent(m)}`);
      setCompared({ model: m, rows: r.data });
    } catch (err) {
      setError((err as Error).message);
    }
  }

  async function use(l: MarketListing) {
    setError(null);
    setMessage(null);
    try {
      const u = await call<Use>("POST", "/admin/market/use", { body: { listing_id: l.id } });
      const routes = (u.routes ?? []).map((r) => r.model).join(", ");
      setMessage(
        u.status === "active"
          ? `Using ${l.name}: provider ${u.provider}${routes ? `, routes ${routes}` : ""}.`
          : `Asked ${l.name} for access: ${u.status} (the publisher approves it).`,
      );
    } catch (err) {
      setError((err as Error).message);
    }
  }

  async function unpublish(l: MarketListing) {
    if (!window.confirm(`Unpublish ${l.name} (${l.id})? Its subscribers' keys are revoked.`)) return;
    setError(null);
    setMessage(null);
    try {
      const r = await call<{ keys_revoked: number }>("DELETE", `${MARKET_LISTINGS}/${encodeURIComponent(l.id)}`);
      setMessage(`Unpublished ${l.name}; ${r.keys_revoked} subscriber key(s) revoked.`);
    } catch (err) {
      setError((err as Error).message);
    }
    found.reload();
  }

  const changed = (done: string) => {
    setError(null);
    setMessage(done);
    found.reload();
  };

  if (!found.loaded) return <p>Asking the gateway for marketplace listings…</p>;
  if (found.error)
    return (
      <p role="alert" className="error">
        {found.error}
      </p>
    );
  if (!found.data)
    return (
      <p className="unavailable">
        This gateway does not answer the marketplace API (/admin/market: an older version), so
        there are no listings to browse, compare or use. Nothing is shown rather than sample data.
      </p>
    );
  return (
    <>
      <div role="status">{message && <p className="ok">{message}</p>}</div>
      <ReadOnlyNote {...who} />
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <section aria-labelledby="browse">
        <h2 id="browse">Listings</h2>
        <form className="filters" onSubmit={(e) => e.preventDefault()}>
          <label htmlFor="market-sort">Sort by</label>
          <select id="market-sort" value={sort} onChange={(e) => setSort(e.target.value)}>
            <option value="">as the registry lists them</option>
            <option value="price">price</option>
            <option value="latency">latency</option>
            <option value="uptime">uptime</option>
          </select>
        </form>
        <Table
          caption="Marketplace listings as the registry offers them"
          rows={found.data}
          rowKey={(l) => l.id}
          empty="No listings: publish one or follow a peer below (or gateway market publish, gateway market peers add URL)."
          columns={[
            { header: "Name", cell: (l) => l.name },
            { header: "Models", cell: (l) => l.models.map((m) => m.name).join(", ") },
            {
              header: "Price in / out (per 1M)",
              cell: (l) => l.models.map((m) => `${usd(m.input)} / ${usd(m.output)}`).join("; "),
            },
            { header: "Origin", cell: (l) => (l.local ? "this gateway" : l.via ? `${l.origin} via ${l.via}` : l.origin) },
            { header: "Latency", cell: (l) => msOr(l.latency_ms), numeric: true },
            { header: "Uptime", cell: (l) => pct(l.uptime), numeric: true },
            {
              header: "Actions",
              cell: (l) =>
                !canWrite ? null : l.local ? (
                  <button type="button" aria-label={`Unpublish ${l.name}`} onClick={() => unpublish(l)}>
                    Unpublish
                  </button>
                ) : (
                  <button type="button" aria-label={`Use ${l.name}`} onClick={() => use(l)}>
                    Use
                  </button>
                ),
            },
          ]}
        />
      </section>
      {canWrite && <MarketPublish onPublished={changed} />}
      <section aria-labelledby="compare">
        <h2 id="compare">Compare offers for a model</h2>
        <form className="filters" onSubmit={compare}>
          <label htmlFor="market-model">Model</label>
          <input id="market-model" required value={model} onChange={(e) => setModel(e.target.value)} />
          <button type="submit">Compare</button>
        </form>
        {compared && (
          <Table
            caption={`Offers for ${compared.model}, cheapest first`}
            rows={compared.rows}
            rowKey={(r) => r.id}
            empty="No listing offers this model."
            columns={[
              { header: "Listing", cell: (r) => r.name },
              { header: "Origin", cell: (r) => r.origin },
              { header: "Input (per 1M)", cell: (r) => usd(r.input), numeric: true },
              { header: "Output (per 1M)", cell: (r) => usd(r.output), numeric: true },
              { header: "Typical request", cell: (r) => usd(r.effective_usd), numeric: true },
              { header: "Latency", cell: (r) => msOr(r.latency_ms), numeric: true },
              { header: "Uptime", cell: (r) => pct(r.uptime), numeric: true },
            ]}
          />
        )}
      </section>
      <MarketPeers canWrite={canWrite} onChange={changed} />
    </>
  );
}
