//! The command line and its configuration layers.

use std::process::Command;

use crate::helpers::data_dir;

pub fn svcdash(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_svcdash"));
    cmd.args(args).env_remove("SVCDASH_PUBLIC_URL").env_remove("SVCDASH_DATA");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn configuration_file_is_overridden_by_the_environment() {
    let dir = data_dir();
    let data = dir.path().join("data");
    let file = dir.path().join("svcdash.toml");
    std::fs::write(&file, format!("public_url = \"https://from-file.example\"\ndata = {:?}\n", data)).unwrap();
    let config = file.to_str().unwrap();

    let (ok, out) = svcdash(
        &["--config", config, "instances", "create", "--service", "redis", "--plan", "single-small", "cache"],
        &[],
    );
    assert!(ok, "{out}");
    assert!(out.contains("dashboard: https://from-file.example/service-instances/"), "{out}");
    assert!(data.join("svcdash.db").exists(), "the file's data folder was not used");

    let (ok, out) = svcdash(
        &["--config", config, "instances", "show", "cache"],
        &[("SVCDASH_PUBLIC_URL", "https://from-env.example")],
    );
    assert!(ok, "{out}");
    assert!(out.contains("dashboard:  https://from-env.example/service-instances/"), "{out}");
    assert!(out.contains("state:      deploying"), "{out}");
    assert!(out.contains("version:    7\n"), "the catalog's release, no update: {out}");

    let (ok, out) = svcdash(&["--config", config, "instances", "restart", "cache"], &[]);
    assert!(!ok && out.contains("is deploying; only a provisioned instance can restart"), "{out}");

    let (ok, out) = svcdash(&["--config", config, "instances", "list"], &[]);
    assert!(ok && out.contains("cache") && out.contains("redis"), "{out}");
    let (ok, out) = svcdash(&["--config", config, "instances", "show", "nope"], &[]);
    assert!(!ok && out.contains("no instance named \"nope\""), "{out}");
    let (ok, out) =
        svcdash(&["--config", config, "instances", "create", "--service", "mongodb", "--plan", "x", "m"], &[]);
    assert!(!ok && out.contains("no service \"mongodb\""), "{out}");
}

#[test]
fn a_typo_in_the_configuration_is_an_error_and_the_example_is_valid() {
    let dir = data_dir();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:1\"\n[backups]\nzstd_levle = 3\n").unwrap();
    let (ok, out) = svcdash(&["--config", file.to_str().unwrap(), "users", "list"], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("zstd_levle"), "{out}");

    let (ok, example) = svcdash(&["default-config"], &[]);
    assert!(ok);
    let file = dir.path().join("example.toml");
    std::fs::write(&file, example.replace("data = \"data\"", &format!("data = {:?}", dir.path().join("d")))).unwrap();
    let (ok, out) = svcdash(&["--config", file.to_str().unwrap(), "users", "list"], &[]);
    assert!(ok, "the printed example does not load: {out}");
}

#[tokio::test]
async fn serve_flags_win_over_the_environment() {
    let dir = data_dir();
    let _accounts = crate::helpers::AccountsGuard(dir.path().to_path_buf());
    let port = engines::free_port().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_svcdash"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--public-url", "https://from-flag.example/"])
        .env("SVCDASH_DATA", dir.path())
        .env("SVCDASH_LISTEN", "127.0.0.1:1")
        .env("SVCDASH_PUBLIC_URL", "https://from-env.example")
        .env("SVCDASH_BROKER__PASSWORD", "pw")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = crate::helpers::http().build().unwrap();
    let url = format!("http://127.0.0.1:{port}/v2/service_instances/flagged?accepts_incomplete=true");
    let body = serde_json::json!({"service_id": crate::helpers::REDIS_SERVICE, "plan_id": crate::helpers::REDIS_PLAN,
                                  "organization_guid": "org-a", "space_guid": "space-1"});
    let response = crate::helpers::wait_for("svcdash to listen", std::time::Duration::from_secs(30), &mut || {
        let (client, url, body) = (&client, &url, &body);
        async move {
            let res = client
                .put(url)
                .basic_auth("broker", Some("pw"))
                .header("X-Broker-API-Version", "2.17")
                .json(body)
                .send()
                .await
                .ok()?;
            res.json::<serde_json::Value>().await.ok()
        }
    })
    .await;
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let status = child.wait().unwrap();
    assert_eq!(response["dashboard_url"], "https://from-flag.example/service-instances/flagged", "{response}");
    assert!(status.success(), "svcdash did not stop cleanly on SIGTERM: {status}");
}

