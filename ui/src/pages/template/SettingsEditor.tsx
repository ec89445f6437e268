/** Limits, resolver and runtime switches of a template, replaced as a whole. */
import { useId, useState } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, unwrap, type Settings, type SettingsBody } from "../../api/client";
import { keys } from "../../api/queries";
import { Card } from "../../components/bits";
import { ErrorPanel } from "../../components/feedback";

type LimitName = keyof Settings["limits"];

const LIMITS: { name: LimitName; label: string; unit: string; help: string }[] = [
  { name: "cpu_ms", label: "CPU time", unit: "ms", help: "CPU time one execution may use" },
  { name: "wall_ms", label: "Wall time", unit: "ms", help: "Clock time one execution may take" },
  { name: "mem_mb", label: "Memory", unit: "MiB", help: "Heap of the session's runtime" },
  { name: "max_events", label: "Events", unit: "events", help: "Events one execution may record" },
  { name: "max_output_kb", label: "Output", unit: "KiB", help: "Output one execution may produce" },
];

/** The defaults of SPEC §3, offered as "restore defaults" (the daemon applies them to omitted fields too). */
const DEFAULTS: Settings = {
  limits: { cpu_ms: 5000, wall_ms: 30000, mem_mb: 128, max_events: 1000, max_output_kb: 512 },
  resolver: { roots: [], extensions: [".js", ".mjs"], allow_absolute_repo_imports: false },
  runtime: { esm: false, strict: false, console: true, checkpoints: true },
};

interface Form {
  limits: Record<LimitName, string>;
  roots: string;
  extensions: string;
  allowAbsolute: boolean;
  esm: boolean;
  strict: boolean;
  console: boolean;
  checkpoints: boolean;
}

function toForm(settings: Settings): Form {
  return {
    limits: Object.fromEntries(LIMITS.map(({ name }) => [name, String(settings.limits[name])])) as Record<
      LimitName,
      string
    >,
    roots: settings.resolver.roots.join(", "),
    extensions: settings.resolver.extensions.join(", "),
    allowAbsolute: settings.resolver.allow_absolute_repo_imports,
    esm: settings.runtime.esm,
    strict: settings.runtime.strict,
    console: settings.runtime.console,
    checkpoints: settings.runtime.checkpoints,
  };
}

function splitList(text: string): string[] {
  return text
    .split(/[,\n]/)
    .map((item) => item.trim())
    .filter((item) => item !== "");
}

function toBody(form: Form): SettingsBody {
  const limits: NonNullable<SettingsBody["limits"]> = {};
  for (const { name } of LIMITS) {
    const raw = form.limits[name].trim();
    if (raw !== "") limits[name] = Number(raw);
  }
  return {
    limits,
    resolver: {
      roots: splitList(form.roots),
      extensions: splitList(form.extensions),
      allow_absolute_repo_imports: form.allowAbsolute,
    },
    runtime: { esm: form.esm, strict: form.strict, console: form.console, checkpoints: form.checkpoints },
  };
}

export function SettingsEditor({ templateId, settings }: { templateId: string; settings: Settings }) {
  const [form, setForm] = useState<Form>(() => toForm(settings));
  const [savedAt, setSavedAt] = useState<number | null>(null);
  const checkpointsHint = useId();
  const queryClient = useQueryClient();
  const original = JSON.stringify(toForm(settings));
  const dirty = JSON.stringify(form) !== original;
  const save = useMutation({
    mutationFn: (body: SettingsBody) =>
      unwrap(api.PUT("/templates/{id}/settings", { params: { path: { id: templateId } }, body })),
    onSuccess: (saved) => {
      setForm(toForm(saved));
      setSavedAt(Date.now());
      void queryClient.invalidateQueries({ queryKey: keys.template(templateId) });
    },
  });
  const set = (patch: Partial<Form>) => {
    setSavedAt(null);
    setForm((current) => ({ ...current, ...patch }));
  };
  return (
    <Card
      title="Settings"
      description="Enforced while code runs. Saving replaces all settings; an empty limit takes its default."
      testId="settings-card"
    >
      <form
        className="form settings-form"
        noValidate
        onSubmit={(event) => {
          event.preventDefault();
          save.mutate(toBody(form));
        }}
      >
        <fieldset>
          <legend>Limits</legend>
          <div className="grid-fields">
            {LIMITS.map(({ name, label, unit, help }) => (
              <label className="field" key={name} title={help}>
                <span>
                  {label} <span className="muted">({unit})</span>
                </span>
                <input
                  name={name}
                  type="number"
                  min={1}
                  step={1}
                  inputMode="numeric"
                  value={form.limits[name]}
                  placeholder={String(DEFAULTS.limits[name])}
                  onChange={(event) => set({ limits: { ...form.limits, [name]: event.target.value } })}
                />
              </label>
            ))}
          </div>
        </fieldset>
        <fieldset>
          <legend>Resolver</legend>
          <div className="grid-fields two">
            <label className="field">
              <span>Roots</span>
              <input
                name="roots"
                value={form.roots}
                placeholder="none (comma-separated)"
                onChange={(event) => set({ roots: event.target.value })}
              />
            </label>
            <label className="field">
              <span>Extensions</span>
              <input
                name="extensions"
                value={form.extensions}
                placeholder=".js, .mjs"
                onChange={(event) => set({ extensions: event.target.value })}
              />
            </label>
          </div>
          <label className="check">
            <input
              type="checkbox"
              name="allow_absolute_repo_imports"
              checked={form.allowAbsolute}
              onChange={(event) => set({ allowAbsolute: event.target.checked })}
            />
            Allow absolute repository imports
          </label>
        </fieldset>
        <fieldset>
          <legend>Runtime</legend>
          <div className="checks-row">
            <label className="check">
              <input
                type="checkbox"
                name="esm"
                checked={form.esm}
                onChange={(event) => set({ esm: event.target.checked })}
              />
              ES modules
            </label>
            <label className="check">
              <input
                type="checkbox"
                name="strict"
                checked={form.strict}
                onChange={(event) => set({ strict: event.target.checked })}
              />
              Strict mode
            </label>
            <label className="check">
              <input
                type="checkbox"
                name="console"
                checked={form.console}
                onChange={(event) => set({ console: event.target.checked })}
              />
              Console capture
            </label>
          </div>
          <label className="check">
            <input
              type="checkbox"
              name="checkpoints"
              aria-describedby={checkpointsHint}
              checked={form.checkpoints}
              onChange={(event) => set({ checkpoints: event.target.checked })}
            />
            Checkpoints
          </label>
          <small className="check-hint" id={checkpointsHint}>
            Keep a copy of the session before each execution, so that Cancel, a limit or a crash rolls it back instead
            of losing it.
          </small>
        </fieldset>
        {save.error ? <ErrorPanel error={save.error} compact /> : null}
        <div className="form-actions">
          {savedAt !== null && !dirty ? (
            <span className="saved" role="status">
              Saved ✓
            </span>
          ) : null}
          <button type="button" className="button" onClick={() => set(toForm(DEFAULTS))}>
            Restore defaults
          </button>
          <button
            type="button"
            className="button"
            disabled={!dirty}
            onClick={() => {
              save.reset();
              setForm(toForm(settings));
            }}
          >
            Discard changes
          </button>
          <button type="submit" className="button primary" disabled={!dirty || save.isPending}>
            {save.isPending ? "Saving…" : "Save settings"}
          </button>
        </div>
      </form>
    </Card>
  );
}
