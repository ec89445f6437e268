/** Loading, empty and error states: no page is ever blank. */
import { useState, type ReactNode } from "react";
import { storeOutageHint, toApiError } from "../api/client";

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <div className="loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      <span>{label}</span>
    </div>
  );
}

export function EmptyState({ title, children, action }: { title: string; children?: ReactNode; action?: ReactNode }) {
  return (
    <div className="empty" data-testid="empty-state">
      <div className="empty-title">{title}</div>
      {children ? <div className="empty-body">{children}</div> : null}
      {action ? <div className="empty-action">{action}</div> : null}
    </div>
  );
}

/**
 * An API (or client) error with its code and message, the HTTP status, the
 * request id to find it in the daemon's logs, and the details on demand.
 */
export function ErrorPanel({
  error,
  title,
  onRetry,
  compact = false,
}: {
  error: unknown;
  title?: string;
  onRetry?: () => void;
  compact?: boolean;
}) {
  const [showDetails, setShowDetails] = useState(false);
  const err = toApiError(error);
  const missingScope = err.code === "FORBIDDEN" ? requiredScope(err.details) : null;
  const outage = storeOutageHint(err);
  const hasDetails =
    err.details !== null &&
    err.details !== undefined &&
    !(typeof err.details === "object" && Object.keys(err.details).length === 0);
  return (
    <div className={compact ? "error-panel compact" : "error-panel"} role="alert" data-testid="api-error">
      <div className="error-head">
        <span className="error-code" data-testid="error-code">
          {err.code}
        </span>
        {err.status > 0 ? <span className="error-status">HTTP {err.status}</span> : null}
        {title ? <span className="error-title">{title}</span> : null}
      </div>
      <div className="error-message" data-testid="error-message">
        {err.message}
      </div>
      {missingScope ? (
        <div className="error-hint" data-testid="error-hint">
          This needs a token with the <code>{missingScope}</code> scope: sign out and sign in with one, or ask an admin
          for it.
        </div>
      ) : null}
      {outage ? (
        <div className="error-hint" data-testid="error-hint">
          {outage}
        </div>
      ) : null}
      <div className="error-foot">
        {err.requestId ? <span className="muted mono">request {err.requestId}</span> : null}
        {hasDetails ? (
          <button type="button" className="link-button" onClick={() => setShowDetails((v) => !v)}>
            {showDetails ? "Hide details" : "Details"}
          </button>
        ) : null}
        {onRetry ? (
          <button type="button" className="link-button" onClick={onRetry}>
            Retry
          </button>
        ) : null}
      </div>
      {showDetails && hasDetails ? <pre className="error-details">{JSON.stringify(err.details, null, 2)}</pre> : null}
    </div>
  );
}

/** The scope a `FORBIDDEN` answer names in its details, if any. */
function requiredScope(details: unknown): string | null {
  if (typeof details !== "object" || details === null) return null;
  const scope = (details as { required_scope?: unknown }).required_scope;
  return typeof scope === "string" ? scope : null;
}

/**
 * Renders a query's three states: loading, error (with retry), or the data.
 */
export function QueryState<T>({
  query,
  label,
  children,
}: {
  query: { data: T | undefined; error: unknown; isPending: boolean; refetch: () => unknown };
  label?: string;
  children: (data: T) => ReactNode;
}) {
  if (query.isPending) return <Loading label={label} />;
  if (query.error !== null && query.error !== undefined && query.data === undefined) {
    return <ErrorPanel error={query.error} onRetry={() => void query.refetch()} />;
  }
  if (query.data === undefined) return <Loading label={label} />;
  return <>{children(query.data)}</>;
}
