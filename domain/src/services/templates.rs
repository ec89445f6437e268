//! Template rules: engines, settings defaults and validation, the module and
//! library lists, capability configs (`net`/`fetch`'s allow list). Names,
//! paths and modes arrive parsed, in the `…Spec` types of `crate::template`.

use std::sync::Arc;

use crate::catalog::{LibraryInfo, LibraryRef, ModuleInfo, ModuleName, LIBRARIES, MODULES};
use crate::ids::{CapabilityId, StartupFileId, TemplateId};
use crate::net::{configures_fetch, FetchConfig};
use crate::ports::{Clock, LibraryCache, TemplateStore};
use crate::template::{
    Capability, CapabilitySpec, Settings, StartupFile, StartupFileSpec, Template, TemplateDetail, TemplateSpec,
    DEFAULT_ENGINE,
};
use crate::DomainError;

/// A catalog library and whether its file is in the local cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LibraryEntry {
    pub info: &'static LibraryInfo,
    pub cached: bool,
}

pub struct TemplateService {
    store: Arc<dyn TemplateStore>,
    cache: Arc<dyn LibraryCache>,
    clock: Arc<dyn Clock>,
    engines: Vec<String>,
}

impl TemplateService {
    /// `engines` are the engine names of the registered runtimes.
    pub fn new(
        store: Arc<dyn TemplateStore>,
        cache: Arc<dyn LibraryCache>,
        clock: Arc<dyn Clock>,
        engines: Vec<String>,
    ) -> Self {
        Self { store, cache, clock, engines }
    }

    /// Creates a template: checks the engine against the registered ones
    /// (`ENGINE_UNSUPPORTED`) and the settings, sorts the modules and drops
    /// repeated modules and libraries (libraries keep their order).
    pub async fn create(&self, spec: TemplateSpec) -> Result<TemplateDetail, DomainError> {
        let engine = spec.engine.as_deref().map(str::trim).unwrap_or(DEFAULT_ENGINE).to_owned();
        if !self.engines.contains(&engine) {
            return Err(DomainError::EngineUnsupported { engine, supported: self.engines.clone() });
        }
        let settings = spec.settings.unwrap_or_default();
        settings.validate()?;
        let mut exposed_modules = spec.modules;
        exposed_modules.sort();
        exposed_modules.dedup();
        let mut libraries: Vec<LibraryRef> = Vec::new();
        for library in spec.libraries {
            if !libraries.contains(&library) {
                libraries.push(library);
            }
        }
        let now = self.clock.now();
        let template = Template {
            id: TemplateId::new(),
            name: spec.name,
            engine,
            is_active: true,
            exposed_modules,
            libraries,
            created_at: now,
            updated_at: now,
        };
        self.store.insert(&template, &settings).await?;
        Ok(TemplateDetail { template, settings, capabilities: Vec::new(), startup_files: Vec::new() })
    }

    pub async fn list(&self) -> Result<Vec<Template>, DomainError> {
        self.store.list().await
    }

    pub async fn get(&self, id: TemplateId) -> Result<Template, DomainError> {
        self.store.get(id).await?.ok_or_else(|| not_found(id))
    }

    pub async fn detail(&self, id: TemplateId) -> Result<TemplateDetail, DomainError> {
        let template = self.get(id).await?;
        let settings = self.settings(id).await?;
        let capabilities = self.store.capabilities(id).await?;
        let startup_files = self.store.startup_files(id).await?;
        Ok(TemplateDetail { template, settings, capabilities, startup_files })
    }

    /// Deletes the template and everything configured on it. Sessions made
    /// from it are not touched.
    pub async fn delete(&self, id: TemplateId) -> Result<(), DomainError> {
        if self.store.delete(id).await? {
            Ok(())
        } else {
            Err(not_found(id))
        }
    }

    pub async fn settings(&self, id: TemplateId) -> Result<Settings, DomainError> {
        self.store.settings(id).await?.ok_or_else(|| not_found(id))
    }

    /// Replaces all settings; fields the caller left out take their defaults.
    pub async fn replace_settings(&self, id: TemplateId, settings: Settings) -> Result<Settings, DomainError> {
        settings.validate()?;
        if self.store.replace_settings(id, &settings, self.clock.now()).await? {
            Ok(settings)
        } else {
            Err(not_found(id))
        }
    }

