//! `TemplateStore`: round trips, order, cascading delete, settings, modules,
//! libraries, capabilities and startup files.

use serde_json::json;
use vm_domain::ids::{CapabilityId, StartupFileId, TemplateId};
use vm_domain::paths::ScriptPath;
use vm_domain::template::{Capability, CapabilityKind, Settings, StartupFile, StartupMode};

use crate::harness::Harness;
use crate::seed::{at, library, module, session, template};

fn capability(template_id: TemplateId, name: &str) -> Capability {
    Capability {
        id: CapabilityId::new(),
        template_id,
        kind: CapabilityKind::Fs,
        name: name.to_owned(),
        enabled: true,
        config: json!({ "root": name, "depth": 2 }).as_object().cloned().expect("an object"),
        created_at: at(1),
    }
}

fn startup_file(template_id: TemplateId, path: &str, order_index: i64) -> StartupFile {
    StartupFile {
        id: StartupFileId::new(),
        template_id,
        path: ScriptPath::parse(path).expect("a valid path"),
        order_index,
        mode: StartupMode::Eval,
        created_at: at(1),
    }
}

fn custom_settings() -> Settings {
    let mut settings = Settings::default();
    settings.limits.wall_ms = 1234;
    settings.resolver.roots = vec!["lib".into()];
    settings.runtime.strict = true;
    settings
}

contract!(a_template_reads_back_as_it_was_inserted, async |h: &Harness| {
    let mut demo = template("demo", at(1));
    demo.exposed_modules = vec![module("database"), module("fs")];
    demo.libraries = vec![library("moment-2.29.4"), library("lodash-4.17.21")];
    demo.is_active = false;
    h.templates.insert(&demo, &custom_settings()).await.unwrap();

    assert_eq!(h.templates.get(demo.id).await.unwrap(), Some(demo.clone()));
    assert_eq!(h.templates.settings(demo.id).await.unwrap(), Some(custom_settings()));
});

contract!(a_missing_template_reads_as_nothing_and_deletes_as_false, async |h: &Harness| {
    let id = TemplateId::new();
    assert_eq!(h.templates.get(id).await.unwrap(), None);
    assert_eq!(h.templates.settings(id).await.unwrap(), None);
    assert!(h.templates.capabilities(id).await.unwrap().is_empty());
    assert!(h.templates.startup_files(id).await.unwrap().is_empty());
    assert!(!h.templates.delete(id).await.unwrap());
    assert!(!h.templates.replace_settings(id, &Settings::default(), at(2)).await.unwrap());
});

contract!(templates_are_listed_newest_first_and_ties_by_latest_insertion, async |h: &Harness| {
    let a = template("a", at(1));
    let b = template("b", at(3));
    let c = template("c", at(2));
    let d = template("d", at(3));
    for t in [&a, &b, &c, &d] {
        h.templates.insert(t, &Settings::default()).await.unwrap();
    }

    let names: Vec<_> = h.templates.list().await.unwrap().into_iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["d", "b", "c", "a"]);
});

contract!(deleting_a_template_removes_everything_hanging_off_it, async |h: &Harness| {
    let mut doomed = template("doomed", at(1));
    doomed.exposed_modules = vec![module("fs")];
    doomed.libraries = vec![library("lodash-4.17.21")];
    let mut kept = template("kept", at(2));
    kept.exposed_modules = vec![module("fs")];
    kept.libraries = vec![library("lodash-4.17.21")];
    for t in [&doomed, &kept] {
        h.templates.insert(t, &Settings::default()).await.unwrap();
        h.templates.add_capability(&capability(t.id, "data")).await.unwrap();
        h.templates.add_startup_file(&startup_file(t.id, "init.js", 0)).await.unwrap();
        h.templates.add_module(t.id, &module("exec"), at(3)).await.unwrap();
    }

    assert!(h.templates.delete(doomed.id).await.unwrap());

    assert_eq!(h.templates.get(doomed.id).await.unwrap(), None);
    assert_eq!(h.templates.settings(doomed.id).await.unwrap(), None);
    assert!(h.templates.capabilities(doomed.id).await.unwrap().is_empty());
    assert!(h.templates.startup_files(doomed.id).await.unwrap().is_empty());
    let children = [
        ("template_settings", 1),
        ("template_capabilities", 1),
        ("template_startup_files", 1),
        ("template_modules", 2),
        ("template_libraries", 1),
    ];
    for (table, rows_per_template) in children {
        assert_eq!(h.count_rows(table, "template_id", doomed.id).await, 0, "{table} of the deleted template");
        assert_eq!(h.count_rows(table, "template_id", kept.id).await, rows_per_template, "{table} of the other");
    }
    assert!(h.templates.get(kept.id).await.unwrap().is_some());
    assert!(!h.templates.delete(doomed.id).await.unwrap(), "a second delete finds nothing");
});

