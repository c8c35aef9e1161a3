//! Node metrics: `GET /v1/instances/:id/metrics` lines parse as Graphite lines under
//! the reference's names, their values agree with what the machine's own tools
//! say (`free`, `df`, `nproc`), `quantity` picks the newest collections, the same
//! lines reach a Graphite receiver, and `/metrics` serves svcdash's own figures.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::io::AsyncReadExt;

use crate::helpers::*;

struct Line {
    path: String,
    value: i64,
    at: i64,
}

fn parse(lines: &serde_json::Value) -> Vec<Line> {
    lines
        .as_array()
        .expect("an array of lines")
        .iter()
        .map(|l| {
            let text = l.as_str().expect("each line is a string");
            let parts: Vec<&str> = text.split(' ').collect();
            assert_eq!(parts.len(), 3, "<path> <value> <timestamp>: {text}");
            Line { path: parts[0].to_owned(), value: parts[1].parse().unwrap(), at: parts[2].parse().unwrap() }
        })
        .collect()
}

fn command(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `df -B1 --output=<field> <path>` as a number.
fn df(field: &str, path: &std::path::Path) -> i64 {
    let out = command("df", &["-B1", &format!("--output={field}"), path.to_str().unwrap()]);
    out.lines().nth(1).unwrap().trim().parse().unwrap()
}

#[tokio::test]
async fn metrics_lines_carry_the_machines_figures_and_reach_graphite() {
    // Graphite's plaintext protocol is lines over TCP; this listener reads them as
    // carbon would (carbon itself is not installed here).
    let graphite = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = data_dir();
    let mut config = config(dir.path());
    config.metrics.interval_secs = 1;
    config.metrics.tenancy_in_namespace = true;
    config.metrics.graphite = Some(graphite.local_addr().unwrap().to_string());
    config.metrics.prometheus_token = Some("scrape-secret-0123456789".to_owned().into());
    config.parachute.persistent_threshold = 100;
    let app = TestApp::start_in(dir.path(), config).await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let provisioned_at = chrono::Utc::now().timestamp();
    let path = format!("/v1/instances/{id}/metrics");

    // Three collections of the instance once it runs (while it is provisioned, its
    // folders may not exist yet, and its disks rightly say error 1).
    let all = app
        .wait_for("three collections", Duration::from_secs(30), || async {
            let (status, body) = app.api(Method::GET, &path).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let lines = parse(&body);
            let after = lines.iter().map(|l| l.at).filter(|at| *at > provisioned_at).collect::<BTreeSet<_>>();
            (after.len() >= 3).then_some(lines)
        })
        .await;
    let deployment = server::metrics::deployment_name(&id);
    let namespace = format!("org-a.space-1.{id}.{deployment}.redis.0.");
    let now = chrono::Utc::now().timestamp();
    for line in &all {
        assert!(line.path.starts_with(&namespace), "{}", line.path);
        assert!((now - 60..=now + 1).contains(&line.at), "{}", line.at);
    }

    let (status, body) = app.api(Method::GET, &format!("{path}?quantity=1")).await;
    assert_eq!(status, StatusCode::OK);
    let newest = parse(&body);
    assert_eq!(newest.iter().map(|l| l.at).collect::<BTreeSet<_>>().len(), 1, "one collection");
    let (_, body) = app.api(Method::GET, &format!("{path}?quantity=2")).await;
    assert_eq!(parse(&body).iter().map(|l| l.at).collect::<BTreeSet<_>>().len(), 2);
    let point: HashMap<String, i64> =
        newest.iter().map(|l| (l.path.strip_prefix(&namespace).unwrap().to_owned(), l.value)).collect();
    let get = |name: &str| *point.get(name).unwrap_or_else(|| panic!("{name} missing from {point:?}"));

    for section in ["cpu", "load", "memory", "swap", "disk"] {
        assert_eq!(get(&format!("system.{section}.error")), 0, "{section}");
    }
    // Memory: the total is the machine's, as `free` reports it; used follows the
    // reference's formula, so it is below total.
    let free = command("free", &["-b"]);
    let mem_total: i64 =
        free.lines().find(|l| l.starts_with("Mem:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(get("system.memory.total"), mem_total);
    assert!(get("system.memory.used") > 0 && get("system.memory.used") < mem_total);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib = |field: &str| -> i64 {
        let line = meminfo.lines().find(|l| l.starts_with(&format!("{field}:"))).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<i64>().unwrap() * 1024
    };
    // The reference's formula, against /proc/meminfo read a moment later: close, not equal.
    let expected = kib("MemTotal") - kib("MemFree") - kib("Cached") - kib("Buffers") - kib("SReclaimable");
    assert!(
        (get("system.memory.used") - expected).abs() < 512 << 20,
        "used {} vs {expected}",
        get("system.memory.used")
    );
    // One set of CPU times per CPU, in milliseconds since boot.
    // /proc/stat lists the online CPUs.
    let cpus: usize = command("getconf", &["_NPROCESSORS_ONLN"]).trim().parse().unwrap();
    for n in 0..cpus {
        assert!(get(&format!("system.cpu{n}.user")) + get(&format!("system.cpu{n}.idle")) > 0);
    }
    assert!(!point.contains_key(&format!("system.cpu{cpus}.user")));
    // Disks: the node's folders' filesystems, as df (statvfs) sees them.
    let layout = app.layout(&id).await;
    for (name, folder) in
        [("persistent", layout.persistent()), ("ephemeral", layout.ephemeral()), ("system", layout.system())]
    {
        assert_eq!(get(&format!("system.disk.{name}.error")), 0, "{name}");
        assert_eq!(get(&format!("system.disk.{name}.total")), df("size", &folder), "{name}");
        let (used, free) = (get(&format!("system.disk.{name}.used")), get(&format!("system.disk.{name}.free")));
        // Other tests write to the same disk meanwhile: close, not equal.
        assert!((used - df("used", &folder)).abs() < 1 << 30, "{name} used {used}");
        assert!((free - df("avail", &folder)).abs() < 1 << 30, "{name} free {free}");
    }
    // The engine's processes, and the parachute watching the persistent disk.
    assert_eq!(get("process.running"), 1);
    assert!(get("process.rss") > 1 << 20);
    assert_eq!((get("parachute.error"), get("parachute.activated")), (0, 0));
    assert_eq!(get("parachute.disk.persistent.used_threshold"), 100);
    assert_eq!(get("parachute.disk.persistent.total"), get("system.disk.persistent.total"));
    let percent = get("parachute.disk.persistent.used_percent");
    let (used, free) = (get("parachute.disk.persistent.used"), get("parachute.disk.persistent.free"));
    assert_eq!(percent, used * 100 / (used + free));
    assert!(!point.contains_key("parachute.disk.ephemeral.used_threshold"), "not watched by default");

    // Bad quantities, other tenants, unknown instances.
    for bad in ["0", "-1", "abc", "1.5"] {
        let (status, body) = app.api(Method::GET, &format!("{path}?quantity={bad}")).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidQuantity")), "{bad}");
    }
    let other = user_token(app.state(), "mallory", "org-b").await;
    assert_eq!(app.api_as(&other, Method::GET, &path, None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.api(Method::GET, "/v1/instances/nope/metrics").await.0, StatusCode::NOT_FOUND);

    // The same lines reach Graphite.
    let (mut socket, _) = tokio::time::timeout(Duration::from_secs(10), graphite.accept()).await.unwrap().unwrap();
    let mut received = String::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_string(&mut received)).await.unwrap().unwrap();
    let memory_line = received.lines().find(|l| l.starts_with(&format!("{namespace}system.memory.total "))).unwrap();
    assert_eq!(memory_line.split(' ').nth(1).unwrap().parse::<i64>().unwrap(), mem_total);

    // svcdash's own figures for Prometheus, for its token only.
    let url = format!("{}/metrics", app.base);
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let wrong = app.client.get(&url).bearer_auth("scrape-secret-012345678X").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.headers()["www-authenticate"], "Bearer");
    // Made-up methods share one label.
    let odd = reqwest::Method::from_bytes(b"FROBNICATE").unwrap();
    app.client.request(odd, format!("{}{path}", app.base)).send().await.unwrap();
    let res = app.client.get(&url).bearer_auth("scrape-secret-0123456789").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    assert!(text.contains(r#"svcdash_jobs{kind="provision",status="done"} 1"#), "{text}");
    assert!(text.contains(r#"svcdash_job_duration_seconds_count{kind="provision",status="done"} 1"#), "{text}");
    let requests = text
        .lines()
        .find(|l| {
            l.starts_with("svcdash_http_requests_total{")
                && l.contains(r#"route="/v1/instances/{instance_id}/metrics""#)
                && l.contains(r#"status="400""#)
        })
        .unwrap_or_else(|| panic!("{text}"));
    assert!(requests.ends_with(" 4"), "{requests}");
    assert!(!text.contains(&id), "instance ids stay out of the labels");
    assert!(text.contains(r#"method="other""#) && !text.contains("FROBNICATE"), "{text}");
}

#[tokio::test]
async fn prometheus_endpoint_is_off_without_a_token() {
    let app = TestApp::start().await;
    let res = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["description"].as_str().unwrap().contains("prometheus_token"), "{body}");
}

#[tokio::test]
async fn metrics_answers_hold_at_most_max_quantity_collections() {
    let dir = data_dir();
    let mut config = config(dir.path());
    config.metrics.interval_secs = 1;
    config.metrics.max_quantity = 2;
    let app = TestApp::start_in(dir.path(), config).await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let path = format!("/v1/instances/{id}/metrics");
    app.wait_for("four kept collections", Duration::from_secs(30), || async {
        (app.state().metrics.history.samples(&id, 0, None).len() >= 4).then_some(())
    })
    .await;
    let collections = |body: &serde_json::Value| parse(body).iter().map(|l| l.at).collect::<BTreeSet<_>>().len();

    // Without quantity: the newest max_quantity, not the whole history.
    let (status, body) = app.api(Method::GET, &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(collections(&body), 2);
    let (status, body) = app.api(Method::GET, &format!("{path}?quantity=2")).await;
    assert_eq!((status, collections(&body)), (StatusCode::OK, 2));
    for above in ["3", "1000000", "99999999999999999999999999"] {
        let (status, body) = app.api(Method::GET, &format!("{path}?quantity={above}")).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidQuantity")), "{above}");
        assert!(body["description"].as_str().unwrap().contains("maximum of 2"), "{body}");
    }
}
