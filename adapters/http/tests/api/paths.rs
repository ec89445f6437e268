//! Path traversal: every way out of the worktree is refused with
//! `INVALID_PATH` and runs nothing.

use serde_json::json;

use crate::harness::spawn_app;

#[tokio::test]
async fn run_file_refuses_every_way_out_of_the_worktree() {
    let app = spawn_app().await;
    let session = app.ready_session().await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.js"), "'secret'").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.js"), app.worktree.join("link.js")).unwrap();
    std::os::unix::fs::symlink(outside.path(), app.worktree.join("out")).unwrap();
    std::os::unix::fs::symlink("../../../../etc/passwd", app.worktree.join("rel-link.js")).unwrap();
    let absolute = outside.path().join("secret.js");
    let cases = [
        ("absolute", absolute.to_str().unwrap()),
        ("etc", "/etc/passwd"),
        ("parent", "../secret.js"),
        ("nested parent", "a/b/../../../secret.js"),
        ("dot parent", "./../secret.js"),
        ("only parent", ".."),
        ("backslash", "..\\secret.js"),
        ("home", "~/secret.js"),
        ("nul", "main.js\u{0}.txt"),
        ("symlink to file outside", "link.js"),
        ("symlink to dir outside", "out/secret.js"),
        ("relative symlink outside", "rel-link.js"),
    ];
    for (label, path) in cases {
        let answer = app.post("/api/v1/executions/run-file", json!({ "session_id": session, "path": path })).await;
        assert_eq!(answer.status.as_u16(), 422, "{label}: {}", answer.body);
        assert_eq!(answer.body["error"]["code"], "INVALID_PATH", "{label}");
    }
    let listed = app.get(&format!("/api/v1/executions?session_id={session}")).await;
    assert_eq!(listed.body, json!([]), "nothing ran");
}

#[tokio::test]
async fn percent_encoded_dots_are_just_a_file_name() {
    let app = spawn_app().await;
    let session = app.ready_session().await;
    let answer =
        app.post("/api/v1/executions/run-file", json!({ "session_id": session, "path": "%2e%2e/secret.js" })).await;
    answer.assert_error(404, "FILE_NOT_FOUND");
}

#[tokio::test]
async fn startup_files_refuse_escaping_paths() {
    let app = spawn_app().await;
    let template = app.template(json!({ "name": "t" })).await;
    for path in ["../init.js", "/etc/passwd", "a/../../init.js", "x\u{0}y"] {
        let answer = app.post(&format!("/api/v1/templates/{template}/startup-files"), json!({ "path": path })).await;
        answer.assert_error(422, "INVALID_PATH");
    }
}

#[tokio::test]
async fn worktrees_must_be_absolute_existing_directories() {
    let app = spawn_app().await;
    let template = app.template(json!({ "name": "t" })).await;
    let file = app.worktree.join("file.txt");
    std::fs::write(&file, "x").unwrap();
    for worktree in ["relative/dir", "/no/such/dir", file.to_str().unwrap()] {
        let mut body = app.session_body(&template);
        body["worktree_path"] = json!(worktree);
        app.post("/api/v1/sessions", body).await.assert_error(422, "INVALID_PATH");
    }
}
