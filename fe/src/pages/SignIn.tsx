import { useState, type FormEvent } from "react";
import { call } from "../api";
import { storeKey } from "../session";

/** Checks the key against the admin API before keeping it (session storage only). */
export function SignIn(props: { onSignedIn: (key: string) => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    const given = key.trim();
    if (!given) {
      setError("Enter the admin key or one of your API keys.");
      return;
    }
    setBusy(true);
    try {
      await call("GET", "/admin/keys", { key: given });
      storeKey(given);
      props.onSignedIn(given);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="signin" id="main">
      <h1>Tokligence Gateway</h1>
      <form onSubmit={submit} aria-describedby="signin-help">
        <p id="signin-help">
          Sign in with the admin key (everything) or one of your API keys (your own keys and
          usage). The key is kept in this tab only.
        </p>
        <label htmlFor="signin-key">API key</label>
        <input
          id="signin-key"
          type="password"
          autoComplete="off"
          spellCheck={false}
          value={key}
          onChange={(e) => setKey(e.target.value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? "signin-error" : undefined}
        />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        {error && (
          <p id="signin-error" role="alert" className="error">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}
