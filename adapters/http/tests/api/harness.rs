//! `spawn_app()`: a fresh database, library cache and worktree per test.
//! `VM_TEST_BACKEND=postgres` puts each test's store in its own database of
//! one throwaway PostgreSQL cluster per run (see `vm-testpg`); the default
//! is a SQLite file in the test's temporary directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use poem::endpoint::BoxEndpoint;
use poem::http::{Method, StatusCode};
use poem::test::TestClient;
use poem::EndpointExt;
use serde_json::{json, Value};
use tempfile::TempDir;
use vm_domain::paths::WorktreePolicy;
use vm_domain::token::{Scope, TokenName, TokenSpec};
use vm_http::clock::SystemClock;
use vm_http::{Access, AuthMode, Services, StorePorts};
use vm_runtime_boa::sandbox::SandboxMode;
use vm_runtime_boa::{BoaRuntime, FsLibraryCache};
use vm_store::{Database, PostgresUrl};

pub struct TestApp {
    pub client: TestClient<BoxEndpoint<'static>>,
    pub services: Arc<Services>,
    /// The store under the services: `store.close()` takes it away.
    pub store: vm_store::Stores,
    pub dir: TempDir,
    pub worktree: PathBuf,
    /// The secret of an admin token every call sends unless told otherwise.
    pub admin: String,
}

/// The address the test app pretends to listen on; its `Host` is served.
pub const LISTEN: &str = "127.0.0.1:3210";

/// How a call authenticates.
#[derive(Debug, Clone, Copy)]
pub enum As<'a> {
    /// The harness's admin token.
    Admin,
    /// This bearer secret.
    Token(&'a str),
    /// No `Authorization` header.
    Nobody,
}

/// What a call answered.
pub struct Answer {
    pub status: StatusCode,
    pub request_id: Option<String>,
    pub body: Value,
}

impl Answer {
    /// Asserts the error envelope's status and code, and returns `details`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "status of {}", self.body);
        assert_eq!(self.body["error"]["code"], code, "code of {}", self.body);
        assert!(self.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "message of {}", self.body);
        assert!(self.body["error"]["details"].is_object(), "details of {}", self.body);
        &self.body["error"]["details"]
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "status of {}", self.body);
        &self.body
    }
}

/// A new, empty database for one test on the backend `VM_TEST_BACKEND`
/// names (`sqlite`, the default, as `vm.db` in `dir`; or `postgres`).
pub fn fresh_database(dir: &Path) -> Database {
    match std::env::var("VM_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => Database::Sqlite(dir.join("vm.db")),
        Ok("postgres") => {
            let url = vm_testpg::fresh_database_url()
                .expect("VM_TEST_BACKEND=postgres, but the PostgreSQL server programs are not installed");
            Database::Postgres(PostgresUrl::new(url))
        }
        Ok(other) => panic!("VM_TEST_BACKEND={other:?}: expected sqlite or postgres"),
    }
}

pub async fn services_over(db: &Database, cache_dir: PathBuf) -> Arc<Services> {
    services_and_store(db, cache_dir).await.0
}

/// The services over the store `db` names, and that store.
pub async fn services_and_store(db: &Database, cache_dir: PathBuf) -> (Arc<Services>, vm_store::Stores) {
    let store = vm_store::open(db).await.expect("the test database opens");
    let stores = StorePorts {
        templates: store.templates.clone(),
        sessions: store.sessions.clone(),
        executions: store.executions.clone(),
        tokens: store.tokens.clone(),
        nodes: store.nodes.clone(),
        health: store.health.clone(),
    };
    // Worktrees live in the tests' temporary directories.
    let roots = [std::env::temp_dir()];
    let services = Services::new(
        stores,
        Arc::new(BoaRuntime::new(cache_dir.clone(), SandboxMode::on("nobody").expect("the sandbox user exists"))),
        Arc::new(FsLibraryCache::new(cache_dir.clone())),
        Arc::new(SystemClock),
        WorktreePolicy::new(&roots, &[cache_dir]).expect("the temporary directory exists"),
        node_config(),
    );
    services.nodes.join("a-test-node-credential").await.expect("the node joins its database");
    (Arc::new(services), store)
}

/// The test daemon as a node: alone on its database (each test has its own).
pub fn node_config() -> vm_domain::node::NodeConfig {
    vm_domain::node::NodeConfig {
        url: format!("http://{LISTEN}"),
        version: "test".to_owned(),
        max_sessions: 64,
        lease: std::time::Duration::from_secs(10),
        exclusive: true,
    }
}

