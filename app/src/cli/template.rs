//! `vm-system template …`: templates and everything configured on them
//! (settings, startup files, capabilities, modules, libraries), and the
//! catalogs of what can be configured.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use serde_json::Value;
use vm_http::dto::{
    CapabilityView, CatalogLibraryView, CatalogModuleView, CreateCapabilityBody, CreateStartupFileBody,
    CreateTemplateBody, LimitsBody, ResolverBody, RuntimeSwitchesBody, SettingsBody, SettingsView, StartupFileView,
    TemplateDetailView, TemplateView,
};

use super::output::{block, list, time, Ctx, Outcome, Table};

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Create a template; settings left out take their defaults.
    Create(CreateArgs),
    /// List templates, newest first.
    List,
    /// Show a template: settings, modules, libraries, startup files, capabilities.
    Get {
        /// The template's id.
        #[arg(value_name = "TEMPLATE", value_parser = super::id)]
        template: String,
    },
    /// Delete a template and everything configured on it (its sessions are kept).
    Delete {
        /// The template's id.
        #[arg(value_name = "TEMPLATE", value_parser = super::id)]
        template: String,
    },
    /// Add a startup file, run in each new session before it is ready.
    AddStartup {
        /// The template's id.
        #[arg(value_name = "TEMPLATE", value_parser = super::id)]
        template: String,
        /// Path relative to the session's worktree.
        path: String,
        /// Files run in ascending order (default 0).
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        order_index: Option<i64>,
        /// How the file runs; `eval` is the only supported mode.
        #[arg(long, value_name = "MODE")]
        mode: Option<String>,
    },
    /// List startup files in the order they run.
    ListStartup {
        /// The template's id.
        #[arg(value_name = "TEMPLATE", value_parser = super::id)]
        template: String,
    },
    /// Add a capability (descriptive metadata read at session setup).
    AddCapability {
        /// The template's id.
        #[arg(value_name = "TEMPLATE", value_parser = super::id)]
        template: String,
        /// What it governs.
        #[arg(value_parser = ["module", "global", "fs", "net", "env"])]
        kind: String,
        name: String,
        /// Record it as disabled (default: enabled).
        #[arg(long)]
        disabled: bool,
        /// A JSON object, e.g. '{"allow":["git"]}'; checked before anything is sent.
        #[arg(long, value_name = "JSON", value_parser = super::json_object)]
        config: Option<BTreeMap<String, Value>>,
    },
    /// List capabilities in the order they were added.
    ListCapabilities {
        /// The template's id.
        #[arg(value_name = "TEMPLATE", value_parser = super::id)]
        template: String,
    },
    /// Enable a native module (see list-available-modules).
    AddModule {
        /// The template's id.
        #[arg(value_name = "TEMPLATE", value_parser = super::id)]
        template: String,
        /// e.g. fs, exec, database.
        name: String,
    },
    /// Disable a native module; prints the modules left.
    RemoveModule {
        /// The template's id.
        #[arg(value_name = "TEMPLATE", value_parser = super::id)]
        template: String,
        name: String,
    },
    /// List the native modules a template enables.
    ListModules {
        /// The template's id.
        #[arg(value_name = "TEMPLATE", value_parser = super::id)]
        template: String,
    },
    /// Append a library to the load order (see list-available-libraries).
    AddLibrary {
        /// The template's id.
        #[arg(value_name = "TEMPLATE", value_parser = super::id)]
        template: String,
        /// `<id>-<version>`, e.g. lodash-4.17.21.
        name: String,
    },
    /// Remove a library; prints the libraries left.
    RemoveLibrary {
        /// The template's id.
        #[arg(value_name = "TEMPLATE", value_parser = super::id)]
        template: String,
        name: String,
    },
    /// List a template's libraries in load order.
    ListLibraries {
        /// The template's id.
        #[arg(value_name = "TEMPLATE", value_parser = super::id)]
        template: String,
    },
    /// Native modules a template can enable.
    ListAvailableModules,
    /// Libraries a template can load, and whether each is in the daemon's cache.
    ListAvailableLibraries,
    /// Show a template's settings (limits, resolver, runtime switches).
    GetSettings {
        /// The template's id.
        #[arg(value_name = "TEMPLATE", value_parser = super::id)]
        template: String,
    },
    /// Change settings: only what you name changes, the rest is kept.
    SetSettings {
        /// The template's id.
        #[arg(value_name = "TEMPLATE", value_parser = super::id)]
        template: String,
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A name for people; need not be unique.
    name: String,
    /// JavaScript engine (default boa).
    #[arg(long)]
    engine: Option<String>,
    /// Native module to enable; repeat for more.
    #[arg(long = "module", value_name = "NAME")]
    modules: Vec<String>,
    /// Library to load, in order; repeat for more.
    #[arg(long = "library", value_name = "NAME")]
    libraries: Vec<String>,
    #[command(flatten)]
    settings: SettingsArgs,
}

