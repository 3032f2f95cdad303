// The marketplace's "Publish listing" form: this gateway's models offered to
// others (POST /admin/market/listings, as `gateway market publish` sends it).
import { useState, type FormEvent } from "react";
import { call } from "../api";
import { FormAlert } from "../components/FormAlert";
import { useSubmit } from "../components/useSubmit";

interface Published {
  id: string;
  name: string;
  endpoint: string;
  models: { name: string }[];
}

const PRICES = [
  ["price_in", "Input price (USD per 1M tokens)"],
  ["price_out", "Output price (USD per 1M tokens)"],
  ["price_cached", "Cached input price (USD per 1M tokens)"],
] as const;
type PriceField = (typeof PRICES)[number][0];

const empty = { models: "", name: "", region: "", api_format: "openai", price_in: "", price_out: "", price_cached: "" };

/** The request body: only what was filled in, so the gateway's defaults
 *  (gateway.model_family, the price table, its own name) apply to the rest. */
export function publishBody(form: typeof empty): Record<string, unknown> {
  const body: Record<string, unknown> = { api_format: form.api_format };
  const models = form.models
    .split(",")
    .map((m) => m.trim())
    .filter(Boolean);
  if (models.length) body.models = models;
  for (const [field] of PRICES) if (form[field].trim()) body[field] = Number(form[field]);
  if (form.name.trim()) body.name = form.name.trim();
  if (form.region.trim()) body.region = form.region.trim();
  return body;
}

export function MarketPublish(props: { onPublished: (message: string) => void }) {
  const [form, setForm] = useState(empty);
  const { error, busy, submit } = useSubmit();
  const set = (field: keyof typeof empty) => (e: { target: { value: string } }) =>
    setForm({ ...form, [field]: e.target.value });

  async function publish(e: FormEvent) {
    e.preventDefault();
    await submit(async () => {
      const rec = await call<Published>("POST", "/admin/market/listings", { body: publishBody(form) });
      setForm(empty);
      props.onPublished(
        `Published ${rec.id} (${rec.name}): ${rec.models.map((m) => m.name).join(", ")} at ${rec.endpoint}.`,
      );
    });
  }

  return (
    <section aria-labelledby="publish">
      <h2 id="publish">Publish listing</h2>
      <form className="grid-form" onSubmit={publish} aria-labelledby="publish">
        <label htmlFor="publish-models">Models to list</label>
        <input
          id="publish-models"
          placeholder="comma list (empty: gateway.model_family)"
          value={form.models}
          onChange={set("models")}
        />
        {PRICES.map(([field, label]) => (
          <PriceInput key={field} field={field} label={label} value={form[field]} onChange={set(field)} />
        ))}
        <label htmlFor="publish-name">Listing name</label>
        <input id="publish-name" placeholder="empty: this gateway's name" value={form.name} onChange={set("name")} />
        <label htmlFor="publish-region">Region</label>
        <input id="publish-region" value={form.region} onChange={set("region")} />
        <label htmlFor="publish-format">API format</label>
        <select id="publish-format" value={form.api_format} onChange={set("api_format")}>
          <option value="openai">openai</option>
          <option value="anthropic">anthropic</option>
        </select>
        <button type="submit" disabled={busy}>
          Publish listing
        </button>
        <FormAlert error={error} />
      </form>
    </section>
  );
}

function PriceInput(props: {
  field: PriceField;
  label: string;
  value: string;
  onChange: (e: { target: { value: string } }) => void;
}) {
  const id = `publish-${props.field}`;
  return (
    <>
      <label htmlFor={id}>{props.label}</label>
      <input
        id={id}
        type="number"
        min="0"
        step="any"
        inputMode="decimal"
        placeholder="empty: the price table's"
        value={props.value}
        onChange={props.onChange}
      />
    </>
  );
}