    /// Adds a capability. A `fetch` config that breaks its rules is a
    /// `INVALID_VALUE` naming the field (`config.allow[1]`).
    pub async fn add_capability(&self, id: TemplateId, spec: CapabilitySpec) -> Result<Capability, DomainError> {
        // Checked enabled or not: a disabled capability's config is refused
        // now rather than when someone turns it on.
        if configures_fetch(spec.kind, spec.name.as_str()) {
            FetchConfig::parse(&spec.config)?;
        }
        self.get(id).await?;
        let capability = Capability {
            id: CapabilityId::new(),
            template_id: id,
            kind: spec.kind,
            name: spec.name.as_str().to_owned(),
            enabled: spec.enabled,
            config: spec.config,
            created_at: self.clock.now(),
        };
        self.store.add_capability(&capability).await?;
        Ok(capability)
    }

    pub async fn capabilities(&self, id: TemplateId) -> Result<Vec<Capability>, DomainError> {
        self.get(id).await?;
        self.store.capabilities(id).await
    }

    pub async fn add_startup_file(&self, id: TemplateId, spec: StartupFileSpec) -> Result<StartupFile, DomainError> {
        self.get(id).await?;
        let file = StartupFile {
            id: StartupFileId::new(),
            template_id: id,
            path: spec.path,
            order_index: spec.order_index,
            mode: spec.mode,
            created_at: self.clock.now(),
        };
        self.store.add_startup_file(&file).await?;
        Ok(file)
    }

    pub async fn startup_files(&self, id: TemplateId) -> Result<Vec<StartupFile>, DomainError> {
        self.get(id).await?;
        self.store.startup_files(id).await
    }

    /// Adds a catalog module; adding one twice changes nothing.
    pub async fn add_module(&self, id: TemplateId, name: &str) -> Result<Vec<ModuleName>, DomainError> {
        let name = ModuleName::parse(name)?;
        self.get(id).await?;
        self.store.add_module(id, &name, self.clock.now()).await?;
        self.modules(id).await
    }

    /// Removes a module; removing one that is not configured changes nothing.
    pub async fn remove_module(&self, id: TemplateId, name: &str) -> Result<Vec<ModuleName>, DomainError> {
        let name = ModuleName::parse(name)?;
        self.get(id).await?;
        self.store.remove_module(id, &name, self.clock.now()).await?;
        self.modules(id).await
    }

    pub async fn modules(&self, id: TemplateId) -> Result<Vec<ModuleName>, DomainError> {
        Ok(self.get(id).await?.exposed_modules)
    }

    /// Appends a catalog library to the load order; adding one twice changes nothing.
    pub async fn add_library(&self, id: TemplateId, name: &str) -> Result<Vec<LibraryRef>, DomainError> {
        let library = LibraryRef::parse(name)?;
        self.get(id).await?;
        self.store.add_library(id, &library, self.clock.now()).await?;
        self.libraries(id).await
    }

    pub async fn remove_library(&self, id: TemplateId, name: &str) -> Result<Vec<LibraryRef>, DomainError> {
        let library = LibraryRef::parse(name)?;
        self.get(id).await?;
        self.store.remove_library(id, &library, self.clock.now()).await?;
        self.libraries(id).await
    }

    pub async fn libraries(&self, id: TemplateId) -> Result<Vec<LibraryRef>, DomainError> {
        Ok(self.get(id).await?.libraries)
    }

    pub fn module_catalog(&self) -> &'static [ModuleInfo] {
        &MODULES
    }

    pub fn library_catalog(&self) -> Vec<LibraryEntry> {
        LIBRARIES
            .iter()
            .map(|info| LibraryEntry {
                info,
                cached: self.cache.is_cached(&LibraryRef::parse(&info.name()).expect("catalog names parse")),
            })
            .collect()
    }

    /// Engines a template may name.
    pub fn engines(&self) -> &[String] {
        &self.engines
    }
}

