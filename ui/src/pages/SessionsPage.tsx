/** Sessions: the list with a status filter, starting one, forking one, closing one. */
import { useState } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Link, useNavigate, useSearchParams } from "react-router";
import { api, toApiError, unwrap, type Session, type SessionStatus } from "../api/client";
import { keys, useSessions, useTemplates } from "../api/queries";
import { CopyId, PageHeader, StatusBadge, Time, useTitle } from "../components/bits";
import { Dialog } from "../components/Dialog";
import { EmptyState, ErrorPanel, QueryState } from "../components/feedback";

const STATUSES: SessionStatus[] = ["starting", "ready", "crashed", "closed"];
const LAST_SESSION_FORM = "vm-system:last-session-form";

interface SessionForm {
  templateId: string;
  workspaceId: string;
  baseCommit: string;
  worktree: string;
}

function lastForm(): Omit<SessionForm, "templateId"> {
  try {
    const saved = JSON.parse(window.localStorage.getItem(LAST_SESSION_FORM) ?? "{}") as Partial<SessionForm>;
    return {
      workspaceId: saved.workspaceId ?? "local",
      baseCommit: saved.baseCommit ?? "HEAD",
      worktree: saved.worktree ?? "",
    };
  } catch {
    return { workspaceId: "local", baseCommit: "HEAD", worktree: "" };
  }
}

export function CreateSessionDialog({
  open,
  onClose,
  templateId,
}: {
  open: boolean;
  onClose: () => void;
  templateId?: string;
}) {
  return (
    <Dialog open={open} title="New session" onClose={onClose} testId="create-session-dialog">
      {open ? <CreateSessionForm onClose={onClose} templateId={templateId} /> : null}
    </Dialog>
  );
}

function CreateSessionForm({ onClose, templateId }: { onClose: () => void; templateId?: string }) {
  const templates = useTemplates();
  const [form, setForm] = useState<SessionForm>(() => ({ templateId: templateId ?? "", ...lastForm() }));
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const chosenTemplate = form.templateId || templates.data?.[0]?.id || "";
  const create = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST("/sessions", {
          body: {
            template_id: chosenTemplate,
            workspace_id: form.workspaceId.trim(),
            base_commit_oid: form.baseCommit.trim(),
            worktree_path: form.worktree.trim(),
          },
        }),
      ),
    onSuccess: (session) => {
      window.localStorage.setItem(LAST_SESSION_FORM, JSON.stringify(form));
      void queryClient.invalidateQueries({ queryKey: keys.sessions });
      void queryClient.invalidateQueries({ queryKey: keys.summary });
      onClose();
      void navigate(`/sessions/${session.id}`);
    },
    onError: () => void queryClient.invalidateQueries({ queryKey: keys.sessions }),
  });
  const failure = create.error ? toApiError(create.error) : null;
  const crashedId =
    failure && typeof failure.details === "object" && failure.details !== null
      ? (failure.details as { session_id?: unknown }).session_id
      : undefined;
  const set = (patch: Partial<SessionForm>) => setForm((current) => ({ ...current, ...patch }));
  return (
    <form
      className="form"
      onSubmit={(event) => {
        event.preventDefault();
        create.mutate();
      }}
    >
      <label className="field">
        <span>Template</span>
        <QueryState query={templates} label="Loading templates…">
          {(list) =>
            list.length === 0 ? (
              <span className="muted">
                No templates yet: <Link to="/templates">create one</Link> first.
              </span>
            ) : (
              <select
                name="template"
                value={chosenTemplate}
                onChange={(event) => set({ templateId: event.target.value })}
              >
                {list.map((template) => (
                  <option key={template.id} value={template.id}>
                    {template.name}
                  </option>
                ))}
              </select>
            )
          }
        </QueryState>
      </label>
      <label className="field">
        <span>Worktree path</span>
        <input
          name="worktree_path"
          className="mono"
          value={form.worktree}
          placeholder="/absolute/path/to/a/directory"
          onChange={(event) => set({ worktree: event.target.value })}
          required
          autoFocus
        />
        <small>An existing directory on the daemon's machine; run-file and startup paths are relative to it.</small>
      </label>
      <div className="grid-fields two">
        <label className="field">
          <span>Workspace id</span>
          <input
            name="workspace_id"
            value={form.workspaceId}
            onChange={(event) => set({ workspaceId: event.target.value })}
          />
        </label>
        <label className="field">
          <span>Base commit</span>
          <input
            name="base_commit_oid"
            className="mono"
            value={form.baseCommit}
            onChange={(event) => set({ baseCommit: event.target.value })}
          />
        </label>
      </div>
      {failure ? <ErrorPanel error={failure} compact /> : null}
      {typeof crashedId === "string" ? (
        <p className="small">
          The session was recorded as crashed: <Link to={`/sessions/${crashedId}`}>open it</Link> to see its startup
          executions.
        </p>
      ) : null}
      <div className="form-actions">
        <button type="button" className="button" onClick={onClose}>
          Cancel
        </button>
        <button type="submit" className="button primary" disabled={create.isPending || chosenTemplate === ""}>
          {create.isPending ? "Starting…" : "Start session"}
        </button>
      </div>
    </form>
  );
}

/** A session's template: its name, or a note that it was deleted since. */
function TemplateCell({ id, name, known }: { id: string; name: string | undefined; known: boolean }) {
  if (name !== undefined) return <Link to={`/templates/${id}`}>{name}</Link>;
  if (!known) return <CopyId id={id} />;
  return (
    <span className="muted" title="The template was deleted; the session keeps running.">
      deleted <CopyId id={id} />
    </span>
  );
}

