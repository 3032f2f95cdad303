import { useState } from "react";
import { usage, type UsageRow } from "../api";
import { Table } from "../components/Table";
import { useLoad } from "../components/useLoad";
import { int, toCsv, usd } from "../format";

export const GROUPS = ["model", "provider", "key", "user", "team", "day"] as const;

/** "2026-12-01T10:00" (a datetime-local value, read as UTC) -> ISO 8601 for the API. */
function isoUtc(local: string): string | undefined {
  return local ? `${local}:00Z` : undefined;
}

export function Usage() {
  const [group, setGroup] = useState<string>("model");
  const [since, setSince] = useState("");
  const [until, setUntil] = useState("");
  const rows = useLoad(
    () => usage({ group_by: group, since: isoUtc(since), until: isoUtc(until) }),
    [group, since, until],
  );

  function exportCsv(data: UsageRow[]) {
    const csv = toCsv(
      [group, "requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd"],
      data.map((r) => [
        r.group,
        r.requests,
        r.errors,
        r.prompt_tokens,
        r.completion_tokens,
        r.cached_tokens,
        r.cost_usd,
      ]),
    );
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
    link.download = `usage-by-${group}.csv`;
    link.click();
    URL.revokeObjectURL(link.href);
  }

  const data = rows.data ?? [];
  return (
    <>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <label htmlFor="usage-group">Group by</label>
        <select id="usage-group" value={group} onChange={(e) => setGroup(e.target.value)}>
          {GROUPS.map((g) => (
            <option key={g} value={g}>
              {g}
            </option>
          ))}
        </select>
        <label htmlFor="usage-since">Since (UTC)</label>
        <input id="usage-since" type="datetime-local" value={since} onChange={(e) => setSince(e.target.value)} />
        <label htmlFor="usage-until">Until (UTC)</label>
        <input id="usage-until" type="datetime-local" value={until} onChange={(e) => setUntil(e.target.value)} />
        <button type="button" onClick={rows.reload}>
          Refresh
        </button>
        <button type="button" onClick={() => exportCsv(data)} disabled={data.length === 0}>
          Export CSV
        </button>
      </form>
      {rows.error && (
        <p role="alert" className="error">
          {rows.error}
        </p>
      )}
      <Table
        caption={`Usage by ${group}`}
        rows={data}
        rowKey={(r) => r.group}
        empty="No requests in this period."
        columns={[
          { header: group[0].toUpperCase() + group.slice(1), cell: (r) => r.group || "(none)" },
          { header: "Requests", cell: (r) => int(r.requests), numeric: true },
          { header: "Errors", cell: (r) => int(r.errors), numeric: true },
          { header: "Prompt tokens", cell: (r) => int(r.prompt_tokens), numeric: true },
          { header: "Completion tokens", cell: (r) => int(r.completion_tokens), numeric: true },
          { header: "Cached tokens", cell: (r) => int(r.cached_tokens), numeric: true },
          { header: "Cost", cell: (r) => usd(r.cost_usd), numeric: true },
        ]}
      />
    </>
  );
}