#[test]
fn users_get_passwords_and_roles() {
    let dir = data_dir();
    let data = dir.path().to_str().unwrap();
    let env = [("SVCDASH_DATA", data)];
    let passwd = |name: &str, input: &str| {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_svcdash"))
            .args(["users", "passwd", name])
            .env("SVCDASH_DATA", data)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };

    assert!(svcdash(&["users", "create", "bob"], &env).0);
    let (ok, out) = passwd("bob", "short\n");
    assert!(!ok && out.contains("at least 8 characters"), "{out}");
    let (ok, out) = passwd("nobody-here", "long enough password\n");
    assert!(!ok && out.contains("no user named \"nobody-here\""), "{out}");
    let (ok, out) = passwd("bob", "long enough password\n");
    assert!(ok && out.contains("password of bob set"), "{out}");
    // Only a hash is kept.
    let mut db = std::fs::read(dir.path().join("svcdash.db")).unwrap();
    db.extend(std::fs::read(dir.path().join("svcdash.db-wal")).unwrap_or_default());
    assert!(db.windows(9).any(|w| w == b"$argon2id"), "a password hash is stored");
    assert!(!db.windows(20).any(|w| w == b"long enough password"));

    let (ok, out) = svcdash(&["users", "grant", "bob", "--tenant", "org-a", "--role", "read"], &env);
    assert!(ok && out.contains("bob may now see instances of tenant org-a"), "{out}");
    let (ok, out) = svcdash(&["users", "grant", "bob", "--tenant", "org-b", "--subtenant", "s1"], &env);
    assert!(ok && out.contains("bob may now manage instances of tenant org-b, subtenant s1"), "{out}");
    let (ok, out) = svcdash(&["users", "grant", "bob", "--tenant", "org-a", "--role", "owner"], &env);
    assert!(!ok && out.contains("owner"), "{out}");
    let (ok, out) = svcdash(&["users", "list"], &env);
    assert!(ok && out.contains("bob\torg-a (read), org-b/s1 (manage)"), "{out}");
}

#[tokio::test]
async fn operators_restart_and_recreate_instances_from_the_command_line() {
    use crate::helpers::*;
    let dir = data_dir();
    let app = TestApp::start_in(dir.path(), config(dir.path())).await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let data = dir.path().to_str().unwrap().to_owned();
    let instance = app.state().store.instance_by_guid(&id).await.unwrap();
    for (command, kind) in [("restart", "restart"), ("recreate", "recreate")] {
        let name = instance.name.clone();
        let data = data.clone();
        let (ok, out) = tokio::task::spawn_blocking(move || {
            svcdash(&["instances", command, &name], &[("SVCDASH_DATA", data.as_str())])
        })
        .await
        .unwrap();
        assert!(ok && out.contains(&format!("{kind} of {} ({id}) queued", instance.name)), "{out}");
        // The running server does it.
        app.wait_for(&format!("the {kind} to be done"), std::time::Duration::from_secs(60), || async {
            let counts = app.state().store.job_counts().await.unwrap();
            counts.contains(&(kind.to_owned(), "done".to_owned(), 1)).then_some(())
        })
        .await;
    }
    let (_, log) = app.api(reqwest::Method::GET, &format!("/v1/instances/{id}/audit?limit=1000")).await;
    let by_cli: Vec<&str> =
        log.as_array().unwrap().iter().filter(|e| e["actor"] == "cli").map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(by_cli, ["instance.recreate", "instance.restart"]);
}

