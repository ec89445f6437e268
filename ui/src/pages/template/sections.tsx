/** The parts of a template besides its settings: startup files, modules, libraries, capabilities. */
import { useState } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import {
  api,
  unwrap,
  type Capability,
  type CatalogLibrary,
  type CatalogModule,
  type CapabilityKind,
  type CreateCapabilityBody,
  type CreateStartupFileBody,
  type LibraryName,
  type ModuleName,
  type StartupFile,
} from "../../api/client";
import { keys, useCatalogLibraries, useCatalogModules } from "../../api/queries";
import { Card, Tag } from "../../components/bits";
import { ErrorPanel, QueryState } from "../../components/feedback";

function useRefreshTemplate(templateId: string) {
  const queryClient = useQueryClient();
  // Returned to the mutation, so it stays pending until the template is fresh again.
  return () =>
    Promise.all([
      queryClient.invalidateQueries({ queryKey: keys.template(templateId) }),
      queryClient.invalidateQueries({ queryKey: keys.templates, exact: true }),
    ]);
}

export function StartupFilesCard({ templateId, files }: { templateId: string; files: StartupFile[] }) {
  const [path, setPath] = useState("");
  const [order, setOrder] = useState("0");
  const [mode, setMode] = useState("eval");
  const refresh = useRefreshTemplate(templateId);
  const add = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST("/templates/{id}/startup-files", {
          params: { path: { id: templateId } },
          body: {
            path: path.trim(),
            order_index: order.trim() === "" ? undefined : Number(order),
            // "module" is offered too, so that the daemon's refusal says why.
            mode: mode as CreateStartupFileBody["mode"],
          },
        }),
      ),
    onSuccess: () => {
      setPath("");
      return refresh();
    },
  });
  return (
    <Card
      title="Startup files"
      description="Run in ascending order when a session starts, each recorded as a startup execution. Paths are relative to the session's worktree."
      testId="startup-files-card"
    >
      {files.length === 0 ? (
        <p className="muted">No startup files.</p>
      ) : (
        <table className="table compact">
          <thead>
            <tr>
              <th>Order</th>
              <th>Path</th>
              <th>Mode</th>
            </tr>
          </thead>
          <tbody>
            {files.map((file) => (
              <tr key={file.id} data-testid="startup-file-row">
                <td className="mono">{file.order_index}</td>
                <td className="mono">{file.path}</td>
                <td>{file.mode}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form
        className="inline-form"
        onSubmit={(event) => {
          event.preventDefault();
          add.mutate();
        }}
      >
        <input
          name="startup-path"
          aria-label="Startup file path"
          placeholder="setup.js"
          value={path}
          onChange={(event) => setPath(event.target.value)}
          className="grow mono"
        />
        <input
          name="startup-order"
          aria-label="Order index"
          type="number"
          step={1}
          value={order}
          onChange={(event) => setOrder(event.target.value)}
          className="narrow"
        />
        <select name="startup-mode" aria-label="Mode" value={mode} onChange={(event) => setMode(event.target.value)}>
          <option value="eval">eval</option>
          <option value="module">module (unsupported)</option>
        </select>
        <button type="submit" className="button" disabled={add.isPending || path.trim() === ""}>
          Add startup file
        </button>
      </form>
      {add.error ? <ErrorPanel error={add.error} compact /> : null}
    </Card>
  );
}

export function ModulesCard({ templateId, enabled }: { templateId: string; enabled: string[] }) {
  const catalog = useCatalogModules();
  const refresh = useRefreshTemplate(templateId);
  const toggle = useMutation({
    // Names come from the catalog (plain strings) or the template; the daemon checks them.
    mutationFn: ({ name, on }: { name: ModuleName; on: boolean }) =>
      on
        ? unwrap(api.POST("/templates/{id}/modules", { params: { path: { id: templateId } }, body: { name } }))
        : unwrap(api.DELETE("/templates/{id}/modules/{name}", { params: { path: { id: templateId, name } } })),
    onSettled: refresh,
  });
  return (
    <Card
      title="Native modules"
      description={
        <>
          Reachable from JavaScript with <code>require(name)</code> only when enabled here.
        </>
      }
      testId="modules-card"
    >
      <QueryState query={catalog} label="Loading the module catalog…">
        {(modules: CatalogModule[]) =>
          modules.length === 0 ? (
            <p className="muted">The catalog has no native modules.</p>
          ) : (
            <ul className="option-list">
              {modules.map((module) => {
                const pending = toggle.isPending && toggle.variables.name === module.name;
                const on = pending ? toggle.variables.on : enabled.includes(module.name);
                return (
                  <li key={module.name} className="option" data-testid="module-option">
                    <label className="switch">
                      <input
                        type="checkbox"
                        checked={on}
                        aria-label={`Enable module ${module.name}`}
                        disabled={toggle.isPending}
                        onChange={() => toggle.mutate({ name: module.name as ModuleName, on: !on })}
                      />
                      <span className="switch-track" aria-hidden="true" />
                    </label>
                    <div>
                      <div className="option-name mono">{module.name}</div>
                      <div className="option-description">{module.description}</div>
                    </div>
                  </li>
                );
              })}
            </ul>
          )
        }
      </QueryState>
      {toggle.error ? <ErrorPanel error={toggle.error} compact /> : null}
    </Card>
  );
}

export function LibrariesCard({ templateId, configured }: { templateId: string; configured: string[] }) {
  const catalog = useCatalogLibraries();
  const refresh = useRefreshTemplate(templateId);
  const change = useMutation({
    mutationFn: ({ name, add }: { name: LibraryName; add: boolean }) =>
      add
        ? unwrap(api.POST("/templates/{id}/libraries", { params: { path: { id: templateId } }, body: { name } }))
        : unwrap(api.DELETE("/templates/{id}/libraries/{name}", { params: { path: { id: templateId, name } } })),
    onSettled: refresh,
  });
  return (
    <Card
      title="Libraries"
      description="Evaluated into the global scope at session start, in this order. A library must be in the daemon's cache to start a session."
      testId="libraries-card"
    >
      <QueryState query={catalog} label="Loading the library catalog…">
        {(libraries: CatalogLibrary[]) => {
          const byName = new Map(libraries.map((library) => [library.name, library]));
          const available = libraries.filter((library) => !configured.includes(library.name));
          return (
            <>
              {configured.length === 0 ? (
                <p className="muted">No libraries configured.</p>
              ) : (
                <ol className="option-list ordered" data-testid="configured-libraries">
                  {configured.map((name) => {
                    const library = byName.get(name);
                    return (
                      <li key={name} className="option" data-testid="configured-library">
                        <div className="grow">
                          <div className="option-name mono">
                            {name} {library ? <span className="muted">→ {library.global}</span> : null}
                          </div>
                          <CacheState library={library} />
                        </div>
                        <button
                          type="button"
                          className="button small"
                          disabled={change.isPending}
                          onClick={() => change.mutate({ name: name as LibraryName, add: false })}
                        >
                          Remove
                        </button>
                      </li>
                    );
                  })}
                </ol>
              )}
              {available.length > 0 ? (
                <>
                  <h3 className="subhead">Catalog</h3>
                  <ul className="option-list" data-testid="library-catalog">
                    {available.map((library) => (
                      <li key={library.name} className="option" data-testid="catalog-library">
                        <div className="grow">
                          <div className="option-name mono">
                            {library.name} <span className="muted">→ {library.global}</span>
                          </div>
                          <div className="option-description">{library.description}</div>
                          <CacheState library={library} />
                        </div>
                        <button
                          type="button"
                          className="button small"
                          disabled={change.isPending}
                          aria-label={`Add library ${library.name}`}
                          onClick={() => change.mutate({ name: library.name as LibraryName, add: true })}
                        >
                          Add
                        </button>
                      </li>
                    ))}
                  </ul>
                </>
              ) : null}
            </>
          );
        }}
      </QueryState>
      {change.error ? <ErrorPanel error={change.error} compact /> : null}
    </Card>
  );
}

function CacheState({ library }: { library: CatalogLibrary | undefined }) {
  if (!library) return <Tag tone="warn">not in the catalog</Tag>;
  return library.cached ? (
    <Tag tone="ok">cached</Tag>
  ) : (
    <span className="cache-missing">
      <Tag tone="warn">not cached</Tag>
      <span className="muted small">
        fetch it with <code>vm-system libs download {library.name}</code>
      </span>
    </span>
  );
}

const CAPABILITY_KINDS: readonly CapabilityKind[] = ["module", "global", "fs", "net", "env"];

export function CapabilitiesCard({ templateId, capabilities }: { templateId: string; capabilities: Capability[] }) {
  const [kind, setKind] = useState<CapabilityKind>("module");
  const [name, setName] = useState("");
  const [enabled, setEnabled] = useState(true);
  const [config, setConfig] = useState("{}");
  const [configError, setConfigError] = useState<string | null>(null);
  const refresh = useRefreshTemplate(templateId);
  const add = useMutation({
    mutationFn: (body: CreateCapabilityBody) =>
      unwrap(api.POST("/templates/{id}/capabilities", { params: { path: { id: templateId } }, body })),
    onSuccess: () => {
      setName("");
      setConfig("{}");
      return refresh();
    },
  });
  const submit = () => {
    let parsed: unknown;
    try {
      parsed = config.trim() === "" ? {} : JSON.parse(config);
    } catch (error) {
      setConfigError(`config is not valid JSON: ${(error as Error).message}`);
      return;
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      setConfigError('config must be a JSON object, e.g. {"allow": ["git"]}');
      return;
    }
    setConfigError(null);
    add.mutate({ kind, name: name.trim(), enabled, config: parsed as Record<string, unknown> });
  };
  return (
    <Card
      title="Capabilities"
      description="Descriptive metadata read at session setup, e.g. which programs the exec module may run."
      testId="capabilities-card"
    >
      {capabilities.length === 0 ? (
        <p className="muted">No capabilities.</p>
      ) : (
        <table className="table compact">
          <thead>
            <tr>
              <th>Kind</th>
              <th>Name</th>
              <th>Enabled</th>
              <th>Config</th>
            </tr>
          </thead>
          <tbody>
            {capabilities.map((capability) => (
              <tr key={capability.id} data-testid="capability-row">
                <td>{capability.kind}</td>
                <td className="mono">{capability.name}</td>
                <td>{capability.enabled ? <Tag tone="ok">yes</Tag> : <Tag>no</Tag>}</td>
                <td className="mono small">{JSON.stringify(capability.config)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form
        className="form capability-form"
        onSubmit={(event) => {
          event.preventDefault();
          submit();
        }}
      >
        <div className="inline-form">
          <select
            name="capability-kind"
            aria-label="Kind"
            value={kind}
            onChange={(event) => setKind(event.target.value as CapabilityKind)}
          >
            {CAPABILITY_KINDS.map((value) => (
              <option key={value} value={value}>
                {value}
              </option>
            ))}
          </select>
          <input
            name="capability-name"
            aria-label="Capability name"
            placeholder="name, e.g. exec"
            className="grow mono"
            value={name}
            onChange={(event) => setName(event.target.value)}
          />
          <label className="check">
            <input type="checkbox" checked={enabled} onChange={(event) => setEnabled(event.target.checked)} />
            enabled
          </label>
        </div>
        <label className="field">
          <span>Config (JSON object)</span>
          <textarea
            name="capability-config"
            className="mono"
            rows={2}
            value={config}
            onChange={(event) => setConfig(event.target.value)}
          />
        </label>
        <div className="form-actions">
          <button type="submit" className="button" disabled={add.isPending || name.trim() === ""}>
            Add capability
          </button>
        </div>
      </form>
      {configError ? (
        <div className="inline-error" role="alert">
          {configError}
        </div>
      ) : null}
      {add.error ? <ErrorPanel error={add.error} compact /> : null}
    </Card>
  );
}
