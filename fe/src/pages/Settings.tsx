import { GenericTable, probe } from "../components/Probe";
import { useLoad } from "../components/useLoad";

export const CONFIG_PATHS = ["/admin/config"];

export function Settings() {
  const found = useLoad(() => probe(CONFIG_PATHS), []);
  if (!found.loaded) return <p>Asking the gateway for its configuration…</p>;
  if (found.error)
    return (
      <p role="alert" className="error">
        {found.error}
      </p>
    );
  if (!found.data)
    return (
      <p className="unavailable">
        This gateway does not serve its effective configuration over the admin API yet. On the
        gateway's machine, <code>gateway config show</code> prints every key, masked where secret,
        with the layer that set it.
      </p>
    );
  return (
    <>
      <p className="note">The effective configuration, secrets masked by the gateway.</p>
      <GenericTable caption="Effective configuration and the layer that set each key" rows={found.data.rows} />
    </>
  );
}
