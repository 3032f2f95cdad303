import { BUDGET_PERIODS, type LimitText } from "../limits";

/** The four limit inputs with their visible labels, for a ``grid-form``.
 *  ``prefix`` keeps the ids unique when two such forms share a page. */
export function LimitFields(props: { prefix: string; value: LimitText; onChange: (v: LimitText) => void }) {
  const { prefix, value, onChange } = props;
  const set = (field: keyof LimitText) => (e: { target: { value: string } }) =>
    onChange({ ...value, [field]: e.target.value });
  return (
    <>
      <label htmlFor={`${prefix}-rpm`}>RPM</label>
      <input id={`${prefix}-rpm`} inputMode="numeric" value={value.rpm} onChange={set("rpm")} />
      <label htmlFor={`${prefix}-tpm`}>TPM</label>
      <input id={`${prefix}-tpm`} inputMode="numeric" value={value.tpm} onChange={set("tpm")} />
      <label htmlFor={`${prefix}-budget`}>Budget (USD)</label>
      <input id={`${prefix}-budget`} inputMode="decimal" value={value.budget} onChange={set("budget")} />
      <label htmlFor={`${prefix}-period`}>Budget period</label>
      <select id={`${prefix}-period`} value={value.period} onChange={set("period")}>
        {BUDGET_PERIODS.map((p) => (
          <option key={p} value={p}>
            {p}
          </option>
        ))}
      </select>
    </>
  );
}