/// Settings flags, shared by `create` and `set-settings`.
#[derive(Debug, Clone, Default, Args)]
pub struct SettingsArgs {
    /// Start from this settings object (the API's JSON, e.g. '{"limits":{"wall_ms":2000}}');
    /// fields it leaves out take their defaults, and the flags below apply on top.
    #[arg(long, value_name = "JSON", value_parser = parse_settings)]
    settings: Option<SettingsBody>,
    /// CPU time per execution.
    #[arg(long, value_name = "MS")]
    cpu_ms: Option<u64>,
    /// Wall-clock time per execution.
    #[arg(long, value_name = "MS")]
    wall_ms: Option<u64>,
    /// Memory of a session's runtime.
    #[arg(long, value_name = "MB")]
    mem_mb: Option<u64>,
    /// Events one execution may record.
    #[arg(long, value_name = "N")]
    max_events: Option<u64>,
    /// Output one execution may produce.
    #[arg(long, value_name = "KB")]
    max_output_kb: Option<u64>,
    /// Resolver roots, comma-separated ('' for none).
    #[arg(long, value_name = "DIR,…", value_delimiter = ',')]
    roots: Option<Vec<String>>,
    /// Resolver extensions, comma-separated.
    #[arg(long, value_name = "EXT,…", value_delimiter = ',')]
    extensions: Option<Vec<String>>,
    #[arg(long, value_name = "BOOL")]
    allow_absolute_repo_imports: Option<bool>,
    /// ES module semantics.
    #[arg(long, value_name = "BOOL")]
    esm: Option<bool>,
    /// Strict mode.
    #[arg(long, value_name = "BOOL")]
    strict: Option<bool>,
    /// Capture console output.
    #[arg(long, value_name = "BOOL")]
    console: Option<bool>,
    /// Keep a checkpoint before each execution, so that a cancel, a hard limit or a crash
    /// rolls the session back instead of losing it (default true).
    #[arg(long, value_name = "BOOL")]
    checkpoints: Option<bool>,
}

impl SettingsArgs {
    fn any_flag(&self) -> bool {
        let limits = [self.cpu_ms, self.wall_ms, self.mem_mb, self.max_events, self.max_output_kb];
        let switches = [self.allow_absolute_repo_imports, self.esm, self.strict, self.console, self.checkpoints];
        limits.iter().any(Option::is_some)
            || switches.iter().any(Option::is_some)
            || self.roots.is_some()
            || self.extensions.is_some()
    }

