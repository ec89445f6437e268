/** The shell: navigation on the left, one page on the right. */
import { Navigate, NavLink, Route, Routes, useLocation } from "react-router";
import { useHealth } from "./api/queries";
import { useSignedIn } from "./components/AuthGate";
import { ErrorBoundary } from "./components/ErrorBoundary";
import { ExecutionPage } from "./pages/ExecutionPage";
import { NotFoundPage } from "./pages/NotFoundPage";
import { SessionDetailPage } from "./pages/SessionDetailPage";
import { SessionsPage } from "./pages/SessionsPage";
import { SystemPage } from "./pages/SystemPage";
import { TemplateDetailPage } from "./pages/TemplateDetailPage";
import { TemplatesPage } from "./pages/TemplatesPage";
import { TokensPage } from "./pages/TokensPage";

function HealthDot() {
  const health = useHealth();
  // An error wins over older data: a daemon that stopped answering is down.
  const state = health.isError ? "down" : health.data?.status === "ok" ? "ok" : health.isPending ? "pending" : "down";
  const label = state === "ok" ? "Daemon healthy" : state === "pending" ? "Checking daemon…" : "Daemon unreachable";
  return (
    <NavLink to="/system" className={`health health-${state}`} title={label} data-testid="health-indicator">
      <span className="health-dot" aria-hidden="true" />
      <span>{label}</span>
    </NavLink>
  );
}

/** Who is signed in (token name and scopes) and the way out. */
function Identity() {
  const { who, authOff, signOut } = useSignedIn();
  return (
    <section className="identity" aria-label="Signed in" data-testid="identity">
      {authOff ? (
        <div className="identity-name" title="vm-system serve --auth=off: every local program may use the API">
          Authentication off
        </div>
      ) : (
        <>
          <div className="identity-name" data-testid="identity-name" title={who.token_id ?? undefined}>
            {who.name}
          </div>
          <div className="identity-scopes" data-testid="identity-scopes">
            {who.scopes.join(" · ")}
          </div>
          <button type="button" className="identity-signout" onClick={signOut}>
            Sign out
          </button>
        </>
      )}
    </section>
  );
}

export function App() {
  const location = useLocation();
  const { who } = useSignedIn();
  return (
    <div className="shell">
      <aside className="sidebar">
        <NavLink to="/" className="brand">
          <span className="brand-mark" aria-hidden="true">
            ›_
          </span>
          vm-system
        </NavLink>
        <nav className="nav" aria-label="Main">
          <NavLink to="/sessions">Sessions</NavLink>
          <NavLink to="/templates">Templates</NavLink>
          <NavLink to="/system">System</NavLink>
          {who.scopes.includes("admin") ? <NavLink to="/tokens">Tokens</NavLink> : null}
          <a href="/docs/" target="_blank" rel="noreferrer">
            API docs ↗
          </a>
        </nav>
        <div className="sidebar-foot">
          <Identity />
          <HealthDot />
        </div>
      </aside>
      <main className="main">
        <ErrorBoundary resetKey={location.pathname}>
          <Routes>
            <Route path="/" element={<Navigate to="/sessions" replace />} />
            <Route path="/templates" element={<TemplatesPage />} />
            <Route path="/templates/:id" element={<TemplateDetailPage />} />
            <Route path="/sessions" element={<SessionsPage />} />
            <Route path="/sessions/:id" element={<SessionDetailPage />} />
            <Route path="/executions/:id" element={<ExecutionPage />} />
            <Route path="/system" element={<SystemPage />} />
            <Route path="/tokens" element={<TokensPage />} />
            <Route path="*" element={<NotFoundPage />} />
          </Routes>
        </ErrorBoundary>
      </main>
    </div>
  );
}
