//! What the poem-openapi derives cannot say, in one place:
//!
//! - [`EventView`]'s schema: a `oneOf` of one object per event type, discriminated by `type`, each
//!   with its typed `payload` (the wire shape stays `{execution_id, seq, ts, type, payload}`);
//! - [`finish`]: the document-wide facts added after generation: every property a schema does
//!   not require may be `null` (an `Option` is `null` on this wire, never absent), request bodies
//!   refuse unknown properties, and the closed sets that come from the daemon's catalog (engines,
//!   modules, libraries, startup modes) are enums.

use std::borrow::Cow;
use std::collections::BTreeSet;

use poem_openapi::registry::{MetaDiscriminatorObject, MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::{json, Map, Value};

use crate::dto::{ConsolePayload, EventView, ExceptionPayload, FetchPayload, SystemPayload, TextPayload, ValuePayload};

/// A component schema to refer to, and how to register it.
type Shape = (MetaSchemaRef, fn(&mut Registry));

fn shape<T: Type>() -> Shape {
    (T::schema_ref(), T::register)
}

/// The event types and the schema of each one's payload.
fn event_types() -> [(&'static str, &'static str, Shape); 8] {
    [
        ("input_echo", "The snippet as it was run.", shape::<TextPayload>()),
        ("console", "A console call.", shape::<ConsolePayload>()),
        ("value", "The completion value.", shape::<ValuePayload>()),
        ("exception", "An uncaught exception.", shape::<ExceptionPayload>()),
        ("system", "The daemon's own note: a limit hit, a cancel, a rollback.", shape::<SystemPayload>()),
        ("stdout", "Output a module wrote to stdout.", shape::<TextPayload>()),
        ("stderr", "Output a module wrote to stderr.", shape::<TextPayload>()),
        (
            "fetch",
            "A request `fetch` made for the script, or refused (`status` null, `code` set).",
            shape::<FetchPayload>(),
        ),
    ]
}

/// `console` → `ConsoleEvent`.
fn variant_name(event_type: &str) -> String {
    event_type.split('_').map(|word| word[..1].to_uppercase() + &word[1..]).collect::<String>() + "Event"
}

fn property(schema: MetaSchema) -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(schema))
}

impl Type for EventView {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "EventView".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference("EventView".into())
    }

    fn register(registry: &mut Registry) {
        let mut variants = Vec::new();
        for (event_type, description, (payload, register)) in event_types() {
            register(registry);
            let name = variant_name(event_type);
            registry.create_schema::<Self, _>(name.clone(), |_| MetaSchema {
                ty: "object",
                title: Some(name.clone()),
                description: Some(description),
                required: vec!["execution_id", "seq", "ts", "type", "payload"],
                properties: vec![
                    ("execution_id", property(MetaSchema { format: Some("uuid"), ..MetaSchema::new("string") })),
                    (
                        "seq",
                        property(MetaSchema {
                            format: Some("int64"),
                            description: Some("1, 2, 3…: the event's place in its execution."),
                            ..MetaSchema::new("integer")
                        }),
                    ),
                    ("ts", property(MetaSchema { format: Some("date-time"), ..MetaSchema::new("string") })),
                    ("type", property(MetaSchema { enum_items: vec![json!(event_type)], ..MetaSchema::new("string") })),
                    ("payload", payload),
                ],
                ..MetaSchema::new("object")
            });
            variants.push((event_type, name));
        }
        registry.create_schema::<Self, _>("EventView".into(), |_| MetaSchema {
            description: Some("One event of an execution; `payload` depends on `type`."),
            one_of: variants.iter().map(|(_, name)| MetaSchemaRef::Reference(name.clone())).collect(),
            discriminator: Some(MetaDiscriminatorObject {
                property_name: "type",
                mapping: variants
                    .iter()
                    .map(|(event_type, name)| (event_type.to_string(), format!("#/components/schemas/{name}")))
                    .collect(),
            }),
            ..MetaSchema::ANY
        });
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ToJSON for EventView {
    fn to_json(&self) -> Option<Value> {
        serde_json::to_value(self).ok()
    }
}

impl ParseFromJSON for EventView {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        serde_json::from_value(value.unwrap_or_default()).map_err(|err| ParseError::custom(err.to_string()))
    }
}

