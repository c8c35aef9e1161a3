//! The job queue's guarantees, against the SQLite store.

use api_types::TaskStatus;
use store::*;

fn new_instance(name: &str, guid: &str) -> NewInstance {
    new_instance_of("t", name, guid)
}

fn new_instance_of(tenant: &str, name: &str, guid: &str) -> NewInstance {
    NewInstance {
        guid: guid.into(),
        name: name.into(),
        service_id: "svc".into(),
        plan_id: "plan".into(),
        tenant_id: tenant.into(),
        tenant_name: None,
        subtenant_id: "s".into(),
        subtenant_name: None,
        backup_guid: format!("backup-{guid}"),
        local_name: format!("sd-{name}"),
        version: "1".into(),
        continuous_archiving: false,
        restore_from: None,
    }
}

async fn instance(store: &SqliteStore, name: &str) -> (Instance, Job) {
    store.create_instance(new_instance(name, &format!("guid-{name}"))).await.unwrap()
}

fn backup_of(instance: &Instance, key: &InstanceKey) -> NewBackup {
    NewBackup { instance_id: instance.id, key_id: key.id, object_key_template: "{seq}".into() }
}

/// An instance whose provision job ran.
async fn provisioned(store: &SqliteStore, name: &str) -> (Instance, InstanceKey) {
    let (i, provision) = instance(store, name).await;
    assert_eq!(store.claim_next_job().await.unwrap().unwrap().id, provision.id);
    store.finish_job(provision.id, TaskStatus::Done, None).await.unwrap();
    let key = store.add_key(i.id, KeyKind::Generated, "k").await.unwrap();
    (i, key)
}

#[tokio::test]
async fn one_job_runs_per_instance_and_the_next_waits_in_the_queue() {
    let store = SqliteStore::temporary().await.unwrap();
    let (a, provision_a) = instance(&store, "a").await;
    let (_b, provision_b) = instance(&store, "b").await;
    let key = store.add_key(a.id, KeyKind::Generated, "sealed").await.unwrap();
    let backup = store
        .enqueue_backup(NewBackup { instance_id: a.id, key_id: key.id, object_key_template: "a/{seq}".into() })
        .await
        .unwrap()
        .into_backup();
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
    let store = SqliteStore::temporary().await.unwrap();
    let (a, provision) = instance(&store, "a").await;
    store.claim_next_job().await.unwrap();
    store.finish_job(provision.id, TaskStatus::Done, None).await.unwrap();
    let key = store.add_key(a.id, KeyKind::Generated, "sealed").await.unwrap();
    let backup = store
        .enqueue_backup(NewBackup { instance_id: a.id, key_id: key.id, object_key_template: "a/{seq}".into() })
        .await
        .unwrap()
        .into_backup();
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
    let store = SqliteStore::temporary().await.unwrap();
    let (a, _) = instance(&store, "a").await;
    let (b, _) = instance(&store, "b").await;
    for i in [&a, &b, &a] {
        let key = store.add_key(i.id, KeyKind::Generated, "k").await.unwrap();
        let queued = store.enqueue_backup(backup_of(i, &key)).await.unwrap().into_backup();
        // One queued backup per instance: this one is done before the next is asked for.
        store.finish_job(queued.job.id, TaskStatus::Done, None).await.unwrap();
    }
    let seqs: Vec<i64> = store.backups(a.id).await.unwrap().iter().map(|b| b.seq).collect();
    assert_eq!(seqs, [2, 1]);
    assert_eq!(store.backups(b.id).await.unwrap()[0].seq, 1);
}

