/** API tokens (admin): the list with each one's status, making one, revoking one. */
import { useState } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, unwrap, type CreatedToken, type Scope, type Token } from "../api/client";
import { keys, useTokens } from "../api/queries";
import { useSignedIn } from "../components/AuthGate";
import { CopyId, PageHeader, StatusBadge, Tag, Time, useTitle } from "../components/bits";
import { ConfirmDialog, Dialog } from "../components/Dialog";
import { EmptyState, ErrorPanel, QueryState } from "../components/feedback";

const SCOPES: { scope: Scope; description: string }[] = [
  { scope: "read", description: "sees templates, sessions, executions and the system" },
  { scope: "execute", description: "also starts and closes sessions and runs code" },
  { scope: "admin", description: "also edits templates and manages tokens" },
];

const EXPIRY_DAYS: { label: string; days: number | null }[] = [
  { label: "Never", days: null },
  { label: "1 day", days: 1 },
  { label: "7 days", days: 7 },
  { label: "30 days", days: 30 },
  { label: "90 days", days: 90 },
  { label: "1 year", days: 365 },
];

/** The moment `days` from `now`, as the API's date-time; null for never. */
export function expiryAt(days: number | null, now: number = Date.now()): string | undefined {
  return days === null ? undefined : new Date(now + days * 86_400_000).toISOString();
}

function CreateTokenForm({ onCreated, onClose }: { onCreated: (created: CreatedToken) => void; onClose: () => void }) {
  const [name, setName] = useState("");
  const [scope, setScope] = useState<Scope>("read");
  const [expiry, setExpiry] = useState("30");
  const queryClient = useQueryClient();
  const create = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST("/tokens", {
          body: {
            name: name.trim(),
            scopes: [scope],
            expires_at: expiryAt(expiry === "never" ? null : Number(expiry)),
          },
        }),
      ),
    onSuccess: (created) => {
      void queryClient.invalidateQueries({ queryKey: keys.tokens });
      onCreated(created);
    },
  });
  return (
    <form
      className="form"
      onSubmit={(event) => {
        event.preventDefault();
        create.mutate();
      }}
    >
      <label className="field">
        <span>Token name</span>
        <input
          name="token-name"
          value={name}
          onChange={(event) => setName(event.target.value)}
          placeholder="e.g. ci-runner or alice@laptop"
          autoFocus
          required
        />
        <small>Letters, digits and . _ - @ : (up to 64).</small>
      </label>
      <fieldset>
        <legend>Scope</legend>
        {SCOPES.map((option) => (
          <label key={option.scope} className="check scope-choice">
            <input
              type="radio"
              name="scope"
              value={option.scope}
              checked={scope === option.scope}
              onChange={() => setScope(option.scope)}
            />
            <span>
              <strong>{option.scope}</strong> <span className="muted">{option.description}</span>
            </span>
          </label>
        ))}
      </fieldset>
      <label className="field">
        <span>Expires</span>
        <select name="expiry" value={expiry} onChange={(event) => setExpiry(event.target.value)}>
          {EXPIRY_DAYS.map((option) => (
            <option key={option.label} value={option.days === null ? "never" : String(option.days)}>
              {option.days === null ? option.label : `in ${option.label}`}
            </option>
          ))}
        </select>
      </label>
      {create.error ? <ErrorPanel error={create.error} compact /> : null}
      <div className="form-actions">
        <button type="button" className="button" onClick={onClose}>
          Cancel
        </button>
        <button type="submit" className="button primary" disabled={create.isPending || name.trim() === ""}>
          {create.isPending ? "Creating…" : "Create token"}
        </button>
      </div>
    </form>
  );
}

function CopySecret({ secret }: { secret: string }) {
  const [copied, setCopied] = useState<"no" | "yes" | "failed">("no");
  const copy = () => {
    const clipboard = navigator.clipboard as Clipboard | undefined;
    if (!clipboard) {
      setCopied("failed");
      return;
    }
    clipboard.writeText(secret).then(
      () => setCopied("yes"),
      () => setCopied("failed"),
    );
  };
  return (
    <div className="secret-row">
      <input
        className="mono grow"
        readOnly
        value={secret}
        aria-label="Token secret"
        data-testid="token-secret"
        onFocus={(event) => event.currentTarget.select()}
      />
      <button type="button" className="button" onClick={copy}>
        {copied === "yes" ? "Copied ✓" : "Copy secret"}
      </button>
      {copied === "failed" ? (
        <span className="inline-error">Copying was refused: select the text and copy it.</span>
      ) : null}
    </div>
  );
}

