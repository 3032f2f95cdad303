import { useState } from "react";
import { ApiError, latency, usage, type Latency, type UsageRow } from "../api";
import { BarChart } from "../components/BarChart";
import { Table } from "../components/Table";
import { useLoad } from "../components/useLoad";
import { delta, int, usd } from "../format";

const PERIODS = [
  { id: "1h", label: "Last hour", seconds: 3600 },
  { id: "24h", label: "Last 24 hours", seconds: 86400 },
  { id: "7d", label: "Last 7 days", seconds: 7 * 86400 },
  { id: "30d", label: "Last 30 days", seconds: 30 * 86400 },
];
const BUCKETS = 12;

const ZERO: UsageRow = {
  group: "all",
  requests: 0,
  errors: 0,
  prompt_tokens: 0,
  completion_tokens: 0,
  cached_tokens: 0,
  cost_usd: 0,
};
const ms = (n: number) => `${n.toFixed(n < 10 ? 2 : 0)} ms`;
const msOrDash = (n: number | null | undefined) => (n === null || n === undefined ? "—" : ms(n));
const tokens = (r: UsageRow) => r.prompt_tokens + r.completion_tokens;
const total = (rows: UsageRow[]) => rows[0] ?? ZERO;

interface Compared {
  group: string;
  now: UsageRow;
  before: UsageRow;
}

function compare(now: UsageRow[], before: UsageRow[]): Compared[] {
  const groups = new Set([...now.map((r) => r.group), ...before.map((r) => r.group)]);
  return [...groups].sort().map((g) => ({
    group: g,
    now: now.find((r) => r.group === g) ?? ZERO,
    before: before.find((r) => r.group === g) ?? ZERO,
  }));
}

/** Everything here is read from the ledger through /admin/usage: the current
 *  period, the previous period of the same length, and 12 slices for charts. */
async function loadOverview(seconds: number) {
  const end = Date.now() / 1000;
  const start = end - seconds;
  const prev = start - seconds;
  const slice = seconds / BUCKETS;
  const [now, before, byModel, byModelBefore, byProvider, byProviderBefore, ...series] =
    await Promise.all([
      usage({ since: start, until: end }),
      usage({ since: prev, until: start }),
      usage({ since: start, until: end, group_by: "model" }),
      usage({ since: prev, until: start, group_by: "model" }),
      usage({ since: start, until: end, group_by: "provider" }),
      usage({ since: prev, until: start, group_by: "provider" }),
      ...Array.from({ length: BUCKETS }, (_, i) =>
        usage({ since: start + i * slice, until: start + (i + 1) * slice }),
      ),
    ]);
  // p50/p99 latency: the same windows; null when the gateway has no such query
  const lat = await Promise.all([
    latency({ since: start, until: end }),
    latency({ since: prev, until: start }),
    ...Array.from({ length: BUCKETS }, (_, i) =>
      latency({ since: start + i * slice, until: start + (i + 1) * slice }),
    ),
  ]).catch((err: unknown) => {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  });
  return {
    latency: lat && { now: lat[0], before: lat[1], series: lat.slice(2) },
    now: total(now),
    before: total(before),
    byModel: compare(byModel, byModelBefore),
    byProvider: compare(byProvider, byProviderBefore),
    series: series.map((rows, i) => ({ at: start + i * slice, row: total(rows) })),
    end,
    seconds,
  };
}

function label(at: number, seconds: number): string {
  const iso = new Date(at * 1000).toISOString();
  if (seconds < 86400) return iso.slice(11, 16);
  return seconds === 86400 ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(5, 10);
}

function Stat(props: { name: string; now: number; before: number; format: (n: number) => string }) {
  return (
    <div className="stat">
      <dt>{props.name}</dt>
      <dd>
        <span className="stat-value" data-testid={`total-${props.name.toLowerCase()}`}>
          {props.format(props.now)}
        </span>
        <span className="stat-delta">
          {delta(props.now, props.before)} <span className="muted">vs previous period</span>
        </span>
      </dd>
    </div>
  );
}

function LatencyStat(props: { name: string; now: number | null; before: number | null }) {
  const { now, before } = props;
  return (
    <div className="stat">
      <dt>{props.name}</dt>
      <dd>
        <span className="stat-value" data-testid={`total-${props.name.toLowerCase().replace(/ .*/, "")}`}>
          {msOrDash(now)}
        </span>
        <span className="stat-delta">
          {now != null && before != null ? delta(now, before) : "—"}{" "}
          <span className="muted">vs previous period</span>
        </span>
      </dd>
    </div>
  );
}