    /// `base` with every flag given written over it.
    fn apply(&self, mut body: SettingsBody) -> SettingsBody {
        fn limits(body: &mut SettingsBody) -> &mut LimitsBody {
            body.limits.get_or_insert_with(Default::default)
        }
        fn resolver(body: &mut SettingsBody) -> &mut ResolverBody {
            body.resolver.get_or_insert_with(Default::default)
        }
        fn runtime(body: &mut SettingsBody) -> &mut RuntimeSwitchesBody {
            body.runtime.get_or_insert_with(Default::default)
        }
        let set = |value: Option<u64>, slot: &mut Option<u64>| {
            if value.is_some() {
                *slot = value;
            }
        };
        set(self.cpu_ms, &mut limits(&mut body).cpu_ms);
        set(self.wall_ms, &mut limits(&mut body).wall_ms);
        set(self.mem_mb, &mut limits(&mut body).mem_mb);
        set(self.max_events, &mut limits(&mut body).max_events);
        set(self.max_output_kb, &mut limits(&mut body).max_output_kb);
        let names = |items: &Vec<String>| items.iter().filter(|s| !s.is_empty()).cloned().collect::<Vec<_>>();
        if let Some(roots) = &self.roots {
            resolver(&mut body).roots = Some(names(roots));
        }
        if let Some(extensions) = &self.extensions {
            resolver(&mut body).extensions = Some(names(extensions));
        }
        if let Some(value) = self.allow_absolute_repo_imports {
            resolver(&mut body).allow_absolute_repo_imports = Some(value);
        }
        if let Some(value) = self.esm {
            runtime(&mut body).esm = Some(value);
        }
        if let Some(value) = self.strict {
            runtime(&mut body).strict = Some(value);
        }
        if let Some(value) = self.console {
            runtime(&mut body).console = Some(value);
        }
        if let Some(value) = self.checkpoints {
            runtime(&mut body).checkpoints = Some(value);
        }
        body
    }
}

fn parse_settings(raw: &str) -> Result<SettingsBody, String> {
    serde_json::from_str(raw).map_err(|err| format!("not a settings object: {err}"))
}

/// The settings a template has now, as a body that would store them again.
fn body_of(view: &SettingsView) -> SettingsBody {
    let (l, r, s) = (&view.limits, &view.resolver, &view.runtime);
    SettingsBody {
        limits: Some(LimitsBody {
            cpu_ms: Some(l.cpu_ms),
            wall_ms: Some(l.wall_ms),
            mem_mb: Some(l.mem_mb),
            max_events: Some(l.max_events),
            max_output_kb: Some(l.max_output_kb),
        }),
        resolver: Some(ResolverBody {
            roots: Some(r.roots.clone()),
            extensions: Some(r.extensions.clone()),
            allow_absolute_repo_imports: Some(r.allow_absolute_repo_imports),
        }),
        runtime: Some(RuntimeSwitchesBody {
            esm: Some(s.esm),
            strict: Some(s.strict),
            console: Some(s.console),
            checkpoints: Some(s.checkpoints),
        }),
    }
}