/// The closed sets the daemon's configuration decides, for [`finish`].
pub struct Choices {
    pub engines: Vec<String>,
    pub modules: Vec<String>,
    pub libraries: Vec<String>,
    pub startup_modes: Vec<String>,
}

/// Adds to the generated document what the derives cannot say (see the module docs).
pub fn finish(doc: &mut Value, choices: &Choices) {
    let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else {
        return;
    };
    for (name, schema) in schemas.iter_mut() {
        nullable_optionals(schema);
        if name.ends_with("Details") && schema.get("anyOf").is_none() {
            // Each shape of `ErrorDetails` is exact, so that `anyOf` tells them apart.
            schema["additionalProperties"] = json!(false);
        }
    }
    let bodies = request_body_schemas(doc);
    let schemas = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut).expect("schemas exist");
    for name in &bodies {
        if let Some(schema) = schemas.get_mut(name) {
            if schema.get("properties").is_some() {
                schema["additionalProperties"] = json!(false);
            }
        }
    }
    let enum_of = |values: &[String]| Value::Array(values.iter().map(|v| json!(v)).collect());
    for (schema, field, values, many) in [
        ("CreateTemplateBody", "engine", &choices.engines, false),
        ("CreateTemplateBody", "exposed_modules", &choices.modules, true),
        ("CreateTemplateBody", "libraries", &choices.libraries, true),
        ("ModuleNameBody", "name", &choices.modules, false),
        ("LibraryNameBody", "name", &choices.libraries, false),
        ("CreateStartupFileBody", "mode", &choices.startup_modes, false),
    ] {
        let target = schemas
            .get_mut(schema)
            .and_then(|s| s.pointer_mut(&format!("/properties/{field}")))
            .unwrap_or_else(|| panic!("the document has no {schema}.{field}"));
        let nullable = target["nullable"] == json!(true);
        let target = if many { &mut target["items"] } else { target };
        let mut choices = enum_of(values);
        if nullable && !many {
            // OpenAPI 3.0.3: a nullable enum must list `null` itself.
            choices.as_array_mut().expect("an array").push(Value::Null);
        }
        target["enum"] = choices;
    }
    declare_only_what_applies(doc);
    for (path, values) in
        [("/templates/{id}/modules/{name}", &choices.modules), ("/templates/{id}/libraries/{name}", &choices.libraries)]
    {
        let item = doc["paths"][path].as_object_mut().unwrap_or_else(|| panic!("the document has no {path}"));
        for operation in item.values_mut() {
            for parameter in operation["parameters"].as_array_mut().into_iter().flatten() {
                if parameter["name"] == "name" {
                    parameter["schema"]["enum"] = enum_of(values);
                }
            }
        }
    }
}

/// Every operation shares one error type, which lists every error status; this keeps on each
/// operation those it can give: no `405` (a route answers it, with `Allow`, for the methods it
/// has no operation for), `408` and `413` only where a body is read, `422` on no read.
fn declare_only_what_applies(doc: &mut Value) {
    for item in doc["paths"].as_object_mut().into_iter().flat_map(|paths| paths.values_mut()) {
        for (method, operation) in item.as_object_mut().into_iter().flat_map(|item| item.iter_mut()) {
            let has_body = operation.get("requestBody").is_some();
            let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { continue };
            responses.remove("405");
            if !has_body {
                responses.remove("408");
                responses.remove("413");
            }
            if method == "get" {
                responses.remove("422");
            }
        }
    }
}