function Breakdown(props: { caption: string; first: string; rows: Compared[] }) {
  return (
    <Table
      caption={props.caption}
      rows={props.rows}
      rowKey={(r) => r.group}
      empty="No requests in this period or the one before."
      columns={[
        { header: props.first, cell: (r) => r.group || "(none)" },
        { header: "Requests", cell: (r) => int(r.now.requests), numeric: true },
        { header: "Change", cell: (r) => delta(r.now.requests, r.before.requests), numeric: true },
        { header: "Tokens", cell: (r) => int(tokens(r.now)), numeric: true },
        { header: "Cost", cell: (r) => usd(r.now.cost_usd), numeric: true },
        { header: "Cost change", cell: (r) => delta(r.now.cost_usd, r.before.cost_usd), numeric: true },
        { header: "Errors", cell: (r) => int(r.now.errors), numeric: true },
      ]}
    />
  );
}

export function Overview() {
  const [period, setPeriod] = useState("24h");
  const seconds = PERIODS.find((p) => p.id === period)!.seconds;
  const view = useLoad(() => loadOverview(seconds), [seconds]);
  const d = view.data;
  return (
    <>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <label htmlFor="overview-period">Period</label>
        <select id="overview-period" value={period} onChange={(e) => setPeriod(e.target.value)}>
          {PERIODS.map((p) => (
            <option key={p.id} value={p.id}>
              {p.label}
            </option>
          ))}
        </select>
        <button type="button" onClick={view.reload}>
          Refresh
        </button>
      </form>
      {view.error && (
        <p role="alert" className="error">
          {view.error}
        </p>
      )}
      {d && (
        <>
          <section aria-labelledby="totals">
            <h2 id="totals">Totals</h2>
            <dl className="stats">
              <Stat name="Requests" now={d.now.requests} before={d.before.requests} format={int} />
              <Stat name="Tokens" now={tokens(d.now)} before={tokens(d.before)} format={int} />
              <Stat name="Cost" now={d.now.cost_usd} before={d.before.cost_usd} format={usd} />
              <Stat name="Errors" now={d.now.errors} before={d.before.errors} format={int} />
            </dl>
            {d.latency ? (
              <dl className="stats latency">
                <LatencyStat name="p50 latency" now={d.latency.now.p50_ms} before={d.latency.before.p50_ms} />
                <LatencyStat name="p99 latency" now={d.latency.now.p99_ms} before={d.latency.before.p99_ms} />
              </dl>
            ) : (
              <p className="note">
                Latency (p50/p99): this gateway's ledger API has no latency query
                (/admin/usage/latency).
              </p>
            )}
          </section>
          <section aria-labelledby="over-time" className="charts">
            <h2 id="over-time">Over time</h2>
            {(
              [
                ["Requests", (r: UsageRow) => r.requests, int],
                ["Tokens", tokens, int],
                ["Cost", (r: UsageRow) => r.cost_usd, usd],
                ["Errors", (r: UsageRow) => r.errors, int],
              ] as const
            ).map(([title, pick, format]) => (
              <BarChart
                key={title}
                title={title}
                format={format}
                end={label(d.end, d.seconds)}
                bars={d.series.map((s) => ({ label: label(s.at, d.seconds), value: pick(s.row) }))}
              />
            ))}
            {d.latency &&
              (
                [
                  ["p50 latency", (l: Latency) => l.p50_ms ?? 0],
                  ["p99 latency", (l: Latency) => l.p99_ms ?? 0],
                ] as const
              ).map(([title, pick]) => (
                <BarChart
                  key={title}
                  title={title}
                  summary={title === "p50 latency" ? msOrDash(d.latency!.now.p50_ms) : msOrDash(d.latency!.now.p99_ms)}
                  format={ms}
                  end={label(d.end, d.seconds)}
                  bars={d.latency!.series.map((l, i) => ({ label: label(d.series[i].at, d.seconds), value: pick(l) }))}
                />
              ))}
          </section>
          <section aria-labelledby="by-model">
            <h2 id="by-model">By model</h2>
            <Breakdown caption="Usage by model, this period against the previous one" first="Model" rows={d.byModel} />
          </section>
          <section aria-labelledby="by-provider">
            <h2 id="by-provider">By provider</h2>
            <Breakdown
              caption="Usage by provider, this period against the previous one"
              first="Provider"
              rows={d.byProvider}
            />
          </section>
        </>
      )}
    </>
  );
}