export function useCloseSession() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => unwrap(api.POST("/sessions/{id}/close", { params: { path: { id } } })),
    onSuccess: (session) => {
      queryClient.setQueryData(keys.session(session.id), session);
      void queryClient.invalidateQueries({ queryKey: keys.sessions });
      void queryClient.invalidateQueries({ queryKey: keys.summary });
    },
  });
}

/**
 * Forks a session (a new one whose heap starts as a copy of its) and opens
 * the new one.
 */
export function useForkSession() {
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  return useMutation({
    mutationFn: (id: string) => unwrap(api.POST("/sessions/{id}/fork", { params: { path: { id } } })),
    onSuccess: (session) => {
      queryClient.setQueryData(keys.session(session.id), session);
      void queryClient.invalidateQueries({ queryKey: keys.sessions });
      void queryClient.invalidateQueries({ queryKey: keys.summary });
      void navigate(`/sessions/${session.id}`);
    },
  });
}

/** "forked from 1a2b3c4d", linking to the source session; nothing for a session that was not forked. */
export function ForkedFrom({ session }: { session: Session }) {
  const source = session.forked_from;
  if (!source) return null;
  return (
    <span className="forked-from" data-testid="forked-from">
      forked from{" "}
      <Link to={`/sessions/${source}`} className="mono">
        {source.slice(0, 8)}
      </Link>
    </span>
  );
}

export function SessionsPage() {
  useTitle("Sessions");
  const [params, setParams] = useSearchParams();
  const raw = params.get("status");
  const status = STATUSES.find((s) => s === raw);
  const sessions = useSessions(status);
  const templates = useTemplates();
  const [creating, setCreating] = useState(false);
  const close = useCloseSession();
  const fork = useForkSession();
  const templateName = (id: string) => templates.data?.find((t) => t.id === id)?.name;
  const newButton = (
    <button type="button" className="button primary" onClick={() => setCreating(true)}>
      New session
    </button>
  );
  return (
    <div className="page" data-testid="sessions-page">
      <PageHeader
        title="Sessions"
        subtitle="Live runtimes made from a template and bound to a worktree."
        actions={newButton}
      />
      <div className="toolbar">
        <div className="segmented" role="group" aria-label="Filter by status">
          {[undefined, ...STATUSES].map((value) => (
            <button
              key={value ?? "all"}
              type="button"
              className={value === status ? "active" : ""}
              aria-pressed={value === status}
              onClick={() => setParams(value ? { status: value } : {})}
            >
              {value ?? "all"}
            </button>
          ))}
        </div>
        {sessions.isFetching && !sessions.isPending ? <span className="muted small">refreshing…</span> : null}
      </div>
      {close.error ? <ErrorPanel error={close.error} compact title="Closing failed" /> : null}
      {fork.error ? <ErrorPanel error={fork.error} compact title="Forking failed" /> : null}
      <QueryState query={sessions} label="Loading sessions…">
        {(list) =>
          list.length === 0 ? (
            <EmptyState
              title={status ? `No ${status} sessions` : "No sessions yet"}
              action={status ? undefined : newButton}
            >
              {status
                ? "Try another filter."
                : "A session is a live JavaScript runtime bound to a directory. Start one from a template."}
            </EmptyState>
          ) : (
            <div className="table-wrap">
              <table className="table">
                <thead>
                  <tr>
                    <th>Session</th>
                    <th>Status</th>
                    <th>Template</th>
                    <th>Worktree</th>
                    <th>Workspace</th>
                    <th>Created</th>
                    <th aria-label="Actions" />
                  </tr>
                </thead>
                <tbody>
                  {list.map((session: Session) => (
                    <tr key={session.id} data-testid="session-row" data-status={session.status}>
                      <td>
                        <Link to={`/sessions/${session.id}`} className="mono strong">
                          {session.id.slice(0, 8)}
                        </Link>
                        {session.forked_from ? (
                          <div>
                            <ForkedFrom session={session} />
                          </div>
                        ) : null}
                      </td>
                      <td>
                        <StatusBadge status={session.status} />
                      </td>
                      <td>
                        <TemplateCell
                          id={session.template_id}
                          name={templateName(session.template_id)}
                          known={templates.data !== undefined}
                        />
                      </td>
                      <td className="mono small truncate" title={session.worktree_path}>
                        {session.worktree_path}
                      </td>
                      <td className="small">
                        {session.workspace_id}{" "}
                        <span className="muted mono">@{session.base_commit_oid.slice(0, 10)}</span>
                      </td>
                      <td>
                        <Time iso={session.created_at} />
                      </td>
                      <td className="row-actions">
                        {session.status === "ready" ? (
                          <button
                            type="button"
                            className="button small"
                            title="Start a new session whose heap is a copy of this one's"
                            aria-label={`Fork session ${session.id.slice(0, 8)}`}
                            disabled={fork.isPending && fork.variables === session.id}
                            onClick={() => fork.mutate(session.id)}
                          >
                            {fork.isPending && fork.variables === session.id ? "Forking…" : "Fork"}
                          </button>
                        ) : null}
                        {session.status === "ready" || session.status === "starting" ? (
                          <button
                            type="button"
                            className="button small"
                            disabled={close.isPending && close.variables === session.id}
                            onClick={() => close.mutate(session.id)}
                          >
                            Close
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
      <CreateSessionDialog open={creating} onClose={() => setCreating(false)} />
    </div>
  );
}
