// The limits a key, user or team holds (rpm, tpm, a budget over a period), as
// the admin API takes them: form text is checked here so a typo is named
// before anything is sent; an empty field clears the limit (null).
export const BUDGET_PERIODS = ["day", "week", "month", "total"] as const;

export interface Limits {
  rpm: number | null;
  tpm: number | null;
  budget_usd: number | null;
  budget_period: string | null;
}

/** What the limit fields of a form hold, as typed. */
export interface LimitText {
  rpm: string;
  tpm: string;
  budget: string;
  period: string;
}

export const noLimits: LimitText = { rpm: "", tpm: "", budget: "", period: "month" };

export function limitText(l: Limits): LimitText {
  const text = (n: number | null) => (n === null ? "" : String(n));
  return { rpm: text(l.rpm), tpm: text(l.tpm), budget: text(l.budget_usd), period: l.budget_period ?? "month" };
}

/** A sum of money: empty is null, otherwise a number of at least 0. */
export function numberOrNull(raw: string, name: string): number | null {
  if (raw.trim() === "") return null;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a number of at least 0.`);
  return n;
}

/** A per-minute count: empty is null, otherwise a whole number above 0. */
export function countOrNull(raw: string, name: string): number | null {
  if (raw.trim() === "") return null;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a whole number above 0.`);
  return n;
}

/** The body fields for these limits; throws naming the first bad field. */
export function parseLimits(t: LimitText): Limits {
  return {
    rpm: countOrNull(t.rpm, "RPM"),
    tpm: countOrNull(t.tpm, "TPM"),
    budget_usd: numberOrNull(t.budget, "Budget (USD)"),
    budget_period: t.period,
  };
}

/** "$5.00 / month", or "—" without a budget. */
export function budgetText(l: Limits, usd: (n: number) => string): string {
  return l.budget_usd === null ? "—" : `${usd(l.budget_usd)} / ${l.budget_period ?? "month"}`;
}