#[test]
fn tokens_expire_as_the_flag_or_the_configuration_says_and_are_listed_never_shown() {
    let dir = data_dir();
    let data = dir.path().to_str().unwrap();
    let env = [("SVCDASH_DATA", data)];
    assert!(svcdash(&["users", "create", "carl"], &env).0);

    let mut tokens = Vec::new();
    for (args, extra_env) in [
        (&["token", "--user", "carl"][..], None),
        (&["token", "--user", "carl", "--expires", "12h"], None),
        (&["token", "create", "--user", "carl", "--expires", "never"], None),
        (&["token", "--user", "carl"], Some(("SVCDASH_AUTH__TOKEN_EXPIRY_DAYS", "7"))),
        (&["token", "--user", "carl"], Some(("SVCDASH_AUTH__TOKEN_EXPIRY_DAYS", "0"))),
    ] {
        let env: Vec<(&str, &str)> = env.iter().copied().chain(extra_env).collect();
        let (ok, out) = svcdash(args, &env);
        assert!(ok && out.starts_with("bearer sd_") && out.lines().count() == 1, "{args:?}: {out}");
        tokens.push(out.trim().trim_start_matches("bearer ").to_owned());
    }
    for bad in ["0d", "12", "soon", "-1h"] {
        let (ok, out) = svcdash(&["token", "--user", "carl", &format!("--expires={bad}")], &env);
        assert!(!ok && out.contains("--expires"), "{bad}: {out}");
    }
    let (ok, out) = svcdash(&["token"], &env);
    assert!(!ok && out.contains("--user"), "{out}");
    let (ok, out) = svcdash(&["token", "--user", "nobody-here"], &env);
    assert!(!ok && out.contains("no user named \"nobody-here\""), "{out}");

    let (ok, list) = svcdash(&["token", "list"], &env);
    assert!(ok, "{list}");
    for token in &tokens {
        assert!(!list.contains(token.as_str()), "a token in the list: {list}");
        assert!(!list.contains(&server::auth::hash_token(token)), "a token's hash in the list: {list}");
    }
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["id", "user", "created", "expires"]);
    let now = chrono::Utc::now();
    let expires: Vec<Option<i64>> = lines[1..]
        .iter()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields[1], "carl", "{line}");
            let created = chrono::DateTime::parse_from_rfc3339(fields[2]).unwrap();
            assert!((now - created.to_utc()).num_seconds().abs() < 600, "{line}");
            (fields[3] != "never").then(|| chrono::DateTime::parse_from_rfc3339(fields[3]).unwrap().to_utc() - now)
        })
        .map(|left| left.map(|d| (d.num_minutes() as f64 / 60.0).round() as i64))
        .collect();
    // Hours each token has left: 30 days by default, 12 hours, never, 7 days, never.
    assert_eq!(expires, [Some(720), Some(12), None, Some(168), None], "{list}");
    let (ok, out) = svcdash(&["token", "list", "--user", "nobody-here"], &env);
    assert!(!ok && out.contains("no user named"), "{out}");
}

#[test]
fn engines_lists_every_service_with_its_installed_release_and_names_what_is_missing() {
    let dir = data_dir();
    let data = dir.path().join("data");
    let data_env = data.to_str().unwrap();
    let (ok, out) = svcdash(&["engines"], &[("SVCDASH_DATA", data_env)]);
    assert!(ok, "{out}");
    for line in [
        "postgresql       postgresql   15         15.",
        "redis            redis        7          7.",
        "mariadb          mariadb      10.11      10.11.",
        "rabbitmq         rabbitmq     3.10       3.10.",
    ] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
    // An engine whose programs are not where the operator said fails the command.
    let (ok, out) =
        svcdash(&["engines"], &[("SVCDASH_DATA", data_env), ("SVCDASH_ENGINES__BIN_DIRS__MARIADB", "/nonexistent")]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("mariadb") && out.contains("missing: mariadbd is not in the configured folder /nonexistent"),
        "{out}"
    );
    assert!(out.contains("1 of the catalog's engines cannot run here"), "{out}");
}

#[test]
fn instances_of_every_engine_are_created_from_the_command_line() {
    let dir = data_dir();
    let data = dir.path().join("data");
    let _accounts = crate::helpers::AccountsGuard(data.clone());
    let data_env = data.to_str().unwrap();
    for service in ["mariadb", "rabbitmq"] {
        let (ok, out) = svcdash(
            &["instances", "create", "--service", service, "--plan", "single-small", &format!("my-{service}")],
            &[("SVCDASH_DATA", data_env)],
        );
        assert!(ok, "{out}");
        let (ok, out) = svcdash(&["instances", "show", &format!("my-{service}")], &[("SVCDASH_DATA", data_env)]);
        assert!(ok && out.contains(&format!("service:    {service}")), "{out}");
    }
}