contract!(deleting_a_template_leaves_its_sessions_alone, async |h: &Harness| {
    let demo = template("demo", at(1));
    h.templates.insert(&demo, &Settings::default()).await.unwrap();
    let made = session(demo.id, at(2));
    h.sessions.insert(&made).await.unwrap();

    assert!(h.templates.delete(demo.id).await.unwrap());

    assert_eq!(h.sessions.get(made.id).await.unwrap(), Some(made.clone()));
    assert_eq!(h.sessions.list(None).await.unwrap(), [made]);
});

contract!(replacing_settings_stores_them_and_bumps_updated_at, async |h: &Harness| {
    let demo = template("demo", at(1));
    h.templates.insert(&demo, &Settings::default()).await.unwrap();

    assert!(h.templates.replace_settings(demo.id, &custom_settings(), at(5)).await.unwrap());

    assert_eq!(h.templates.settings(demo.id).await.unwrap(), Some(custom_settings()));
    let stored = h.templates.get(demo.id).await.unwrap().unwrap();
    assert_eq!((stored.created_at, stored.updated_at), (at(1), at(5)));
});

contract!(modules_are_listed_by_name_and_adding_one_twice_changes_nothing, async |h: &Harness| {
    let mut demo = template("demo", at(1));
    demo.exposed_modules = vec![module("fs"), module("database")];
    h.templates.insert(&demo, &Settings::default()).await.unwrap();
    let stored = || async { h.templates.get(demo.id).await.unwrap().unwrap() };
    let names = |t: &vm_domain::template::Template| t.exposed_modules.iter().map(|m| m.to_string()).collect::<Vec<_>>();
    assert_eq!(names(&stored().await), ["database", "fs"]);

    h.templates.add_module(demo.id, &module("exec"), at(2)).await.unwrap();
    let after_add = stored().await;
    assert_eq!(names(&after_add), ["database", "exec", "fs"]);
    assert_eq!(after_add.updated_at, at(2));

    h.templates.add_module(demo.id, &module("fs"), at(3)).await.unwrap();
    assert_eq!(stored().await, after_add, "adding a present module changes nothing");
    assert_eq!(h.count_rows("template_modules", "template_id", demo.id).await, 3);

    assert!(h.templates.remove_module(demo.id, &module("fs"), at(4)).await.unwrap());
    let after_remove = stored().await;
    assert_eq!(names(&after_remove), ["database", "exec"]);
    assert_eq!(after_remove.updated_at, at(4));

    assert!(!h.templates.remove_module(demo.id, &module("fs"), at(5)).await.unwrap());
    assert_eq!(stored().await.updated_at, at(4), "removing an absent module changes nothing");
});

