import { ApiError, call } from "../api";
import { Table } from "./Table";

export type Row = Record<string, unknown>;

/** The first of ``paths`` the gateway answers, or null when none exists (404). */
export async function probe(paths: string[]): Promise<{ path: string; rows: Row[] } | null> {
  for (const path of paths) {
    try {
      const body = await call<{ data?: Row[] } | Row[]>("GET", path);
      const rows = Array.isArray(body) ? body : (body?.data ?? []);
      return { path, rows };
    } catch (err) {
      if (err instanceof ApiError && (err.status === 404 || err.status === 405)) continue;
      throw err;
    }
  }
  return null;
}

export function show(v: unknown): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/** A table of whatever fields the rows have (for APIs this console does not model). */
export function GenericTable(props: { caption: string; rows: Row[] }) {
  const headers = [...new Set(props.rows.flatMap((r) => Object.keys(r)))].slice(0, 10);
  return (
    <Table
      caption={props.caption}
      rows={props.rows}
      rowKey={(r) => JSON.stringify(r)}
      columns={headers.map((h) => ({ header: h, cell: (r: Row) => show(r[h]) }))}
    />
  );
}
