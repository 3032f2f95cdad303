// The registries this one follows (GET/POST /admin/market/peers, as
// `gateway market peers` does): their listings join this registry's.
import { useState, type FormEvent } from "react";
import { call, type Listing } from "../api";
import { FormAlert } from "../components/FormAlert";
import { Table } from "../components/Table";
import { useLoad } from "../components/useLoad";
import { useSubmit } from "../components/useSubmit";
import { when } from "../format";

interface Peer {
  url: string;
  registry_id: string;
  name: string | null;
  has_token: boolean;
  last_poll: number | null;
  last_status: string | number | null;
  last_error: string | null;
  listings: number;
  refused: number;
}

export function MarketPeers(props: { canWrite: boolean; onChange: (message: string) => void }) {
  const { canWrite, onChange } = props;
  const peers = useLoad(() => call<Listing<Peer>>("GET", "/admin/market/peers").then((r) => r.data), []);
  const [url, setUrl] = useState("");
  const [token, setToken] = useState("");
  const adding = useSubmit();
  const removing = useSubmit();

  async function add(e: FormEvent) {
    e.preventDefault();
    const given = url.trim();
    const ok = await adding.submit(async () => {
      const p = await call<Peer>("POST", "/admin/market/peers", { body: { url: given, ...(token ? { token } : {}) } });
      onChange(`Following ${p.name ?? p.url} (${p.registry_id}): ${p.listings} listings.`);
    });
    if (ok) {
      setUrl("");
      setToken("");
    }
    peers.reload();
  }

  async function remove(p: Peer) {
    if (!window.confirm(`Stop following ${p.url}? Its listings leave this registry.`)) return;
    await removing.submit(async () => {
      await call("POST", "/admin/market/peers/remove", { body: { url: p.url } });
      onChange(`No longer following ${p.url}.`);
    });
    peers.reload();
  }

  return (
    <section aria-labelledby="peers">
      <h2 id="peers">Peers</h2>
      {peers.error && <p className="error">{peers.error}</p>}
      <Table
        caption="Peer registries this one follows"
        rows={peers.data ?? []}
        rowKey={(p) => p.url}
        empty="No peers: this registry lists its own listings only."
        columns={[
          { header: "URL", cell: (p) => p.url },
          { header: "Name", cell: (p) => p.name ?? "—" },
          { header: "Registry", cell: (p) => <code>{p.registry_id}</code> },
          { header: "Listings", cell: (p) => p.listings, numeric: true },
          { header: "Last poll", cell: (p) => (p.last_poll ? when(p.last_poll) : "—") },
          { header: "Last error", cell: (p) => p.last_error ?? "—" },
          ...(canWrite
            ? [
                {
                  header: "Actions",
                  cell: (p: Peer) => (
                    <button type="button" aria-label={`Remove peer ${p.url}`} onClick={() => remove(p)}>
                      Remove
                    </button>
                  ),
                },
              ]
            : []),
        ]}
      />
      <FormAlert error={removing.error} />
      {canWrite && (
        <form className="filters" onSubmit={add} aria-label="Add a peer">
          <label htmlFor="peer-url">Peer registry URL</label>
          <input id="peer-url" type="url" required value={url} onChange={(e) => setUrl(e.target.value)} />
          <label htmlFor="peer-token">Peer token</label>
          <input
            id="peer-token"
            type="password"
            autoComplete="off"
            placeholder="if its feed needs one"
            value={token}
            onChange={(e) => setToken(e.target.value)}
          />
          <button type="submit" disabled={adding.busy}>
            Add peer
          </button>
          <FormAlert error={adding.error} />
        </form>
      )}
    </section>
  );
}
