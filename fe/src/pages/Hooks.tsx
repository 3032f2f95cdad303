import { useState } from "react";
import { call, type Delivery, type Hook, type Listing } from "../api";
import { show } from "../components/Probe";
import { Table } from "../components/Table";
import { useLoad } from "../components/useLoad";
import { when } from "../format";

export function Hooks() {
  const [failedOnly, setFailedOnly] = useState(false);
  const hooks = useLoad(() => call<Listing<Hook>>("GET", "/admin/hooks").then((r) => r.data), []);
  const log = useLoad(
    () =>
      call<Listing<Delivery>>("GET", "/admin/hooks/log", {
        query: { failed: failedOnly ? "true" : undefined, limit: 100 },
      }).then((r) => r.data),
    [failedOnly],
  );
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function replay(eventId: string) {
    setError(null);
    try {
      const res = await call<{ queued: number }>("POST", `/admin/hooks/replay/${encodeURIComponent(eventId)}`);
      setMessage(`Event ${eventId}: ${res.queued} deliveries queued again.`);
      log.reload();
    } catch (err) {
      setError((err as Error).message);
    }
  }

  async function test(name: string) {
    setError(null);
    try {
      const res = await call<Record<string, unknown>>("POST", `/admin/hooks/${encodeURIComponent(name)}/test`);
      setMessage(`Test of ${name}: ${show(res)}`);
    } catch (err) {
      setError((err as Error).message);
    }
  }

  return (
    <>
      <div role="status">{message && <p className="ok">{message}</p>}</div>
      {(error || hooks.error || log.error) && (
        <p role="alert" className="error">
          {error || hooks.error || log.error}
        </p>
      )}
      <section aria-labelledby="hook-list">
        <h2 id="hook-list">Hooks</h2>
        <Table
          caption="Provisioning hooks"
          rows={hooks.data ?? []}
          rowKey={(h) => h.name}
          empty="No hooks configured ([hook.NAME] in setting.ini, or gateway hooks add)."
          columns={[
            { header: "Name", cell: (h) => h.name },
            { header: "Kind", cell: (h) => h.kind },
            { header: "Events", cell: (h) => h.events.join(", ") },
            { header: "Target", cell: (h) => show(h.url ?? h.command) },
            { header: "Source", cell: (h) => show(h.source) },
            {
              header: "Actions",
              cell: (h) => (
                <button type="button" onClick={() => test(h.name)} aria-label={`Test ${h.name}`}>
                  Test
                </button>
              ),
            },
          ]}
        />
      </section>
      <section aria-labelledby="deliveries">
        <h2 id="deliveries">Deliveries</h2>
        <label className="check">
          <input type="checkbox" checked={failedOnly} onChange={(e) => setFailedOnly(e.target.checked)} /> Failures
          only
        </label>
        <Table
          caption="Deliveries, newest first"
          rows={log.data ?? []}
          rowKey={(d) => `${show(d.hook)}-${show(d.event_id)}`}
          empty="No deliveries."
          columns={[
            { header: "Event", cell: (d) => <code>{show(d.event_id)}</code> },
            { header: "Type", cell: (d) => show(d.type) },
            { header: "Hook", cell: (d) => show(d.hook) },
            { header: "State", cell: (d) => show(d.state) },
            { header: "Attempts", cell: (d) => show(d.attempts), numeric: true },
            { header: "Last status", cell: (d) => show(d.last_status) },
            { header: "Last error", cell: (d) => show(d.last_error) },
            { header: "Created", cell: (d) => when(d.created_at as number) },
            {
              header: "Actions",
              cell: (d) => (
                <button type="button" onClick={() => replay(String(d.event_id))} aria-label={`Replay ${show(d.event_id)}`}>
                  Replay
                </button>
              ),
            },
          ]}
        />
      </section>
    </>
  );
}
