import { useState } from "react";
import { call, type Delivery, type Hook, type Listing } from "../api";
import { show } from "../components/show";
import { Table } from "../components/Table";
import { ReadOnlyNote } from "../components/ReadOnlyNote";
import { useAccess } from "../components/useAccess";
import { useLoad } from "../components/useLoad";
import { when } from "../format";
import { HookAdd } from "./HookAdd";

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
  const who = useAccess();
  const { canWrite } = who;

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

  async function remove(name: string) {
    if (!window.confirm(`Delete the hook ${name}? Its pending deliveries are not sent.`)) return;
    setError(null);
    setMessage(null);
    try {
      await call("DELETE", `/admin/hooks/${encodeURIComponent(name)}`);
      setMessage(`Hook ${name} deleted.`);
    } catch (err) {
      setError((err as Error).message);
    }
    hooks.reload();
  }

  function added(h: Hook) {
    setError(null);
    setMessage(`Added ${h.kind} hook ${h.name} for ${h.events.join(", ")}.`);
    hooks.reload();
  }

  return (
    <>
      <div role="status">{message && <p className="ok">{message}</p>}</div>
      <ReadOnlyNote {...who} />
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
          empty="No hooks configured ([hook.NAME] in setting.ini, Add hook below, or gateway hooks add)."
          columns={[
            { header: "Name", cell: (h) => h.name },
            { header: "Kind", cell: (h) => h.kind },
            { header: "Events", cell: (h) => h.events.join(", ") },
            { header: "Target", cell: (h) => show(h.url ?? h.command) },
            { header: "Source", cell: (h) => show(h.source) },
            {
              header: "Actions",
              cell: (h) =>
                canWrite && (
                  <span className="actions">
                    <button type="button" onClick={() => test(h.name)} aria-label={`Test ${h.name}`}>
                      Test
                    </button>
                    {h.source === "api" && (
                      <button type="button" onClick={() => remove(h.name)} aria-label={`Delete ${h.name}`}>
                        Delete
                      </button>
                    )}
                  </span>
                ),
            },
          ]}
        />
      </section>
      {canWrite && <HookAdd onAdded={added} />}
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
              cell: (d) =>
                canWrite && (
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
