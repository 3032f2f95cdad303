import { useState } from "react";

/** One form's submission: its own error (the API's message) and a busy flag,
 *  so a failure shows in the form that caused it. */
export function useSubmit() {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  async function submit(what: () => Promise<void>): Promise<boolean> {
    setError(null);
    setBusy(true);
    try {
      await what();
      return true;
    } catch (err) {
      setError((err as Error).message);
      return false;
    } finally {
      setBusy(false);
    }
  }
  return { error, busy, submit, setError };
}
