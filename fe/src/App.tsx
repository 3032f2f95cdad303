import { useEffect, useState, type ReactNode } from "react";
import { forgetKey, storedKey } from "./session";
import { SignIn } from "./pages/SignIn";
import { Overview } from "./pages/Overview";
import { Usage } from "./pages/Usage";
import { Keys } from "./pages/Keys";
import { People } from "./pages/People";
import { Providers } from "./pages/Providers";
import { RoutesPage } from "./pages/Routes";
import { Marketplace } from "./pages/Marketplace";
import { Hooks } from "./pages/Hooks";
import { Settings } from "./pages/Settings";

declare const __LAYOUT__: "web" | "h5";
export const LAYOUT: "web" | "h5" = typeof __LAYOUT__ === "undefined" ? "web" : __LAYOUT__;

interface Page {
  path: string;
  name: string;
  render: () => ReactNode;
}

export const PAGES: Page[] = [
  { path: "overview", name: "Overview", render: () => <Overview /> },
  { path: "usage", name: "Usage", render: () => <Usage /> },
  { path: "keys", name: "Keys", render: () => <Keys /> },
  { path: "people", name: "Users and Teams", render: () => <People /> },
  { path: "providers", name: "Providers", render: () => <Providers /> },
  { path: "routes", name: "Routes", render: () => <RoutesPage /> },
  { path: "marketplace", name: "Marketplace", render: () => <Marketplace /> },
  { path: "hooks", name: "Hooks", render: () => <Hooks /> },
  { path: "settings", name: "Settings", render: () => <Settings /> },
];

function currentPath(): string {
  const p = window.location.hash.replace(/^#\/?/, "");
  return PAGES.some((x) => x.path === p) ? p : "overview";
}

export function App() {
  const [key, setKey] = useState<string | null>(storedKey());
  const [path, setPath] = useState(currentPath());
  useEffect(() => {
    const onHash = () => setPath(currentPath());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  const page = PAGES.find((p) => p.path === path) ?? PAGES[0];
  useEffect(() => {
    document.title = `${page.name} · Tokligence Gateway`;
    // move focus to the page heading, so keyboard and screen reader users land there
    document.getElementById("page-heading")?.focus();
  }, [page, key]);

  if (!key) return <SignIn onSignedIn={setKey} />;
  return (
    <div className={`shell layout-${LAYOUT}`}>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Tokligence Gateway</span>
        <button
          type="button"
          onClick={() => {
            forgetKey();
            setKey(null);
          }}
        >
          Sign out
        </button>
      </header>
      <nav aria-label="Console">
        <ul>
          {PAGES.map((p) => (
            <li key={p.path}>
              <a href={`#/${p.path}`} aria-current={p.path === page.path ? "page" : undefined}>
                {p.name}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main">
        <h1 id="page-heading" tabIndex={-1}>
          {page.name}
        </h1>
        {page.render()}
      </main>
    </div>
  );
}
