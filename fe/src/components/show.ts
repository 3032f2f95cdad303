/** A value from an API this console shows as it comes (hooks, deliveries). */
export function show(v: unknown): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}