contract!(libraries_keep_their_configured_order_and_re_adding_keeps_the_position, async |h: &Harness| {
    let mut demo = template("demo", at(1));
    demo.libraries = vec![library("moment-2.29.4"), library("lodash-4.17.21")];
    h.templates.insert(&demo, &Settings::default()).await.unwrap();
    let order = || async {
        let t = h.templates.get(demo.id).await.unwrap().unwrap();
        (t.libraries.iter().map(|l| l.to_string()).collect::<Vec<_>>(), t.updated_at)
    };

    h.templates.add_library(demo.id, &library("ramda-0.29.0"), at(2)).await.unwrap();
    assert_eq!(order().await, (vec!["moment-2.29.4".into(), "lodash-4.17.21".into(), "ramda-0.29.0".into()], at(2)));

    h.templates.add_library(demo.id, &library("moment-2.29.4"), at(3)).await.unwrap();
    assert_eq!(order().await.0, ["moment-2.29.4", "lodash-4.17.21", "ramda-0.29.0"]);
    assert_eq!(order().await.1, at(2), "adding a present library changes nothing");

    assert!(h.templates.remove_library(demo.id, &library("lodash-4.17.21"), at(4)).await.unwrap());
    assert_eq!(order().await, (vec!["moment-2.29.4".into(), "ramda-0.29.0".into()], at(4)));
    assert!(!h.templates.remove_library(demo.id, &library("lodash-4.17.21"), at(5)).await.unwrap());

    h.templates.add_library(demo.id, &library("lodash-4.17.21"), at(6)).await.unwrap();
    assert_eq!(order().await.0, ["moment-2.29.4", "ramda-0.29.0", "lodash-4.17.21"]);
});

contract!(capabilities_come_back_in_the_order_they_were_added, async |h: &Harness| {
    let demo = template("demo", at(1));
    h.templates.insert(&demo, &Settings::default()).await.unwrap();
    let mut added = Vec::new();
    for (name, kind) in [("zeta", CapabilityKind::Net), ("alpha", CapabilityKind::Env), ("mid", CapabilityKind::Module)]
    {
        let mut cap = capability(demo.id, name);
        cap.kind = kind;
        cap.enabled = name != "mid";
        h.templates.add_capability(&cap).await.unwrap();
        added.push(cap);
    }

    assert_eq!(h.templates.capabilities(demo.id).await.unwrap(), added);
});

contract!(startup_files_come_by_order_index_then_by_insertion, async |h: &Harness| {
    let demo = template("demo", at(1));
    h.templates.insert(&demo, &Settings::default()).await.unwrap();
    for (path, order_index) in [("a.js", 2), ("b.js", 0), ("c.js", 1), ("d.js", 0), ("e/f.js", 0)] {
        h.templates.add_startup_file(&startup_file(demo.id, path, order_index)).await.unwrap();
    }

    let files = h.templates.startup_files(demo.id).await.unwrap();
    let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["b.js", "d.js", "e/f.js", "c.js", "a.js"]);
    assert!(files.iter().all(|f| f.template_id == demo.id && f.mode == StartupMode::Eval));
});

contract!(configuring_a_missing_template_is_template_not_found, async |h: &Harness| {
    let id = TemplateId::new();
    let errors = [
        h.templates.add_capability(&capability(id, "data")).await.unwrap_err(),
        h.templates.add_startup_file(&startup_file(id, "init.js", 0)).await.unwrap_err(),
        h.templates.add_module(id, &module("fs"), at(1)).await.unwrap_err(),
        h.templates.add_library(id, &library("lodash-4.17.21"), at(1)).await.unwrap_err(),
    ];
    for err in errors {
        assert_eq!(err.code(), "TEMPLATE_NOT_FOUND", "{err:?}");
    }
    assert!(!h.templates.remove_module(id, &module("fs"), at(1)).await.unwrap());
    assert!(!h.templates.remove_library(id, &library("lodash-4.17.21"), at(1)).await.unwrap());
});

contract!(capabilities_with_nul_characters_round_trip, async |h: &Harness| {
    let demo = template("demo", at(1));
    h.templates.insert(&demo, &Settings::default()).await.unwrap();
    let mut cap = capability(demo.id, "nul\u{0}name");
    cap.config = json!({ "root": "a\u{0}b" }).as_object().cloned().expect("an object");
    h.templates.add_capability(&cap).await.unwrap();

    assert_eq!(h.templates.capabilities(demo.id).await.unwrap(), [cap]);
});