fn not_found(id: TemplateId) -> DomainError {
    DomainError::TemplateNotFound { id: id.to_string() }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use mockall::predicate::always;
    use serde_json::Value;

    use super::*;
    use crate::ports::runtime::MockLibraryCache;
    use crate::ports::store::MockTemplateStore;
    use crate::services::fixtures::{a_template, fixed_clock};
    use crate::template::{CapabilityKind, TemplateName};

    fn service(store: MockTemplateStore) -> TemplateService {
        let mut cache = MockLibraryCache::new();
        cache.expect_is_cached().returning(|lib| lib.as_str().starts_with("lodash"));
        TemplateService::new(Arc::new(store), Arc::new(cache), fixed_clock(), vec!["boa".into()])
    }

    fn a_spec(name: &str) -> TemplateSpec {
        TemplateSpec {
            name: TemplateName::parse(name).unwrap(),
            engine: None,
            settings: None,
            modules: vec![],
            libraries: vec![],
        }
    }

    #[test]
    fn a_new_template_gets_the_default_engine_and_settings() {
        let mut store = MockTemplateStore::new();
        store.expect_insert().times(1).returning(|_, _| Ok(()));
        let detail = block_on(service(store).create(a_spec("demo"))).unwrap();
        assert_eq!(detail.template.name.as_str(), "demo");
        assert_eq!(detail.template.engine, "boa");
        assert!(detail.template.is_active);
        assert_eq!(detail.settings, Settings::default());
    }

    #[test]
    fn a_new_template_sorts_its_modules_and_drops_repeats_keeping_the_library_order() {
        let mut store = MockTemplateStore::new();
        store.expect_insert().times(1).returning(|_, _| Ok(()));
        let modules = ["fs", "exec", "fs"].map(|m| ModuleName::parse(m).unwrap()).to_vec();
        let libraries =
            ["moment-2.29.4", "lodash-4.17.21", "moment-2.29.4"].map(|l| LibraryRef::parse(l).unwrap()).to_vec();
        let detail = block_on(service(store).create(TemplateSpec { modules, libraries, ..a_spec("demo") })).unwrap();
        let modules: Vec<_> = detail.template.exposed_modules.iter().map(ModuleName::as_str).collect();
        assert_eq!(modules, ["exec", "fs"]);
        let libraries: Vec<_> = detail.template.libraries.iter().map(LibraryRef::as_str).collect();
        assert_eq!(libraries, ["moment-2.29.4", "lodash-4.17.21"]);
    }

    #[test]
    fn an_unknown_engine_is_refused_with_the_supported_list() {
        let mut store = MockTemplateStore::new();
        store.expect_insert().never();
        let err =
            block_on(service(store).create(TemplateSpec { engine: Some("v8".into()), ..a_spec("x") })).unwrap_err();
        assert_eq!(err.code(), "ENGINE_UNSUPPORTED");
        assert_eq!(err.details()["supported"], serde_json::json!(["boa"]));
    }

    #[test]
    fn a_built_in_module_is_refused_before_the_store_is_touched() {
        let mut store = MockTemplateStore::new();
        store.expect_get().never();
        store.expect_add_module().never();
        let err = block_on(service(store).add_module(TemplateId::new(), "json")).unwrap_err();
        assert_eq!(err.code(), "MODULE_NOT_ALLOWED");
    }

    #[test]
    fn modules_of_a_missing_template_are_not_found() {
        let mut store = MockTemplateStore::new();
        store.expect_get().returning(|_| Ok(None));
        store.expect_add_module().never();
        let err = block_on(service(store).add_module(TemplateId::new(), "fs")).unwrap_err();
        assert_eq!(err.code(), "TEMPLATE_NOT_FOUND");
    }

    #[test]
    fn a_library_outside_the_catalog_is_not_available() {
        let mut store = MockTemplateStore::new();
        store.expect_add_library().never();
        let err = block_on(service(store).add_library(TemplateId::new(), "jquery-3.7.1")).unwrap_err();
        assert_eq!(err.code(), "LIBRARY_NOT_AVAILABLE");
    }

    #[test]
    fn a_startup_file_of_a_missing_template_is_not_found_and_not_stored() {
        let mut store = MockTemplateStore::new();
        store.expect_get().returning(|_| Ok(None));
        store.expect_add_startup_file().never();
        let spec = StartupFileSpec::parse("init.js", None, None).unwrap();
        let err = block_on(service(store).add_startup_file(TemplateId::new(), spec)).unwrap_err();
        assert_eq!(err.code(), "TEMPLATE_NOT_FOUND");
    }

    #[test]
    fn invalid_settings_are_refused_and_not_stored() {
        let mut store = MockTemplateStore::new();
        store.expect_replace_settings().never();
        let mut settings = Settings::default();
        settings.limits.wall_ms = 0;
        let err = block_on(service(store).replace_settings(TemplateId::new(), settings)).unwrap_err();
        assert_eq!(err.code(), "VALIDATION_ERROR");
    }

    #[test]
    fn replacing_settings_of_a_missing_template_is_not_found() {
        let mut store = MockTemplateStore::new();
        store.expect_replace_settings().with(always(), always(), always()).returning(|_, _, _| Ok(false));
        let err = block_on(service(store).replace_settings(TemplateId::new(), Settings::default())).unwrap_err();
        assert_eq!(err.code(), "TEMPLATE_NOT_FOUND");
    }

    #[test]
    fn the_library_catalog_says_which_files_are_cached() {
        let entries = service(MockTemplateStore::new()).library_catalog();
        assert_eq!(entries.len(), 6);
        for entry in entries {
            assert_eq!(entry.cached, entry.info.id == "lodash", "{}", entry.info.id);
        }
    }

    fn fetch_capability(config: Value, enabled: Option<bool>) -> CapabilitySpec {
        let config = config.as_object().expect("a config object").clone();
        CapabilitySpec::parse(CapabilityKind::Net, "fetch", enabled, Some(config)).unwrap()
    }

    #[test]
    fn a_fetch_capability_with_a_bad_config_is_refused_naming_the_field_and_not_stored() {
        let mut store = MockTemplateStore::new();
        store.expect_add_capability().never();
        let svc = service(store);
        let cases = [
            ("a malformed entry", serde_json::json!({"allow": ["api.example.com", "bad host!"]}), "config.allow[1]"),
            ("no allow list", serde_json::json!({"max_fetch_kb": 1}), "config.allow"),
            ("max_fetch_kb zero", serde_json::json!({"allow": [], "max_fetch_kb": 0}), "config.max_fetch_kb"),
            ("an unknown key", serde_json::json!({"allow": [], "hosts": []}), "config.hosts"),
        ];
        for (label, config, field) in cases {
            for enabled in [None, Some(false)] {
                let err = block_on(svc.add_capability(TemplateId::new(), fetch_capability(config.clone(), enabled)))
                    .unwrap_err();
                assert_eq!(err.code(), "INVALID_VALUE", "{label}");
                assert_eq!(err.details()["field"], field, "{label}");
            }
        }
        let err = block_on(
            svc.add_capability(TemplateId::new(), fetch_capability(serde_json::json!({"allow": ["bad host!"]}), None)),
        )
        .unwrap_err();
        assert!(err.to_string().contains("invalid allow entry \"bad host!\""), "{err}");
    }

    #[test]
    fn a_valid_fetch_capability_is_stored_as_sent_and_other_net_capabilities_are_not_checked() {
        let mut store = MockTemplateStore::new();
        store.expect_get().returning(|id| Ok(Some(a_template(id))));
        store.expect_add_capability().times(2).returning(|_| Ok(()));
        let svc = service(store);
        let config = serde_json::json!({"allow": ["127.0.0.1:8080", "*.example.org"], "max_fetch_kb": 64});
        let added = block_on(svc.add_capability(TemplateId::new(), fetch_capability(config.clone(), None))).unwrap();
        assert_eq!(Value::Object(added.config), config);
        let config = serde_json::json!({"allow": ["bad host!"]}).as_object().unwrap().clone();
        let socket = CapabilitySpec::parse(CapabilityKind::Net, "socket", None, Some(config)).unwrap();
        block_on(svc.add_capability(TemplateId::new(), socket)).expect("only `fetch` has a known config");
    }
}
