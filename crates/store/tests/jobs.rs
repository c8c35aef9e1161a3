//! The job queue's guarantees, against the SQLite store.

use api_types::TaskStatus;
use store::*;

fn new_instance(name: &str, guid: &str) -> NewInstance {
    NewInstance {
        guid: guid.into(),
        name: name.into(),
        service_id: "svc".into(),
        plan_id: "plan".into(),
        tenant_id: "t".into(),
        tenant_name: None,
        subtenant_id: "s".into(),
        subtenant_name: None,
        backup_guid: format!("backup-{guid}"),
        local_name: format!("sd-{name}"),
        version: "1".into(),
    }
}

async fn instance(store: &SqliteStore, name: &str) -> (Instance, Job) {
    store.create_instance(new_instance(name, &format!("guid-{name}"))).await.unwrap()
}

#[tokio::test]
async fn one_job_runs_per_instance_and_the_next_waits_in_the_queue() {
    let store = SqliteStore::in_memory().await.unwrap();
    let (a, provision_a) = instance(&store, "a").await;
    let (_b, provision_b) = instance(&store, "b").await;
    let key = store.add_key(a.id, KeyKind::Generated, "sealed").await.unwrap();
    let backup = store
        .enqueue_backup(NewBackup { instance_id: a.id, key_id: key.id, object_key_template: "a/{seq}".into() })
        .await
        .unwrap();
    assert_eq!(backup.seq, 1);
    assert_eq!(backup.object_key, "a/1");
    assert_eq!(backup.status(), TaskStatus::Queued);

    // a's provision runs; a's backup must wait for it, b's provision need not.
    assert_eq!(store.claim_next_job().await.unwrap().unwrap().id, provision_a.id);
    assert_eq!(store.claim_next_job().await.unwrap().unwrap().id, provision_b.id);
    assert_eq!(store.claim_next_job().await.unwrap(), None);

    store.finish_job(provision_a.id, TaskStatus::Done, None).await.unwrap();
    let next = store.claim_next_job().await.unwrap().unwrap();
    assert_eq!(next.id, backup.job.id);
    assert_eq!(store.backup(backup.id).await.unwrap().status(), TaskStatus::Running);
}

#[tokio::test]
async fn interrupted_backups_fail_and_interrupted_provisioning_is_queued_again() {
    let store = SqliteStore::in_memory().await.unwrap();
    let (a, provision) = instance(&store, "a").await;
    store.claim_next_job().await.unwrap();
    store.finish_job(provision.id, TaskStatus::Done, None).await.unwrap();
    let key = store.add_key(a.id, KeyKind::Generated, "sealed").await.unwrap();
    let backup = store
        .enqueue_backup(NewBackup { instance_id: a.id, key_id: key.id, object_key_template: "a/{seq}".into() })
        .await
        .unwrap();
    store.claim_next_job().await.unwrap();
    let (_, provision_b) = instance(&store, "b").await;
    store.claim_next_job().await.unwrap();

    let failed = store.recover_interrupted_jobs("svcdash stopped").await.unwrap();
    assert_eq!(failed.iter().map(|j| j.id).collect::<Vec<_>>(), [backup.job.id]);
    let backup = store.backup(backup.id).await.unwrap();
    assert_eq!(backup.status(), TaskStatus::Failed);
    assert_eq!(backup.job.error.as_deref(), Some("svcdash stopped"));
    assert_eq!(store.job(provision_b.id).await.unwrap().status, TaskStatus::Queued);
}

#[tokio::test]
async fn sequence_numbers_are_per_instance_and_lists_are_newest_first() {
    let store = SqliteStore::in_memory().await.unwrap();
    let (a, _) = instance(&store, "a").await;
    let (b, _) = instance(&store, "b").await;
    for i in [&a, &b, &a] {
        let key = store.add_key(i.id, KeyKind::Generated, "k").await.unwrap();
        store
            .enqueue_backup(NewBackup { instance_id: i.id, key_id: key.id, object_key_template: "{seq}".into() })
            .await
            .unwrap();
    }
    let seqs: Vec<i64> = store.backups(a.id).await.unwrap().iter().map(|b| b.seq).collect();
    assert_eq!(seqs, [2, 1]);
    assert_eq!(store.backups(b.id).await.unwrap()[0].seq, 1);
}

#[tokio::test]
async fn a_live_instance_name_is_taken_once() {
    let store = SqliteStore::in_memory().await.unwrap();
    instance(&store, "a").await;
    let again = store.create_instance(new_instance("a", "other")).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_backups_of_one_instance_all_get_their_own_number() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(&dir.path().join("state.db")).await.unwrap());
    let (a, _) = instance(&store, "a").await;
    let key = store.add_key(a.id, KeyKind::Generated, "k").await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .enqueue_backup(NewBackup {
                        instance_id: a.id,
                        key_id: key.id,
                        object_key_template: "{seq}".into(),
                    })
                    .await
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap().expect("a concurrent backup was refused").seq);
    }
    seqs.sort();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_database_opened_by_several_processes_at_once_is_migrated_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let path = path.clone();
            tokio::spawn(async move { SqliteStore::open(&path).await.map(|_| ()) })
        })
        .collect();
    for open in opens {
        open.await.unwrap().expect("a concurrent open failed");
    }
}