/** The secret of a new token, shown once. */
function CreatedTokenPanel({ created, onClose }: { created: CreatedToken; onClose: () => void }) {
  return (
    <div className="form" data-testid="created-token">
      <p>
        Token <strong>{created.token.name}</strong> ({created.token.scopes.join(", ")}) is ready. Copy its secret now:
        it is stored hashed and <strong>cannot be shown again</strong>.
      </p>
      <CopySecret secret={created.secret} />
      <p className="muted small">
        Send it as <code>Authorization: Bearer …</code>, or paste it in this UI&apos;s login screen.
      </p>
      <div className="form-actions">
        <button type="button" className="button primary" onClick={onClose}>
          Done
        </button>
      </div>
    </div>
  );
}

function NewTokenDialog({ open, onClose }: { open: boolean; onClose: () => void }) {
  const [created, setCreated] = useState<CreatedToken | null>(null);
  const close = () => {
    setCreated(null);
    onClose();
  };
  return (
    <Dialog open={open} title={created ? "Token created" : "New token"} onClose={close} testId="create-token-dialog">
      {created ? (
        <CreatedTokenPanel created={created} onClose={close} />
      ) : open ? (
        <CreateTokenForm onCreated={setCreated} onClose={close} />
      ) : null}
    </Dialog>
  );
}

function RevokeTokenDialog({ token, own, onClose }: { token: Token | null; own: boolean; onClose: () => void }) {
  const queryClient = useQueryClient();
  const revoke = useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE("/tokens/{id}", { params: { path: { id } } })),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: keys.tokens });
      onClose();
    },
  });
  return (
    <ConfirmDialog
      open={token !== null}
      title="Revoke token"
      message={
        <>
          Revoke <strong>{token?.name}</strong>? Every program using it is refused at once; it stays listed as revoked.
          {own ? " This tab is signed in with it, so you will be signed out." : null}
        </>
      }
      confirmLabel="Revoke token"
      busy={revoke.isPending}
      error={revoke.error ? <ErrorPanel error={revoke.error} compact /> : undefined}
      onConfirm={() => token && revoke.mutate(token.id)}
      onClose={() => {
        revoke.reset();
        onClose();
      }}
    />
  );
}

export function TokensPage() {
  useTitle("Tokens");
  const list = useTokens();
  const { who } = useSignedIn();
  const [creating, setCreating] = useState(false);
  const [revoking, setRevoking] = useState<Token | null>(null);
  const newButton = (
    <button type="button" className="button primary" onClick={() => setCreating(true)}>
      New token
    </button>
  );
  return (
    <div className="page" data-testid="tokens-page">
      <PageHeader
        title="Tokens"
        subtitle="Who may call the API, with which scope, until when. Secrets are shown once, when made."
        actions={newButton}
      />
      <QueryState query={list} label="Loading tokens…">
        {(tokens) =>
          tokens.length === 0 ? (
            <EmptyState title="No tokens" action={newButton} />
          ) : (
            <div className="table-wrap">
              <table className="table">
                <thead>
                  <tr>
                    <th>Name</th>
                    <th>Scopes</th>
                    <th>Status</th>
                    <th>Created</th>
                    <th>Last used</th>
                    <th>Expires</th>
                    <th>Id</th>
                    <th aria-label="Actions" />
                  </tr>
                </thead>
                <tbody>
                  {tokens.map((token) => (
                    <tr key={token.id} data-testid="token-row" data-status={token.status}>
                      <td className="strong">
                        {token.name} {token.id === who.token_id ? <Tag tone="info">this tab</Tag> : null}
                      </td>
                      <td>
                        {token.scopes.map((scope) => (
                          <Tag key={scope}>{scope}</Tag>
                        ))}
                      </td>
                      <td>
                        <StatusBadge status={token.status} />
                      </td>
                      <td>
                        <Time iso={token.created_at} />
                      </td>
                      <td>
                        <Time iso={token.last_used_at} />
                      </td>
                      <td>
                        {token.expires_at ? <Time iso={token.expires_at} /> : <span className="muted">never</span>}
                      </td>
                      <td>
                        <CopyId id={token.id} />
                      </td>
                      <td className="row-actions">
                        {token.status === "active" ? (
                          <button
                            type="button"
                            className="button small danger-quiet"
                            onClick={() => setRevoking(token)}
                            aria-label={`Revoke token ${token.name}`}
                          >
                            Revoke
                          </button>
                        ) : null}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </QueryState>
      <NewTokenDialog open={creating} onClose={() => setCreating(false)} />
      <RevokeTokenDialog
        token={revoking}
        own={revoking !== null && revoking.id === who.token_id}
        onClose={() => setRevoking(null)}
      />
    </div>
  );
}