/// Lists are read folded into one JSON value; what they hold must be what the
/// row-by-row reads of one backup or restore give, text escapes and all.
#[tokio::test]
async fn listed_backups_and_restores_read_back_as_stored() {
    let store = SqliteStore::temporary().await.unwrap();
    let (a, key) = provisioned(&store, "a").await;
    let done = store.enqueue_backup(backup_of(&a, &key)).await.unwrap().into_backup();
    store.claim_next_job().await.unwrap();
    store.record_backup_object(done.id, 1234, "ab12", 5678).await.unwrap();
    store.finish_job(done.job.id, TaskStatus::Done, None).await.unwrap();
    let failed = store.enqueue_backup(backup_of(&a, &key)).await.unwrap().into_backup();
    store.claim_next_job().await.unwrap();
    let error = "pg_dump: \"quoted\", a back\\slash,\na new line and ünïcode";
    store.finish_job(failed.job.id, TaskStatus::Failed, Some(error)).await.unwrap();
    let restore = store.enqueue_restore(a.id, done.id, &[0, 1]).await.unwrap();

    let listed = store.backups(a.id).await.unwrap();
    assert_eq!(listed, [store.backup_by_seq(a.id, 2).await.unwrap(), store.backup_by_seq(a.id, 1).await.unwrap()]);
    assert_eq!(listed[0].job.error.as_deref(), Some(error));
    assert_eq!(
        (listed[1].size, listed[1].plain_size, listed[1].sha256.as_deref()),
        (Some(1234), Some(5678), Some("ab12"))
    );
    let restores = store.restores(a.id).await.unwrap();
    assert_eq!(restores, [store.restore_by_seq(a.id, restore.seq).await.unwrap()]);
    assert_eq!(restores[0].jobs.iter().map(|j| j.node_index).collect::<Vec<_>>(), [Some(0), Some(1)]);
    assert!(store.backups(a.id + 1).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_backup_listing_reads_as_its_parts_do() {
    let store = SqliteStore::temporary().await.unwrap();
    let (a, key) = provisioned(&store, "a").await;
    let (b, _) = provisioned(&store, "b").await;
    let first = store.enqueue_backup(backup_of(&a, &key)).await.unwrap().into_backup();
    store.claim_next_job().await.unwrap();
    store.record_backup_object(first.id, 1234, "ab12", 5678).await.unwrap();
    store.finish_job(first.job.id, TaskStatus::Done, None).await.unwrap();
    store.enqueue_backup(backup_of(&a, &key)).await.unwrap();

    let listing = store.backup_listing(&a.guid).await.unwrap();
    assert_eq!(listing.instance, store.instance_by_guid(&a.guid).await.unwrap());
    assert_eq!(listing.backups, store.backups(a.id).await.unwrap());
    assert_eq!(listing.backups.iter().map(|b| b.seq).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(listing.personal_key, None, "only a generated key so far");

    store.add_key(a.id, KeyKind::Personal, "sealed-1").await.unwrap();
    let newest = store.add_key(a.id, KeyKind::Personal, "sealed-2").await.unwrap();
    let listing = store.backup_listing(&a.guid).await.unwrap();
    assert_eq!(listing.personal_key.as_ref(), Some(&newest));
    assert_eq!(listing.personal_key, Some(store.current_key(a.id, KeyKind::Personal).await.unwrap()));

    let other = store.backup_listing(&b.guid).await.unwrap();
    assert_eq!((other.instance.id, other.backups.len(), other.personal_key), (b.id, 0, None));
    let unknown = store.backup_listing("no-such-instance").await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
}

/// The listing's version when it changed since `known`; `None` when the store
/// found it unchanged (and read only the instance). The Backups page's overview
/// agrees: read again at the same moments, and then as a whole read reads it.
async fn changed_since(store: &SqliteStore, instance: &Instance, known: i64) -> Option<i64> {
    let defaults = BackupSettings { min_backup_count: 3, retention_time_days: 14, exclude_from_auto_backup: false };
    let overview = store.backups_overview_unless(&instance.guid, Some(known), defaults).await.unwrap();
    let listing = store.backup_listing_unless(&instance.guid, Some(known)).await.unwrap();
    match (listing, overview) {
        (ListingRead::Changed(listing), OverviewRead::Changed(overview)) => {
            assert_eq!(listing, store.backup_listing(&instance.guid).await.unwrap());
            assert_eq!(overview, store.backups_overview(&instance.guid, defaults).await.unwrap());
            assert_eq!(overview.listing, listing);
            Some(listing.version)
        }
        (ListingRead::Unchanged(read), OverviewRead::Unchanged(overview_read)) => {
            assert_eq!(&read, instance);
            assert_eq!(&overview_read, instance);
            None
        }
        (listing, overview) => panic!("the listing and the overview disagree: {listing:?}, {overview:?}"),
    }
}

#[tokio::test]
async fn a_listing_is_read_again_only_once_what_it_shows_changed() {
    let store = SqliteStore::temporary().await.unwrap();
    let (a, key) = provisioned(&store, "a").await;
    let (b, _) = provisioned(&store, "b").await;
    let mut version = store.backup_listing(&a.guid).await.unwrap().version;
    let b_version = store.backup_listing(&b.guid).await.unwrap().version;
    assert_eq!(changed_since(&store, &a, version).await, None);

    // Each step changes what a's listing shows: it moves a's version on, never
    // back to one seen before, and leaves b's alone.
    let backup = store.enqueue_backup(backup_of(&a, &key)).await.unwrap().into_backup();
    let mut seen = vec![version];
    let mut step = async |what: &str, version: &mut i64| {
        let next = changed_since(&store, &a, *version).await;
        let next = next.unwrap_or_else(|| panic!("{what} left the listing's version at {version}"));
        assert!(!seen.contains(&next), "{what}: version {next} again");
        seen.push(next);
        *version = next;
        assert_eq!(changed_since(&store, &a, next).await, None, "{what}: read again unchanged");
        assert_eq!(changed_since(&store, &b, b_version).await, None, "{what} changed another instance's listing");
    };
    step("queuing a backup", &mut version).await;
    store.claim_next_job().await.unwrap();
    step("starting its job", &mut version).await;
    store.record_backup_object(backup.id, 1234, "ab12", 5678).await.unwrap();
    step("recording its object", &mut version).await;
    store.finish_job(backup.job.id, TaskStatus::Done, None).await.unwrap();
    step("finishing its job", &mut version).await;
    store.add_key(a.id, KeyKind::Personal, "sealed").await.unwrap();
    step("a new personal key", &mut version).await;
    store.mark_backup_deleted(backup.id).await.unwrap();
    step("deleting the backup", &mut version).await;

    // What the Backups page shows beside the listing moves the version on too.
    let settings = BackupSettings { min_backup_count: 1, retention_time_days: 2, exclude_from_auto_backup: true };
    store.update_backup_settings(a.id, settings, None).await.unwrap();
    step("the instance's own backup settings", &mut version).await;
    let settings = BackupSettings { min_backup_count: 2, ..settings };
    store.update_backup_settings(a.id, settings, None).await.unwrap();
    step("changing those settings", &mut version).await;
    let kept = store.enqueue_backup(backup_of(&a, &key)).await.unwrap().into_backup();
    let job = store.claim_next_job().await.unwrap().unwrap();
    store.finish_job(job.id, TaskStatus::Done, None).await.unwrap();
    step("a second backup", &mut version).await;
    let restore = store.enqueue_restore(a.id, kept.id, &[0]).await.unwrap();
    step("queuing a restore", &mut version).await;
    store.set_restore_timeline(restore.id, 2, chrono::Utc::now()).await.unwrap();
    step("recording the restore's timeline", &mut version).await;
    let node = NewNode {
        instance_id: a.id,
        index: 1,
        port: 42001,
        extra_ports: Vec::new(),
        admin_user: "admin".into(),
        sealed_password: "sealed".into(),
        role: None,
    };
    store.upsert_node(node).await.unwrap();
    step("a new node", &mut version).await;

    let unknown = store.backup_listing_unless("no-such-instance", Some(version)).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
    let defaults = BackupSettings { min_backup_count: 3, retention_time_days: 14, exclude_from_auto_backup: false };
    let unknown = store.backups_overview_unless("no-such-instance", Some(version), defaults).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
}

#[tokio::test]
async fn the_backups_overview_reads_as_its_parts_do() {
    let store = SqliteStore::temporary().await.unwrap();
    let (a, key) = provisioned(&store, "a").await;
    let (b, _) = provisioned(&store, "b").await;
    let defaults = BackupSettings { min_backup_count: 3, retention_time_days: 14, exclude_from_auto_backup: false };
    let overview = store.backups_overview(&a.guid, defaults).await.unwrap();
    assert_eq!(overview.listing, store.backup_listing(&a.guid).await.unwrap());
    assert_eq!((overview.restores.len(), overview.settings, overview.nodes), (0, defaults, 0));

    let backup = store.enqueue_backup(backup_of(&a, &key)).await.unwrap().into_backup();
    store.claim_next_job().await.unwrap();
    store.finish_job(backup.job.id, TaskStatus::Done, None).await.unwrap();
    store.enqueue_restore(a.id, backup.id, &[0, 1, 2]).await.unwrap();
    while let Some(job) = store.claim_next_job().await.unwrap() {
        store.finish_job(job.id, TaskStatus::Done, None).await.unwrap();
    }
    store.enqueue_restore(a.id, backup.id, &[1]).await.unwrap();
    let own = BackupSettings { min_backup_count: 1, retention_time_days: 2, exclude_from_auto_backup: true };
    store.update_backup_settings(a.id, own, None).await.unwrap();
    for index in 0..3 {
        let node = NewNode {
            instance_id: a.id,
            index,
            port: 42000 + index as u16,
            extra_ports: Vec::new(),
            admin_user: "admin".into(),
            sealed_password: "sealed".into(),
            role: None,
        };
        store.upsert_node(node).await.unwrap();
    }
    store.add_key(a.id, KeyKind::Personal, "sealed-1").await.unwrap();

    let overview = store.backups_overview(&a.guid, defaults).await.unwrap();
    assert_eq!(overview.listing, store.backup_listing(&a.guid).await.unwrap());
    assert!(overview.listing.personal_key.is_some());
    assert_eq!(overview.restores, store.restores(a.id).await.unwrap());
    let jobs: Vec<Vec<Option<i64>>> =
        overview.restores.iter().map(|r| r.jobs.iter().map(|j| j.node_index).collect()).collect();
    assert_eq!(jobs, [vec![Some(1)], vec![Some(0), Some(1), Some(2)]], "newest first, each with its own jobs");
    assert_eq!(overview.settings, own);
    assert_eq!(overview.settings, store.backup_settings(a.id, defaults).await.unwrap());
    assert_eq!(overview.nodes, store.nodes(a.id).await.unwrap().len());
    assert_eq!(overview.nodes, 3);

    let other = store.backups_overview(&b.guid, defaults).await.unwrap();
    assert_eq!((other.restores.len(), other.settings, other.nodes), (0, defaults, 0), "nothing of a's");
    let unknown = store.backups_overview("no-such-instance", defaults).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
}

#[tokio::test]
async fn a_live_instance_name_is_taken_once() {
    let store = SqliteStore::temporary().await.unwrap();
    instance(&store, "a").await;
    let again = store.create_instance(new_instance("a", "other")).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_backup_requests_for_one_instance_queue_one_backup() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(&dir.path().join("state.db")).await.unwrap());
    let (a, _) = instance(&store, "a").await;
    let key = store.add_key(a.id, KeyKind::Generated, "k").await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (store, new) = (store.clone(), backup_of(&a, &key));
            tokio::spawn(async move { store.enqueue_backup(new).await })
        })
        .collect();
    let mut queued = Vec::new();
    let mut answered_with = std::collections::BTreeSet::new();
    for task in tasks {
        let request = task.await.unwrap().expect("a concurrent backup request failed");
        answered_with.insert(request.backup().id);
        if let BackupRequest::Queued(b) = request {
            queued.push(b.seq);
        }
    }
    assert_eq!(queued, [1], "exactly one request queues a backup");
    assert_eq!(answered_with.len(), 1, "every request is answered with that backup");
    assert_eq!(store.backups(a.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_queued_backup_answers_further_requests_until_it_runs() {
    let store = SqliteStore::temporary().await.unwrap();
    let (a, key) = provisioned(&store, "a").await;
    let (b, key_b) = provisioned(&store, "b").await;
    let first = store.enqueue_backup(backup_of(&a, &key)).await.unwrap();
    let BackupRequest::Queued(first) = first else { panic!("{first:?}") };
    let again = store.enqueue_backup(backup_of(&a, &key)).await.unwrap();
    assert_eq!(again, BackupRequest::AlreadyQueued(first.clone()));
    // Another instance's queue is its own.
    assert!(matches!(store.enqueue_backup(backup_of(&b, &key_b)).await.unwrap(), BackupRequest::Queued(_)));

    // A scheduled slot with a backup queued records the slot and queues nothing.
    let slot = chrono::Utc::now();
    let scheduled = store.enqueue_scheduled_backup(backup_of(&a, &key), slot).await.unwrap();
    assert_eq!(scheduled, BackupRequest::AlreadyQueued(first.clone()));
    assert_eq!(store.last_scheduled_slot(a.id).await.unwrap(), Some(slot));

    // Once it runs, the next request queues a new one (one running, one queued).
    let running = store.claim_next_job().await.unwrap().unwrap();
    assert_eq!(running.id, first.job.id);
    let next = store.enqueue_backup(backup_of(&a, &key)).await.unwrap();
    assert!(matches!(&next, BackupRequest::Queued(b) if b.seq == 2), "{next:?}");
    let again = store.enqueue_backup(backup_of(&a, &key)).await.unwrap();
    assert_eq!(again, BackupRequest::AlreadyQueued(next.into_backup()));
    assert_eq!(store.backups(a.id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_second_restore_is_refused_while_one_is_queued() {
    let store = SqliteStore::temporary().await.unwrap();
    let (a, key) = provisioned(&store, "a").await;
    let backup = store.enqueue_backup(backup_of(&a, &key)).await.unwrap().into_backup();
    store.claim_next_job().await.unwrap();
    store.finish_job(backup.job.id, TaskStatus::Done, None).await.unwrap();

    let first = store.enqueue_restore(a.id, backup.id, &[0]).await.unwrap();
    let second = store.enqueue_restore(a.id, backup.id, &[0]).await;
    match second {
        Err(StoreError::Conflict(why)) => assert!(why.contains("restore 1 (of backup 1) is queued"), "{why}"),
        other => panic!("a second queued restore: {other:?}"),
    }
    assert_eq!(store.restores(a.id).await.unwrap().len(), 1, "the refused restore left nothing behind");
    // Once the first runs, another may wait behind it.
    assert_eq!(store.claim_next_job().await.unwrap().unwrap().restore_id, Some(first.id));
    assert_eq!(store.enqueue_restore(a.id, backup.id, &[0]).await.unwrap().seq, 2);
}

#[tokio::test]
async fn the_tenant_with_fewer_running_jobs_goes_first() {
    let store = SqliteStore::temporary().await.unwrap();
    // Tenant A asks for five instances at once; tenant B for one, later.
    let mut a_jobs = Vec::new();
    for n in 0..5 {
        let (_, job) =
            store.create_instance(new_instance_of("A", &format!("a{n}"), &format!("guid-a{n}"))).await.unwrap();
        a_jobs.push(job.id);
    }
    let b_job = store.create_instance(new_instance_of("B", "b", "guid-b")).await.unwrap().1.id;

    // Two free workers: the first takes A's oldest, the second B's job although A's
    // are older; then A's in order.
    let first = store.claim_next_job().await.unwrap().unwrap();
    let second = store.claim_next_job().await.unwrap().unwrap();
    assert_eq!((first.id, second.id), (a_jobs[0], b_job));
    let third = store.claim_next_job().await.unwrap().unwrap();
    assert_eq!(third.id, a_jobs[1]);

    // With B idle again and A still running two, B's next job goes before A's queue.
    store.finish_job(b_job, TaskStatus::Done, None).await.unwrap();
    let (_, b_again) = store.create_instance(new_instance_of("B", "b2", "guid-b2")).await.unwrap();
    assert_eq!(store.claim_next_job().await.unwrap().unwrap().id, b_again.id);
    // With nothing of B's queued, A's queue goes on, oldest first.
    store.finish_job(b_again.id, TaskStatus::Done, None).await.unwrap();
    store.finish_job(first.id, TaskStatus::Done, None).await.unwrap();
    assert_eq!(store.claim_next_job().await.unwrap().unwrap().id, a_jobs[2]);
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

#[tokio::test]
async fn node_ports_are_every_instances_ports_running_or_not() {
    let store = SqliteStore::temporary().await.unwrap();
    let (a, _) = instance(&store, "a").await;
    let (b, _) = instance(&store, "b").await;
    let node = |instance_id, index, port, extra_ports: Vec<u16>| NewNode {
        instance_id,
        index,
        port,
        extra_ports,
        admin_user: "admin".into(),
        sealed_password: "sealed".into(),
        role: None,
    };
    store.upsert_node(node(a.id, 0, 41000, vec![41001])).await.unwrap();
    store.upsert_node(node(a.id, 1, 41002, vec![41003])).await.unwrap();
    store.upsert_node(node(b.id, 0, 42000, vec![])).await.unwrap();
    let (gone, _) = instance(&store, "gone").await;
    store.upsert_node(node(gone.id, 0, 43000, vec![43001])).await.unwrap();
    store.set_instance_state(gone.id, InstanceState::Deleted, None).await.unwrap();
    let mut ports = store.node_ports().await.unwrap();
    ports.sort_unstable();
    assert_eq!(ports, [41000, 41001, 41002, 41003, 42000], "a deleted instance's ports are free again");
}

#[tokio::test]
async fn a_nodes_role_carries_the_moment_it_was_first_seen_in_it() {
    let store = SqliteStore::temporary().await.unwrap();
    let (a, _) = instance(&store, "a").await;
    let node = |index, role| NewNode {
        instance_id: a.id,
        index,
        port: 41000 + index as u16,
        extra_ports: vec![],
        admin_user: "admin".into(),
        sealed_password: "sealed".into(),
        role,
    };
    let primary = store.upsert_node(node(0, Some(NodeRole::Primary))).await.unwrap();
    let single = store.upsert_node(node(1, None)).await.unwrap();
    assert!(primary.role_since.is_some(), "a role given at creation counts from then");
    assert_eq!(single.role_since, None);
    let before = primary.role_since.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    store.set_node_role(primary.id, Some(NodeRole::Replica)).await.unwrap();
    let now = store.nodes(a.id).await.unwrap().remove(0);
    assert_eq!(now.role, Some(NodeRole::Replica));
    assert!(now.role_since.unwrap() > before, "{:?} after {before:?}", now.role_since);
}
