import { GenericTable, probe } from "../components/Probe";
import { useLoad } from "../components/useLoad";

// Where a gateway with a marketplace answers listings; asked, never assumed.
export const MARKET_PATHS = ["/admin/market/listings", "/admin/listings", "/admin/marketplace"];

export function Marketplace() {
  const found = useLoad(() => probe(MARKET_PATHS), []);
  if (!found.loaded) return <p>Asking the gateway for marketplace listings…</p>;
  if (found.error)
    return (
      <p role="alert" className="error">
        {found.error}
      </p>
    );
  if (!found.data)
    return (
      <p className="unavailable">
        This gateway has no marketplace API yet, so there are no listings to browse, compare or
        use. Nothing is shown rather than sample data.
      </p>
    );
  return (
    <>
      <p className="note">Listings as the registry offers them ({found.data.path}).</p>
      <GenericTable caption="Marketplace listings" rows={found.data.rows} />
    </>
  );
}
