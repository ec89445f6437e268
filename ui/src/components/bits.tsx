/** Small presentational pieces shared by the pages. */
import { useEffect, useState, type ReactNode } from "react";
import { Link } from "react-router";
import { absoluteTime, relativeTime, shortId } from "../lib/format";

/** Sets the browser tab's title while a page is shown. */
export function useTitle(title: string) {
  useEffect(() => {
    document.title = title ? `${title} · vm-system` : "vm-system";
  }, [title]);
}

export function PageHeader({
  title,
  subtitle,
  crumbs,
  actions,
}: {
  title: ReactNode;
  subtitle?: ReactNode;
  crumbs?: { to: string; label: string }[];
  actions?: ReactNode;
}) {
  return (
    <header className="page-header">
      {crumbs && crumbs.length > 0 ? (
        <nav className="crumbs" aria-label="Breadcrumb">
          {crumbs.map((crumb) => (
            <span key={crumb.to}>
              <Link to={crumb.to}>{crumb.label}</Link>
              <span className="crumb-sep">/</span>
            </span>
          ))}
        </nav>
      ) : null}
      <div className="page-header-row">
        <div>
          <h1>{title}</h1>
          {subtitle ? <div className="page-subtitle">{subtitle}</div> : null}
        </div>
        {actions ? <div className="page-actions">{actions}</div> : null}
      </div>
    </header>
  );
}

export function Card({
  title,
  description,
  actions,
  children,
  testId,
}: {
  title: ReactNode;
  description?: ReactNode;
  actions?: ReactNode;
  children: ReactNode;
  testId?: string;
}) {
  return (
    <section className="card" data-testid={testId}>
      <div className="card-head">
        <div>
          <h2>{title}</h2>
          {description ? <p className="card-description">{description}</p> : null}
        </div>
        {actions ? <div className="card-actions">{actions}</div> : null}
      </div>
      <div className="card-body">{children}</div>
    </section>
  );
}

const STATUS_TONE: Record<string, string> = {
  ready: "ok",
  ok: "ok",
  starting: "info",
  running: "info",
  crashed: "bad",
  error: "bad",
  timeout: "warn",
  cancelled: "muted",
  closed: "muted",
  active: "ok",
  expired: "warn",
  revoked: "muted",
};

export function StatusBadge({ status }: { status: string }) {
  return (
    <span className={`badge tone-${STATUS_TONE[status] ?? "muted"}`} data-testid="status-badge">
      {status}
    </span>
  );
}

export function Tag({ children, tone = "muted" }: { children: ReactNode; tone?: string }) {
  return <span className={`badge tone-${tone}`}>{children}</span>;
}

export function Time({ iso }: { iso: string | undefined | null }) {
  if (!iso) return <span className="muted">—</span>;
  return (
    <time dateTime={iso} title={absoluteTime(iso)}>
      {relativeTime(iso)}
    </time>
  );
}

export function CopyId({ id, full = false }: { id: string; full?: boolean }) {
  const [copied, setCopied] = useState(false);
  const copy = () => {
    void navigator.clipboard?.writeText(id).then(() => {
      setCopied(true);
      window.setTimeout(() => setCopied(false), 1200);
    });
  };
  return (
    <span className="copy-id mono" title={id}>
      {full ? id : shortId(id)}
      <button type="button" className="icon-button" onClick={copy} aria-label="Copy id">
        {copied ? (
          "✓"
        ) : (
          <svg width="12" height="12" viewBox="0 0 16 16" aria-hidden="true">
            <rect x="5" y="5" width="9" height="9" rx="1.5" fill="none" stroke="currentColor" strokeWidth="1.5" />
            <path
              d="M11 3.5V3a1 1 0 0 0-1-1H3a1 1 0 0 0-1 1v7a1 1 0 0 0 1 1h.5"
              fill="none"
              stroke="currentColor"
              strokeWidth="1.5"
            />
          </svg>
        )}
      </button>
    </span>
  );
}

export function Kbd({ children }: { children: ReactNode }) {
  return <kbd>{children}</kbd>;
}

/** "Ctrl" or "⌘" depending on the platform. */
export const MOD_KEY =
  typeof navigator !== "undefined" && /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent) ? "⌘" : "Ctrl";