/// Marks every property a schema does not require as nullable.
fn nullable_optionals(schema: &mut Value) {
    let required: BTreeSet<String> = schema["required"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else { return };
    for (name, property) in properties.iter_mut() {
        if required.contains(name) {
            continue;
        }
        if let Some(reference) = property.get("$ref").cloned() {
            let mut wrapped = Map::new();
            wrapped.insert("allOf".into(), json!([{ "$ref": reference }]));
            wrapped.insert("nullable".into(), json!(true));
            *property = Value::Object(wrapped);
        } else if let Some(object) = property.as_object_mut() {
            object.insert("nullable".into(), json!(true));
        }
    }
}

/// The component schemas a request body reaches, through properties and items.
fn request_body_schemas(doc: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut pending: Vec<String> = Vec::new();
    for item in doc["paths"].as_object().into_iter().flat_map(|paths| paths.values()) {
        for operation in item.as_object().into_iter().flat_map(|item| item.values()) {
            for media in operation["requestBody"]["content"].as_object().into_iter().flat_map(|c| c.values()) {
                collect_refs(&media["schema"], &mut pending);
            }
        }
    }
    while let Some(name) = pending.pop() {
        if found.insert(name.clone()) {
            collect_refs(&doc["components"]["schemas"][&name], &mut pending);
        }
    }
    found
}

fn collect_refs(schema: &Value, into: &mut Vec<String>) {
    match schema {
        Value::Object(object) => {
            for (key, value) in object {
                match (key.as_str(), value.as_str()) {
                    ("$ref", Some(reference)) => {
                        into.push(reference.trim_start_matches("#/components/schemas/").to_owned());
                    }
                    _ => collect_refs(value, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, into)),
        _ => {}
    }
}

/// An error's `details`: an object whose shape depends on the error's `code`. Its schema is an
/// `anyOf` of the shapes below, each naming the codes that give it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ErrorDetails(pub Value);

/// `VALIDATION_ERROR`, `INVALID_VALUE`: the field at fault, e.g. `settings.limits.wall_ms`.
#[derive(poem_openapi::Object)]
struct FieldDetails {
    field: String,
}

/// `TEMPLATE_NOT_FOUND`.
#[derive(poem_openapi::Object)]
struct TemplateDetails {
    template_id: String,
}

/// `SESSION_NOT_FOUND`; `SESSION_NOT_READY` adds its `status`; `SESSION_BUSY` the
/// `running_execution_id`.
#[derive(poem_openapi::Object)]
struct SessionDetails {
    session_id: String,
    status: Option<String>,
    running_execution_id: Option<String>,
}

/// `EXECUTION_NOT_FOUND`; `EXECUTION_NOT_RUNNING` adds its `status`.
#[derive(poem_openapi::Object)]
struct ExecutionDetails {
    execution_id: String,
    status: Option<String>,
}

/// `TOKEN_NOT_FOUND`.
#[derive(poem_openapi::Object)]
struct TokenDetails {
    token_id: String,
}

/// `FILE_NOT_FOUND`; `INVALID_PATH` adds the `reason`.
#[derive(poem_openapi::Object)]
struct PathDetails {
    path: String,
    reason: Option<String>,
}

/// `OUTPUT_LIMIT_EXCEEDED` (`value`), `EXECUTION_TIMEOUT` (`limit_ms`), `MEMORY_LIMIT_EXCEEDED`
/// (`limit_mb`): the execution that hit the limit, which limit, and what became of the session.
#[derive(poem_openapi::Object)]
struct LimitDetails {
    execution_id: String,
    /// The setting: `max_events`, `max_output_kb`, `wall_ms`, `cpu_ms` or `mem_mb`.
    limit: String,
    value: Option<u64>,
    limit_ms: Option<u64>,
    limit_mb: Option<u64>,
    /// The session is back to its state before the execution (a checkpoint).
    rolled_back: bool,
    /// The session's runtime is gone (`crashed`).
    runtime_lost: bool,
}

/// `MODULE_NOT_ALLOWED`, `LIBRARY_NOT_AVAILABLE`, `ENGINE_UNSUPPORTED`,
/// `STARTUP_MODE_UNSUPPORTED`: what was asked for, and what may be.
#[derive(poem_openapi::Object)]
struct ChoiceDetails {
    name: Option<String>,
    engine: Option<String>,
    mode: Option<String>,
    allowed: Option<Vec<String>>,
    available: Option<Vec<String>>,
    supported: Option<Vec<String>>,
}

/// `STARTUP_FAILED`.
#[derive(poem_openapi::Object)]
struct StartupFailedDetails {
    session_id: String,
    template_id: String,
    reason: String,
}

/// `STORE_UNAVAILABLE`, `STORAGE_FULL`, `RUNTIME_UNAVAILABLE`: why; `execution_id` when that
/// execution ran and is stored once the store is back.
#[derive(poem_openapi::Object)]
struct ReasonDetails {
    reason: String,
    execution_id: Option<String>,
}

/// `FORBIDDEN`: the scope the operation needs (absent for a refused `Origin`).
#[derive(poem_openapi::Object)]
struct ForbiddenDetails {
    required_scope: Option<String>,
}

/// `MISDIRECTED_REQUEST`.
#[derive(poem_openapi::Object)]
struct MisdirectedDetails {
    host: String,
    allowed_hosts: Vec<String>,
}

/// `GET /ready`'s 503 (`STORE_UNAVAILABLE`, `RUNTIME_UNAVAILABLE`, `SHUTTING_DOWN`): each
/// check's state (`store`, `runtime`: `ok` or `failed`; `drain`: `ok` or `draining`).
#[derive(poem_openapi::Object)]
struct ReadinessDetails {
    reason: Option<String>,
    checks: std::collections::BTreeMap<String, String>,
}

/// `NODE_UNAVAILABLE`: the node that runs the session, where it was reached, and why it could not
/// be.
#[derive(poem_openapi::Object)]
struct NodeDetails {
    node_id: String,
    url: String,
    session_id: Option<String>,
    reason: String,
}

/// `NO_CAPACITY`: this node's `--max-sessions`.
#[derive(poem_openapi::Object)]
struct CapacityDetails {
    max_sessions: u64,
}

/// Every other code: no details.
#[derive(poem_openapi::Object)]
struct NoDetails {}

impl Type for ErrorDetails {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "ErrorDetails".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference("ErrorDetails".into())
    }

    fn register(registry: &mut Registry) {
        let shapes = [
            shape::<FieldDetails>(),
            shape::<TemplateDetails>(),
            shape::<SessionDetails>(),
            shape::<ExecutionDetails>(),
            shape::<TokenDetails>(),
            shape::<PathDetails>(),
            shape::<LimitDetails>(),
            shape::<ChoiceDetails>(),
            shape::<StartupFailedDetails>(),
            shape::<ReasonDetails>(),
            shape::<ForbiddenDetails>(),
            shape::<MisdirectedDetails>(),
            shape::<ReadinessDetails>(),
            shape::<NodeDetails>(),
            shape::<CapacityDetails>(),
            shape::<NoDetails>(),
        ];
        for (_, register) in &shapes {
            register(registry);
        }
        registry.create_schema::<Self, _>("ErrorDetails".into(), |_| MetaSchema {
            description: Some("Facts about the error; the shape depends on `code` (see each alternative)."),
            any_of: shapes.into_iter().map(|(reference, _)| reference).collect(),
            ..MetaSchema::ANY
        });
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ToJSON for ErrorDetails {
    fn to_json(&self) -> Option<Value> {
        Some(self.0.clone())
    }
}

impl ParseFromJSON for ErrorDetails {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        Ok(Self(value.unwrap_or_default()))
    }
}