pub async fn run(ctx: &Ctx, command: TemplateCommand) -> Outcome {
    let client = &ctx.client;
    use TemplateCommand as C;
    match command {
        C::Create(args) => {
            let settings = if args.settings.settings.is_some() || args.settings.any_flag() {
                Some(args.settings.apply(args.settings.settings.clone().unwrap_or_default()))
            } else {
                None
            };
            let body = CreateTemplateBody {
                name: args.name,
                engine: args.engine,
                settings,
                exposed_modules: (!args.modules.is_empty()).then_some(args.modules),
                libraries: (!args.libraries.is_empty()).then_some(args.libraries),
            };
            let reply = client.create_template(&body).await?;
            ctx.show(&reply.raw, || detail_text(&reply.value), || vec![reply.value.template.id.to_string()])
        }
        C::List => {
            let reply = client.templates().await?;
            ctx.show(
                &reply.raw,
                || templates_table(&reply.value),
                || reply.value.iter().map(|t| t.id.to_string()).collect(),
            )
        }
        C::Get { template } => {
            let reply = client.template(&template).await?;
            ctx.show(&reply.raw, || detail_text(&reply.value), || vec![reply.value.template.id.to_string()])
        }
        C::Delete { template } => {
            let reply = client.delete_template(&template).await?;
            ctx.show(&reply.raw, || format!("deleted template {template}\n"), || vec![template.clone()])
        }
        C::AddStartup { template, path, order_index, mode } => {
            let reply = client.add_startup_file(&template, &CreateStartupFileBody { path, order_index, mode }).await?;
            ctx.show(&reply.raw, || startup_file_text(&reply.value), || vec![reply.value.id.to_string()])
        }
        C::ListStartup { template } => {
            let reply = client.startup_files(&template).await?;
            ctx.show(
                &reply.raw,
                || startup_files_table(&reply.value),
                || reply.value.iter().map(|f| f.id.to_string()).collect(),
            )
        }
        C::AddCapability { template, kind, name, disabled, config } => {
            let kind = serde_json::from_value(Value::String(kind)).expect("clap allows only the API's kinds");
            let body = CreateCapabilityBody { kind, name, enabled: Some(!disabled), config };
            let reply = client.add_capability(&template, &body).await?;
            ctx.show(&reply.raw, || capability_text(&reply.value), || vec![reply.value.id.to_string()])
        }
        C::ListCapabilities { template } => {
            let reply = client.capabilities(&template).await?;
            ctx.show(
                &reply.raw,
                || capabilities_table(&reply.value),
                || reply.value.iter().map(|c| c.id.to_string()).collect(),
            )
        }
        C::AddModule { template, name } => names(ctx, client.add_module(&template, &name).await?),
        C::RemoveModule { template, name } => names(ctx, client.remove_module(&template, &name).await?),
        C::ListModules { template } => names(ctx, client.modules(&template).await?),
        C::AddLibrary { template, name } => names(ctx, client.add_library(&template, &name).await?),
        C::RemoveLibrary { template, name } => names(ctx, client.remove_library(&template, &name).await?),
        C::ListLibraries { template } => names(ctx, client.libraries(&template).await?),
        C::ListAvailableModules => {
            let reply = client.catalog_modules().await?;
            ctx.show(
                &reply.raw,
                || catalog_modules_table(&reply.value),
                || reply.value.iter().map(|m| m.name.clone()).collect(),
            )
        }
        C::ListAvailableLibraries => {
            let reply = client.catalog_libraries().await?;
            ctx.show(
                &reply.raw,
                || catalog_libraries_table(&reply.value),
                || reply.value.iter().map(|l| l.name.clone()).collect(),
            )
        }
        C::GetSettings { template } => {
            let reply = client.settings(&template).await?;
            ctx.show(&reply.raw, || block(&settings_pairs(&reply.value)), Vec::new)
        }
        C::SetSettings { template, settings } => {
            if settings.settings.is_none() && !settings.any_flag() {
                return Err(super::output::Failure::Usage(
                    "set-settings needs at least one setting flag or --settings JSON (see --help)".into(),
                ));
            }
            let base = match &settings.settings {
                Some(body) => body.clone(),
                None => body_of(&client.settings(&template).await?.value),
            };
            let reply = client.replace_settings(&template, &settings.apply(base)).await?;
            ctx.show(&reply.raw, || block(&settings_pairs(&reply.value)), Vec::new)
        }
    }
}

fn names(ctx: &Ctx, reply: crate::client::Reply<Vec<String>>) -> Outcome {
    ctx.show(
        &reply.raw,
        || {
            let mut table = Table::new(&["NAME"]);
            reply.value.iter().for_each(|name| table.row(vec![name.clone()]));
            table.render()
        },
        || reply.value.clone(),
    )
}

// ---------------------------------------------------------------- text

fn templates_table(templates: &[TemplateView]) -> String {
    let mut table = Table::new(&["ID", "NAME", "ENGINE", "MODULES", "LIBRARIES", "CREATED"]);
    for t in templates {
        table.row(vec![
            t.id.to_string(),
            t.name.clone(),
            t.engine.clone(),
            list(&t.exposed_modules),
            list(&t.libraries),
            time(&t.created_at),
        ]);
    }
    table.render()
}

fn detail_text(detail: &TemplateDetailView) -> String {
    let t = &detail.template;
    let startup: Vec<String> = detail.startup_files.iter().map(|f| f.path.clone()).collect();
    let capabilities: Vec<String> = detail
        .capabilities
        .iter()
        .map(|c| format!("{}/{}{}", c.kind.as_str(), c.name, if c.enabled { "" } else { " (disabled)" }))
        .collect();
    let mut pairs = vec![
        ("id", t.id.to_string()),
        ("name", t.name.clone()),
        ("engine", t.engine.clone()),
        ("active", t.is_active.to_string()),
        ("modules", list(&t.exposed_modules)),
        ("libraries", list(&t.libraries)),
        ("startup files", list(&startup)),
        ("capabilities", list(&capabilities)),
    ];
    pairs.extend(settings_pairs(&detail.settings));
    pairs.push(("created", time(&t.created_at)));
    pairs.push(("updated", time(&t.updated_at)));
    block(&pairs)
}

