// The Hooks page's "Add hook" form (POST /admin/hooks, as `gateway hooks add`
// sends it). A webhook's signing secret, when the gateway generated it, is in
// the answer once: it is shown here once and never again.
import { useState, type FormEvent } from "react";
import { call, type Hook } from "../api";
import { FormAlert } from "../components/FormAlert";
import { useSubmit } from "../components/useSubmit";

interface Created extends Hook {
  secret?: string;
}

const empty = { name: "", kind: "webhook", events: "", url: "", command: "", secret_env: "", secret: "", timeout_s: "" };
type Form = typeof empty;

/** Only what was filled in for the chosen kind: a webhook sends no command. */
export function hookBody(form: Form): Record<string, unknown> {
  const body: Record<string, unknown> = { name: form.name.trim(), kind: form.kind, events: form.events.trim() };
  const fields = form.kind === "webhook" ? (["url", "secret_env", "secret"] as const) : (["command"] as const);
  for (const f of fields) if (form[f].trim()) body[f] = form[f].trim();
  if (form.timeout_s.trim()) body.timeout_s = Number(form.timeout_s);
  return body;
}

export function HookAdd(props: { onAdded: (hook: Created) => void }) {
  const [form, setForm] = useState(empty);
  const [secret, setSecret] = useState<{ name: string; value: string } | null>(null);
  const { error, busy, submit } = useSubmit();
  const set = (field: keyof Form) => (e: { target: { value: string } }) => setForm({ ...form, [field]: e.target.value });
  const webhook = form.kind === "webhook";

  async function add(e: FormEvent) {
    e.preventDefault();
    setSecret(null);
    await submit(async () => {
      const made = await call<Created>("POST", "/admin/hooks", { body: hookBody(form) });
      setForm({ ...empty, kind: form.kind });
      if (made.secret) setSecret({ name: made.name, value: made.secret });
      props.onAdded(made);
    });
  }

  return (
    <section aria-labelledby="hook-add">
      <h2 id="hook-add">Add hook</h2>
      <form className="grid-form" onSubmit={add} aria-labelledby="hook-add">
        <label htmlFor="hook-name">Hook name</label>
        <input id="hook-name" required value={form.name} onChange={set("name")} />
        <label htmlFor="hook-kind">Kind</label>
        <select id="hook-kind" value={form.kind} onChange={set("kind")}>
          <option value="webhook">webhook (signed POST)</option>
          <option value="script">script (event JSON on stdin)</option>
        </select>
        <label htmlFor="hook-events">Events</label>
        <input id="hook-events" required placeholder="e.g. key.*, user.created" value={form.events} onChange={set("events")} />
        {webhook ? (
          <>
            <label htmlFor="hook-url">Webhook URL</label>
            <input id="hook-url" type="url" required value={form.url} onChange={set("url")} />
            <label htmlFor="hook-secret-env">Secret variable</label>
            <input
              id="hook-secret-env"
              placeholder="the gateway's variable holding a whsec_ secret"
              value={form.secret_env}
              onChange={set("secret_env")}
            />
            <label htmlFor="hook-secret">Signing secret</label>
            <input
              id="hook-secret"
              type="password"
              autoComplete="off"
              placeholder="whsec_… (empty: one is generated)"
              value={form.secret}
              onChange={set("secret")}
            />
          </>
        ) : (
          <>
            <label htmlFor="hook-command">Command</label>
            <input id="hook-command" required value={form.command} onChange={set("command")} />
          </>
        )}
        <label htmlFor="hook-timeout">Timeout (s)</label>
        <input id="hook-timeout" type="number" min="0" step="any" inputMode="decimal" value={form.timeout_s} onChange={set("timeout_s")} />
        <button type="submit" disabled={busy}>
          Add hook
        </button>
        <FormAlert error={error} />
      </form>
      <div role="status" className={secret ? "secret" : "visually-hidden"}>
        {secret && (
          <>
            <p>
              Signing secret of hook {secret.name}: copy it now, it is shown only once (receivers verify the
              webhook-signature header with it).
            </p>
            <code className="secret-value">{secret.value}</code>
          </>
        )}
      </div>
    </section>
  );
}
