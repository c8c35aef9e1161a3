//! Secrets stay secret: a svcdash logging at debug level, signed into by token,
//! password and cookie, with bindings made and backups taken, writes none of the
//! secrets to its log, its responses or the audit log.

use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn no_secret_reaches_the_log_or_a_response() {
    let dir = data_dir();
    // The instance's account outlives the `svcdash serve` below; it goes with the test.
    let _accounts = crate::helpers::AccountsGuard(dir.path().to_path_buf());
    let data = dir.path().to_str().unwrap().to_owned();
    let cli = |args: &[&str], input: Option<&str>| {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_svcdash"))
            .args(args)
            .env("SVCDASH_DATA", &data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.unwrap_or_default().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    cli(&["users", "create", "erin"], None);
    cli(&["users", "grant", "erin", "--tenant", "org-s"], None);
    let password = "erin's very secret password";
    cli(&["users", "passwd", "erin"], Some(&format!("{password}\n")));
    let token = cli(&["token", "--user", "erin"], None);

    let port = engines::free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let broker_password = "the broker's secret";
    let log = dir.path().join("serve.log");
    let mut server = Command::new(env!("CARGO_BIN_EXE_svcdash"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("SVCDASH_DATA", &data)
        .env("SVCDASH_BROKER__USERNAME", "platform")
        .env("SVCDASH_BROKER__PASSWORD", broker_password)
        .env("SVCDASH_LOG__LEVEL", "debug")
        .env("RUST_LOG", "debug")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::OpenOptions::new().append(true).open(&log).unwrap())
        .spawn()
        .unwrap();
    let http = crate::helpers::http().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let broker = |method: reqwest::Method, path: String, body: Value| {
        http.request(method, format!("{base}{path}"))
            .basic_auth("platform", Some(broker_password))
            .header("X-Broker-API-Version", "2.17")
            .json(&body)
            .send()
    };
    let id = "5ec7e75a-0000-4000-8000-000000000001";
    let provision = json!({"service_id": REDIS_SERVICE, "plan_id": REDIS_PLAN,
        "organization_guid": "org-s", "space_guid": "space-s",
        "context": {"platform": "cloudfoundry", "organization_guid": "org-s", "space_guid": "space-s"}});
    wait_for("svcdash to listen", Duration::from_secs(30), &mut || {
        let req = broker(
            reqwest::Method::PUT,
            format!("/v2/service_instances/{id}?accepts_incomplete=true"),
            provision.clone(),
        );
        async move { req.await.ok().filter(|r| r.status().is_success()) }
    })
    .await;
    wait_for("the instance", Duration::from_secs(60), &mut || {
        let req = http.get(format!("{base}/v1/instances/{id}?signed_in=1")).header(AUTHORIZATION, &token).send();
        async move {
            let body: Value = req.await.ok()?.json().await.ok()?;
            (body["state"] == "provisioned").then_some(())
        }
    })
    .await;
    let mut responses = String::new();
    let res = broker(
        reqwest::Method::PUT,
        format!("/v2/service_instances/{id}/service_bindings/b1"),
        json!({"service_id": REDIS_SERVICE, "plan_id": REDIS_PLAN}),
    )
    .await
    .unwrap();
    let binding: Value = res.json().await.unwrap();
    let binding_password = binding["credentials"]["password"].as_str().unwrap().to_owned();

    // Sign in with the password and with the token; use the cookies.
    let res = http.get(format!("{base}/auth/login")).send().await.unwrap();
    let login_cookie = res.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let csrf = login_cookie.trim_start_matches("svcdash_login=").to_owned();
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("username", "erin"), ("password", password), ("_csrf", &csrf)])
        .finish();
    let res = http
        .post(format!("{base}/auth/login"))
        .header(COOKIE, &login_cookie)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()[LOCATION], "/");
    let session = res.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let res = http.get(format!("{base}/service-instances/{id}")).header(AUTHORIZATION, &token).send().await.unwrap();
    let token_session = res.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    for cookie in [&session, &token_session] {
        let res = http
            .post(format!("{base}/service-instances/{id}/backups"))
            .header(COOKIE, cookie)
            .header(AUTHORIZATION, &token)
            .send();
        responses.push_str(&res.await.unwrap().text().await.unwrap());
        for path in [
            format!("/v1/instances/{id}"),
            format!("/v1/instances/{id}/backups"),
            format!("/v1/instances/{id}/audit"),
            "/".into(),
        ] {
            let res = http.get(format!("{base}{path}")).header(COOKIE, cookie).send().await.unwrap();
            responses.push_str(&res.text().await.unwrap());
        }
    }
    // A wrong password and a bad token are logged as failures, without themselves.
    let res = http
        .get(format!("{base}/v1/instances"))
        .header(AUTHORIZATION, "bearer sd_wrong-token-value")
        .send()
        .await
        .unwrap();
    responses.push_str(&res.text().await.unwrap());
    responses.push_str(&cli(&["audit"], None));

    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.id() as i32), nix::sys::signal::Signal::SIGTERM);
    server.wait().unwrap();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("DEBUG") || logged.contains("debug"), "the log is at debug level: {logged}");
    let cookie_value = |c: &str| c.split_once('=').unwrap().1.to_owned();
    let secrets = [
        ("password", password.to_owned()),
        ("token", token.trim_start_matches("bearer ").to_owned()),
        ("broker password", broker_password.to_owned()),
        ("binding password", binding_password),
        ("session cookie", cookie_value(&session)),
        ("token session cookie", cookie_value(&token_session)),
        ("bad token", "sd_wrong-token-value".to_owned()),
    ];
    for (what, secret) in &secrets {
        assert!(!logged.contains(secret.as_str()), "the {what} is in the log");
        assert!(!responses.contains(secret.as_str()), "the {what} is in a response");
    }
    let master = std::fs::read_to_string(dir.path().join("master.key")).unwrap();
    let master = master.lines().find(|l| l.starts_with("AGE-SECRET-KEY-")).unwrap();
    assert!(!logged.contains(master) && !responses.contains(master), "the master key leaked");
}