fn settings_pairs(s: &SettingsView) -> Vec<(&'static str, String)> {
    let (l, r, rt) = (&s.limits, &s.resolver, &s.runtime);
    vec![
        (
            "limits",
            format!(
                "cpu_ms={} wall_ms={} mem_mb={} max_events={} max_output_kb={}",
                l.cpu_ms, l.wall_ms, l.mem_mb, l.max_events, l.max_output_kb
            ),
        ),
        (
            "resolver",
            format!(
                "roots={} extensions={} allow_absolute_repo_imports={}",
                comma(&r.roots),
                comma(&r.extensions),
                r.allow_absolute_repo_imports
            ),
        ),
        (
            "runtime",
            format!("esm={} strict={} console={} checkpoints={}", rt.esm, rt.strict, rt.console, rt.checkpoints),
        ),
    ]
}

fn comma(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
}

fn startup_file_text(f: &StartupFileView) -> String {
    block(&[
        ("id", f.id.to_string()),
        ("template", f.template_id.to_string()),
        ("path", f.path.clone()),
        ("order", f.order_index.to_string()),
        ("mode", f.mode.clone()),
        ("created", time(&f.created_at)),
    ])
}

fn startup_files_table(files: &[StartupFileView]) -> String {
    let mut table = Table::new(&["ORDER", "PATH", "MODE", "ID"]);
    for f in files {
        table.row(vec![f.order_index.to_string(), f.path.clone(), f.mode.clone(), f.id.to_string()]);
    }
    table.render()
}

fn config_text(config: &BTreeMap<String, Value>) -> String {
    serde_json::to_string(config).expect("a JSON object always serialises")
}

fn capability_text(c: &CapabilityView) -> String {
    block(&[
        ("id", c.id.to_string()),
        ("template", c.template_id.to_string()),
        ("kind", c.kind.as_str().to_owned()),
        ("name", c.name.clone()),
        ("enabled", c.enabled.to_string()),
        ("config", config_text(&c.config)),
        ("created", time(&c.created_at)),
    ])
}

fn capabilities_table(capabilities: &[CapabilityView]) -> String {
    let mut table = Table::new(&["ID", "KIND", "NAME", "ENABLED", "CONFIG"]);
    for c in capabilities {
        table.row(vec![
            c.id.to_string(),
            c.kind.as_str().to_owned(),
            c.name.clone(),
            c.enabled.to_string(),
            config_text(&c.config),
        ]);
    }
    table.render()
}

fn catalog_modules_table(modules: &[CatalogModuleView]) -> String {
    let mut table = Table::new(&["NAME", "DESCRIPTION"]);
    for m in modules {
        table.row(vec![m.name.clone(), m.description.clone()]);
    }
    table.render()
}

fn catalog_libraries_table(libraries: &[CatalogLibraryView]) -> String {
    let mut table = Table::new(&["NAME", "GLOBAL", "CACHED", "DESCRIPTION"]);
    for l in libraries {
        table.row(vec![
            l.name.clone(),
            l.global.clone(),
            if l.cached { "yes" } else { "no" }.into(),
            l.description.clone(),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_flags_overwrite_only_what_they_name() {
        let current = SettingsBody {
            limits: Some(LimitsBody { cpu_ms: Some(1), wall_ms: Some(2), ..Default::default() }),
            ..Default::default()
        };
        let flags =
            SettingsArgs { wall_ms: Some(99), esm: Some(true), roots: Some(vec![String::new()]), ..Default::default() };
        let applied = flags.apply(current);
        let limits = applied.limits.unwrap();
        assert_eq!((limits.cpu_ms, limits.wall_ms), (Some(1), Some(99)));
        assert_eq!(applied.runtime.unwrap().esm, Some(true));
        assert_eq!(applied.resolver.unwrap().roots, Some(vec![]));
    }

    #[test]
    fn a_settings_object_with_an_unknown_field_is_refused_before_sending() {
        assert!(parse_settings(r#"{"limits":{"wall_ms":5}}"#).is_ok());
        let err = parse_settings(r#"{"limits":{"wall":5}}"#).unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }
}
