// Display helpers (no arithmetic the gateway should own: just formatting).
export const int = (n: number | null | undefined) =>
  n === null || n === undefined ? "—" : Math.round(n).toLocaleString("en-US");

export const usd = (n: number | null | undefined) =>
  n === null || n === undefined ? "—" : `$${n.toFixed(n !== 0 && Math.abs(n) < 0.01 ? 6 : 2)}`;

export const when = (t: number | null | undefined) =>
  t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "—";

/** The change from ``before`` to ``now``, as "+12%" / "−3%" / "new" / "0%". */
export function delta(now: number, before: number): string {
  if (before === 0) return now === 0 ? "0%" : "new";
  const pct = ((now - before) / before) * 100;
  const sign = pct > 0 ? "+" : pct < 0 ? "−" : "";
  return `${sign}${Math.abs(pct).toFixed(Math.abs(pct) < 10 ? 1 : 0)}%`;
}

/** Rows as CSV text (RFC 4180 quoting). */
export function toCsv(header: string[], rows: (string | number)[][]): string {
  const cell = (v: string | number) => {
    const s = String(v);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [header, ...rows].map((r) => r.map(cell).join(",")).join("\r\n") + "\r\n";
}
