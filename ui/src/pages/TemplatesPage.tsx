/** Templates: the list, creating one, deleting one. */
import { useState } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Link, useNavigate } from "react-router";
import { api, unwrap, type CreateTemplateBody, type Template } from "../api/client";
import { keys, useTemplates } from "../api/queries";
import { CopyId, PageHeader, Tag, Time, useTitle } from "../components/bits";
import { ConfirmDialog, Dialog } from "../components/Dialog";
import { EmptyState, ErrorPanel, QueryState } from "../components/feedback";

export function CreateTemplateDialog({ open, onClose }: { open: boolean; onClose: () => void }) {
  const [name, setName] = useState("");
  const [engine, setEngine] = useState("boa");
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const create = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST("/templates", {
          // Free text on purpose: the daemon's refusal names the engines it has.
          body: { name: name.trim(), engine: (engine.trim() || undefined) as CreateTemplateBody["engine"] },
        }),
      ),
    onSuccess: (template) => {
      void queryClient.invalidateQueries({ queryKey: keys.templates });
      setName("");
      onClose();
      void navigate(`/templates/${template.id}`);
    },
  });
  const close = () => {
    create.reset();
    onClose();
  };
  return (
    <Dialog open={open} title="New template" onClose={close} testId="create-template-dialog">
      <form
        className="form"
        onSubmit={(event) => {
          event.preventDefault();
          create.mutate();
        }}
      >
        <label className="field">
          <span>Name</span>
          <input
            name="name"
            value={name}
            onChange={(event) => setName(event.target.value)}
            placeholder="e.g. data-scratchpad"
            autoFocus
            required
          />
        </label>
        <label className="field">
          <span>Engine</span>
          <input name="engine" value={engine} onChange={(event) => setEngine(event.target.value)} />
          <small>The daemon rejects engines it has no runtime for, and lists the ones it has.</small>
        </label>
        <p className="muted small">
          Settings start at their defaults; modules, libraries and startup files are added on the next page.
        </p>
        {create.error ? <ErrorPanel error={create.error} compact /> : null}
        <div className="form-actions">
          <button type="button" className="button" onClick={close}>
            Cancel
          </button>
          <button type="submit" className="button primary" disabled={create.isPending || name.trim() === ""}>
            {create.isPending ? "Creating…" : "Create template"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

export function DeleteTemplateDialog({
  template,
  onClose,
  onDeleted,
}: {
  template: Template | null;
  onClose: () => void;
  onDeleted?: () => void;
}) {
  const queryClient = useQueryClient();
  const remove = useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE("/templates/{id}", { params: { path: { id } } })),
    onSuccess: (_, id) => {
      queryClient.removeQueries({ queryKey: keys.template(id) });
      void queryClient.invalidateQueries({ queryKey: keys.templates });
      onClose();
      onDeleted?.();
    },
  });
  return (
    <ConfirmDialog
      open={template !== null}
      title="Delete template"
      message={
        <>
          Delete <strong>{template?.name}</strong> with its settings, startup files and capabilities? Sessions already
          made from it keep running.
        </>
      }
      confirmLabel="Delete template"
      busy={remove.isPending}
      error={remove.error ? <ErrorPanel error={remove.error} compact /> : undefined}
      onConfirm={() => template && remove.mutate(template.id)}
      onClose={() => {
        remove.reset();
        onClose();
      }}
    />
  );
}

export function TemplatesPage() {
  useTitle("Templates");
  const templates = useTemplates();
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState<Template | null>(null);
  const newButton = (
    <button type="button" className="button primary" onClick={() => setCreating(true)}>
      New template
    </button>
  );
  return (
    <div className="page" data-testid="templates-page">
      <PageHeader
        title="Templates"
        subtitle="Saved runtime profiles: engine, limits, startup files, modules and libraries."
        actions={newButton}
      />
      <QueryState query={templates} label="Loading templates…">
        {(list) =>
          list.length === 0 ? (
            <EmptyState title="No templates yet" action={newButton}>
              A template says how a session's runtime is set up. Create one, then start sessions from it.
            </EmptyState>
          ) : (
            <div className="table-wrap">
              <table className="table">
                <thead>
                  <tr>
                    <th>Name</th>
                    <th>Engine</th>
                    <th>Modules</th>
                    <th>Libraries</th>
                    <th>Updated</th>
                    <th>Id</th>
                    <th aria-label="Actions" />
                  </tr>
                </thead>
                <tbody>
                  {list.map((template) => (
                    <tr key={template.id} data-testid="template-row">
                      <td>
                        <Link to={`/templates/${template.id}`} className="strong">
                          {template.name}
                        </Link>
                      </td>
                      <td>{template.engine}</td>
                      <td>
                        {template.exposed_modules.length === 0 ? (
                          <span className="muted">none</span>
                        ) : (
                          template.exposed_modules.map((name) => <Tag key={name}>{name}</Tag>)
                        )}
                      </td>
                      <td>
                        {template.libraries.length === 0 ? (
                          <span className="muted">none</span>
                        ) : (
                          template.libraries.map((name) => <Tag key={name}>{name}</Tag>)
                        )}
                      </td>
                      <td>
                        <Time iso={template.updated_at} />
                      </td>
                      <td>
                        <CopyId id={template.id} />
                      </td>
                      <td className="row-actions">
                        <button
                          type="button"
                          className="button small danger-quiet"
                          onClick={() => setDeleting(template)}
                        >
                          Delete
                        </button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </QueryState>
      <CreateTemplateDialog open={creating} onClose={() => setCreating(false)} />
      <DeleteTemplateDialog template={deleting} onClose={() => setDeleting(null)} />
    </div>
  );
}
