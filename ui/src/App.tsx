/** The shell: navigation on the left, one page on the right. */
import { Navigate, NavLink, Route, Routes, useLocation } from "react-router";
import { useHealth } from "./api/queries";
import { ErrorBoundary } from "./components/ErrorBoundary";
import { ExecutionPage } from "./pages/ExecutionPage";
import { NotFoundPage } from "./pages/NotFoundPage";
import { SessionDetailPage } from "./pages/SessionDetailPage";
import { SessionsPage } from "./pages/SessionsPage";
import { SystemPage } from "./pages/SystemPage";
import { TemplateDetailPage } from "./pages/TemplateDetailPage";
import { TemplatesPage } from "./pages/TemplatesPage";

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

export function App() {
  const location = useLocation();
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
          <a href="/docs/" target="_blank" rel="noreferrer">
            API docs ↗
          </a>
        </nav>
        <div className="sidebar-foot">
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
            <Route path="*" element={<NotFoundPage />} />
          </Routes>
        </ErrorBoundary>
      </main>
    </div>
  );
}