/// The guard's rules of the test app: tokens required, `LISTEN` served.
pub fn access(auth: AuthMode, hosts: &[&str], origins: &[&str]) -> Access {
    let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Access::new(auth, LISTEN.parse().unwrap(), &owned(hosts), &owned(origins)).expect("valid test rules")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(access(AuthMode::Required, &[], &[])).await
}

pub async fn spawn_app_with(rules: Access) -> TestApp {
    let dir = tempfile::tempdir().expect("a temp dir");
    let worktree = dir.path().join("worktree");
    std::fs::create_dir_all(&worktree).unwrap();
    std::fs::create_dir_all(dir.path().join("cache")).unwrap();
    let (services, store) = services_and_store(&fresh_database(dir.path()), dir.path().join("cache")).await;
    let name = TokenName::parse("test-admin").expect("a valid token name");
    let spec = TokenSpec { name, scopes: vec![Scope::Admin], expires_at: None };
    let (_, secret) = services.tokens.create(spec).await.expect("the test admin token is made");
    let client = TestClient::new(vm_http::app(services.clone(), rules, None).boxed());
    TestApp {
        client,
        services,
        store,
        dir,
        worktree: worktree.canonicalize().unwrap(),
        admin: secret.expose().to_owned(),
    }
}

impl TestApp {
    /// A request to `path` with the test `Host` and the admin token.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        who: As<'_>,
    ) -> poem::test::TestRequestBuilder<'_, BoxEndpoint<'static>> {
        let request = self.client.request(method, path).header("host", LISTEN);
        match who {
            As::Admin => request.header("authorization", format!("Bearer {}", self.admin)),
            As::Token(secret) => request.header("authorization", format!("Bearer {secret}")),
            As::Nobody => request,
        }
    }

    pub async fn call_as(&self, who: As<'_>, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self.request(method, path, who);
        if let Some(body) = body {
            request = request.body_json(&body);
        }
        answer(request.send().await).await
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_as(As::Admin, method, path, body).await
    }

    pub async fn raw(&self, method: Method, path: &str, content_type: &str, body: &str) -> Answer {
        let request = self.request(method, path, As::Admin).content_type(content_type).body(body.to_owned());
        answer(request.send().await).await
    }

    /// Makes a token with `scopes` and returns its secret.
    pub async fn token(&self, name: &str, scopes: &[&str]) -> String {
        let body = json!({ "name": name, "scopes": scopes });
        self.post("/api/v1/tokens", body).await.assert_status(201)["secret"].as_str().unwrap().to_owned()
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }

    pub fn write(&self, relative: &str, contents: &str) {
        let path = self.worktree.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    /// Creates a template and returns its id.
    pub async fn template(&self, body: Value) -> String {
        let answer = self.post("/api/v1/templates", body).await;
        answer.assert_status(201)["id"].as_str().expect("a template id").to_owned()
    }

    pub fn session_body(&self, template_id: &str) -> Value {
        json!({
            "template_id": template_id,
            "workspace_id": "ws-1",
            "base_commit_oid": "0123abcd",
            "worktree_path": self.worktree.to_str().unwrap(),
        })
    }

    /// Creates a template with defaults and a ready session; returns the session id.
    pub async fn ready_session(&self) -> String {
        let template = self.template(json!({ "name": "default" })).await;
        let answer = self.post("/api/v1/sessions", self.session_body(&template)).await;
        let session = answer.assert_status(201);
        assert_eq!(session["status"], "ready", "{session}");
        session["id"].as_str().unwrap().to_owned()
    }

    pub async fn repl(&self, session: &str, input: &str) -> Answer {
        self.post("/api/v1/executions/repl", json!({ "session_id": session, "input": input })).await
    }
}

pub async fn answer(response: poem::test::TestResponse) -> Answer {
    let status = response.0.status();
    let request_id = response.0.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = response.0.into_body().into_bytes().await.expect("a readable body");
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
    Answer { status, request_id, body }
}

/// The value event's payload of an execution answer.
pub fn value_of(execution: &Value) -> &Value {
    execution["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["type"] == "value"))
        .map(|e| &e["payload"])
        .unwrap_or_else(|| panic!("no value event in {execution}"))
}

/// The event types of an execution answer, in order.
pub fn event_types(execution: &Value) -> Vec<String> {
    execution["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}
