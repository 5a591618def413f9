//! Backend-generic store behaviour: each function gets a fresh store.

use super::{Harness, failure, key, task};
use mediagate_store::*;
use uuid::Uuid;

pub async fn concurrent_admissions_never_overdraw(h: Harness) {
    let store = h.store.clone();
    let a = store.create_account("a", 1_000).await.unwrap();
    let handles: Vec<_> = (0..200)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.admit_task(task(a.id, 30)).await.unwrap() })
        })
        .collect();
    let mut admitted = 0;
    for h in handles {
        if matches!(h.await.unwrap(), Admission::Admitted) {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 1_000 / 30);
    // Sync admissions are answered before their batch commits (SQLite); a flush makes them visible.
    h.flush().await;
    let bal = store.account_by_name("a").await.unwrap().unwrap().balance_micros;
    assert_eq!(bal, 1_000 - 33 * 30);
    assert_eq!(store.count_tasks(Some(a.id), Some(TaskStatus::Processing)).await.unwrap(), 33);
    let charges = store.ledger("a", 1_000).await.unwrap().iter().filter(|e| e.kind == "charge").count();
    assert_eq!(charges, 33, "one ledger charge per admitted task, none for the refused");
}

pub async fn concurrent_duplicates_of_one_task_uuid_are_charged_once(h: Harness) {
    let store = h.store.clone();
    let a = store.create_account("a", 10_000).await.unwrap();
    let t = task(a.id, 100);
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let s = store.clone();
            // Half sync, half async: both paths meet on the same (account, taskUUID).
            let t = if i % 2 == 0 {
                t.clone()
            } else {
                NewTask { resumable_payload: Some("{}".into()), ..t.clone() }
            };
            tokio::spawn(async move { s.admit_task(t).await.unwrap() })
        })
        .collect();
    let (mut admitted, mut existing) = (0, 0);
    for h in handles {
        match h.await.unwrap() {
            Admission::Admitted => admitted += 1,
            Admission::Existing(r) => {
                assert_eq!(
                    (r.task_uuid, r.status, r.cost_micros),
                    (t.task_uuid, TaskStatus::Processing, 100)
                );
                existing += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((admitted, existing), (1, 49));
    h.flush().await;
    assert_eq!(store.account_by_name("a").await.unwrap().unwrap().balance_micros, 9_900, "charged once");
    let charges: Vec<_> =
        store.ledger("a", 100).await.unwrap().into_iter().filter(|e| e.kind == "charge").collect();
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0].task_uuid.as_deref(), Some(t.task_uuid.to_string().as_str()));
    assert_eq!(store.count_tasks(Some(a.id), None).await.unwrap(), 1);
}

pub async fn replays_failures_refunds_and_restart_settlement(h: Harness) {
    let store = h.store.clone();
    let a = store.create_account("a", 1_000).await.unwrap();
    let t = task(a.id, 100);
    assert!(matches!(store.admit_task(t.clone()).await.unwrap(), Admission::Admitted));
    // A second admission of the same UUID returns the record and charges nothing.
    match store.admit_task(t.clone()).await.unwrap() {
        Admission::Existing(r) => assert_eq!(r.status, TaskStatus::Processing),
        other => panic!("{other:?}"),
    }
    h.flush().await;
    assert_eq!(store.account_by_name("a").await.unwrap().unwrap().balance_micros, 900);
    store
        .finish_task(Finish {
            account_id: a.id,
            task_uuid: t.task_uuid,
            outcome: failure("providerError"),
            webhooks: vec![],
            timings: None,
            attempts: vec![],
        })
        .await
        .unwrap();
    assert_eq!(store.account_by_name("a").await.unwrap().unwrap().balance_micros, 1_000, "refunded");
    // Finishing twice is refused: a task ends once.
    assert!(
        store
            .finish_task(Finish {
                account_id: a.id,
                task_uuid: t.task_uuid,
                outcome: FinishOutcome::Success { results: vec![], outputs: vec![], cost_micros: 0 },
                webhooks: vec![],
                timings: None,
                attempts: vec![],
            })
            .await
            .is_err()
    );
    // A task left processing is failed and refunded at the next start; an async one is resumed.
    let stuck = task(a.id, 250);
    store.admit_task(stuck.clone()).await.unwrap();
    let resumable = NewTask {
        resumable_payload: Some("{\"p\":1}".into()),
        webhook_url: Some("https://h/".into()),
        task_type: "text_to_image".into(),
        dialect: mediagate_core::Dialect::Runway,
        ..task(a.id, 50)
    };
    assert!(matches!(store.admit_task(resumable.clone()).await.unwrap(), Admission::Admitted));
    drop(store);
    let h = h.reopen().await;
    let store = h.store.clone();
    let err = StoredError { code: "taskInterrupted".into(), message: "restart".into(), parameter: vec![] };
    assert_eq!(store.fail_interrupted_tasks(err.clone()).await.unwrap(), 1);
    let rec = store.get_task(a.id, stuck.task_uuid).await.unwrap().unwrap();
    assert_eq!((rec.status, rec.cost_micros), (TaskStatus::Error, 0));
    assert_eq!(rec.error, Some(err));
    assert_eq!(store.account_by_name("a").await.unwrap().unwrap().balance_micros, 950);
    let resumed = store.resumable_tasks().await.unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!(
        (resumed[0].task_uuid, resumed[0].account_name.as_str(), resumed[0].payload.as_str()),
        (resumable.task_uuid, "a", "{\"p\":1}")
    );
    assert_eq!(resumed[0].webhook_url.as_deref(), Some("https://h/"));
    // The dialect it came in by is kept, so its webhooks are rendered in that dialect.
    assert_eq!(resumed[0].dialect, mediagate_core::Dialect::Runway);
    assert_eq!(
        store.get_task(a.id, resumable.task_uuid).await.unwrap().unwrap().dialect,
        mediagate_core::Dialect::Runway
    );
    assert_eq!(rec.dialect, mediagate_core::Dialect::Runware);
    let ledger = store.ledger("a", 10).await.unwrap();
    assert_eq!(ledger.iter().map(|e| e.amount_micros).sum::<i64>(), 950);
    // A failed task may run again under its UUID: charged anew, processing again.
    match store.readmit_failed_task(stuck.clone()).await.unwrap() {
        Admission::Admitted => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(store.account_by_name("a").await.unwrap().unwrap().balance_micros, 700);
    assert!(matches!(store.readmit_failed_task(stuck.clone()).await.unwrap(), Admission::Existing(_)));
    let broke = NewTask { price_micros: 10_000, ..stuck.clone() };
    store
        .finish_task(Finish {
            account_id: a.id,
            task_uuid: stuck.task_uuid,
            outcome: failure("x"),
            webhooks: vec![],
            timings: None,
            attempts: vec![],
        })
        .await
        .unwrap();
    assert!(matches!(
        store.readmit_failed_task(broke).await.unwrap(),
        Admission::InsufficientCredits { balance_micros: 950 }
    ));
    assert!(matches!(store.readmit_failed_task(task(a.id, 1)).await, Err(StoreError::NotFound(_))));
}

pub async fn keys_bootstrap_and_names(h: Harness) {
    let store = h.store.clone();
    assert!(store.bootstrap("default", 10, key(1)).await.unwrap().is_some());
    assert!(store.bootstrap("default", 10, key(2)).await.unwrap().is_none(), "bootstrap runs once");
    let (k, a) = store.key_by_digest([1; 32]).await.unwrap().unwrap();
    assert_eq!((a.name.as_str(), k.status), ("default", KeyStatus::Active));
    assert_eq!(a.balance_micros, 10);
    assert!(store.key_by_digest([9; 32]).await.unwrap().is_none());
    store.set_key_status(k.id, KeyStatus::Revoked).await.unwrap();
    assert!(matches!(store.set_key_status(k.id, KeyStatus::Active).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.create_account("default", 0).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.create_account("bad name", 0).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.grant("nobody", 5, "").await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.grant("default", -5, "").await, Err(StoreError::Invalid(_))));
    // More keys, listed per account, with scopes; suspension.
    store.create_account("b", 0).await.unwrap();
    let scoped = NewKey { scopes: vec!["task:imageInference".into()], description: "web".into(), ..key(3) };
    let k3 = store.create_key("b", scoped).await.unwrap();
    assert_eq!(
        (k3.account_name.as_str(), k3.scopes.as_slice()),
        ("b", &["task:imageInference".to_string()][..])
    );
    assert!(matches!(store.create_key("nobody", key(4)).await, Err(StoreError::NotFound(_))));
    assert_eq!(store.list_keys(None).await.unwrap().len(), 2);
    assert_eq!(store.list_keys(Some("b")).await.unwrap(), vec![k3.clone()]);
    assert!(matches!(store.list_keys(Some("nobody")).await, Err(StoreError::NotFound(_))));
    assert_eq!(store.set_key_status(k3.id, KeyStatus::Disabled).await.unwrap().status, KeyStatus::Disabled);
    assert_eq!(store.set_key_status(k3.id, KeyStatus::Active).await.unwrap().status, KeyStatus::Active);
    assert!(matches!(store.set_key_status(999, KeyStatus::Active).await, Err(StoreError::NotFound(_))));
    let s = store.set_account_status("b", AccountStatus::Suspended).await.unwrap();
    assert_eq!(s.status, AccountStatus::Suspended);
    assert_eq!(store.key_by_digest([3; 32]).await.unwrap().unwrap().1.status, AccountStatus::Suspended);
    assert!(matches!(
        store.set_account_status("nobody", AccountStatus::Active).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.grant("b", 500, "top-up").await.unwrap(), 500);
    let names: Vec<_> = store.list_accounts().await.unwrap().into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["b", "default"]);
    let ledger = store.ledger("b", 10).await.unwrap();
    assert_eq!(
        (ledger[0].kind.as_str(), ledger[0].amount_micros, ledger[0].note.as_str()),
        ("grant", 500, "top-up")
    );
    assert!(store.account_by_name("nobody").await.unwrap().is_none());
}

pub async fn concurrent_admissions_never_pass_the_monthly_spend_cap_and_refunds_give_it_back(h: Harness) {
    let store = h.store.clone();
    let a = store.create_account("a", 1_000_000).await.unwrap();
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(
                async move { s.admit_task(NewTask { spend_cap_micros: 1_000, ..task(a.id, 300) }).await },
            )
        })
        .collect();
    let mut admitted = Vec::new();
    let mut capped = 0;
    for h in handles {
        match h.await.unwrap().unwrap() {
            Admission::Admitted => admitted.push(()),
            Admission::SpendCapReached { spent_micros } => {
                assert_eq!(spent_micros, 900);
                capped += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((admitted.len(), capped), (3, 47), "3 x 300 fits under 1000, a fourth does not");
    h.flush().await;
    assert_eq!(store.month_spend(a.id).await.unwrap(), 900);
    // A failed task is refunded, and its spend with it. (Async, so its admission has committed
    // when it returns and a reader sees the spend: a sync task's is answered before its commit
    // on SQLite, so a reader would need a `flush` first.)
    let t = NewTask { spend_cap_micros: 1_000, resumable_payload: Some("{}".into()), ..task(a.id, 100) };
    assert!(matches!(store.admit_task(t.clone()).await.unwrap(), Admission::Admitted));
    assert_eq!(store.month_spend(a.id).await.unwrap(), 1_000);
    store
        .finish_task(Finish {
            account_id: a.id,
            task_uuid: t.task_uuid,
            outcome: failure("providerError"),
            webhooks: vec![],
            timings: None,
            attempts: vec![],
        })
        .await
        .unwrap();
    assert_eq!(store.month_spend(a.id).await.unwrap(), 900);
    // Without a cap nothing is refused.
    assert!(matches!(store.admit_task(task(a.id, 500)).await.unwrap(), Admission::Admitted));
}

fn output(inline: Option<Vec<u8>>) -> NewOutput {
    NewOutput {
        uuid: Uuid::now_v7(),
        content_type: "image/png".into(),
        extension: "png".into(),
        size: inline.as_ref().map(|d| d.len() as u64).unwrap_or(4096),
        expires_at: i64::MAX / 2,
        inline_data: inline,
    }
}

fn result_item(n: u64) -> mediagate_core::task::ResultItem {
    mediagate_core::task::ResultItem {
        output_uuid: Uuid::new_v4(),
        content_type: "image/png".into(),
        extension: "png".into(),
        seed: Some(n),
        cost_micros: 10,
        completion: None,
        fields: Default::default(),
    }
}

pub async fn partial_results_success_and_outputs_inline_and_as_files(h: Harness) {
    let store = h.store.clone();
    let a = store.create_account("a", 1_000).await.unwrap();
    let t = NewTask { model: Some("m:1@1".into()), resumable_payload: Some("{}".into()), ..task(a.id, 400) };
    assert!(matches!(store.admit_task(t.clone()).await.unwrap(), Admission::Admitted));
    // Every byte value, so an encoding slip (text instead of bytes) shows.
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let first = output(Some(bytes.clone()));
    let first_result = result_item(1);
    store
        .record_partial_results(a.id, t.task_uuid, vec![first_result.clone()], vec![first.clone()])
        .await
        .unwrap();
    let rec = store.get_task(a.id, t.task_uuid).await.unwrap().unwrap();
    assert_eq!((rec.status, rec.results.len()), (TaskStatus::Processing, 1));
    assert_eq!(store.output_data(first.uuid).await.unwrap().as_deref(), Some(&bytes[..]));
    let file = output(None);
    let second = result_item(2);
    store
        .finish_task(Finish {
            account_id: a.id,
            task_uuid: t.task_uuid,
            outcome: FinishOutcome::Success {
                results: vec![first_result.clone(), second.clone()],
                // The partial result's output again: left as it was.
                outputs: vec![first.clone(), file.clone()],
                cost_micros: 250,
            },
            webhooks: vec![],
            timings: None,
            attempts: vec![],
        })
        .await
        .unwrap();
    let rec = store.get_task(a.id, t.task_uuid).await.unwrap().unwrap();
    assert_eq!((rec.status, rec.cost_micros), (TaskStatus::Success, 250));
    assert_eq!(rec.results, vec![first_result, second]);
    assert_eq!(rec.model.as_deref(), Some("m:1@1"));
    assert_eq!(rec.request_hash, vec![7; 32]);
    assert!(rec.finished_at.is_some());
    assert!(store.resumable_tasks().await.unwrap().is_empty(), "a finished task is not resumed");
    assert_eq!(
        store.account_by_name("a").await.unwrap().unwrap().balance_micros,
        750,
        "unused reserve refunded"
    );
    assert_eq!(store.month_spend(a.id).await.unwrap(), 250);
    let o = store.get_output(first.uuid).await.unwrap().unwrap();
    assert_eq!((o.inline, o.size, o.task_uuid, o.account_id), (true, 70_000, Some(t.task_uuid), a.id));
    assert_eq!(store.output_data(first.uuid).await.unwrap().unwrap(), bytes);
    let f = store.get_output(file.uuid).await.unwrap().unwrap();
    assert_eq!(
        (f.inline, f.size, f.extension.as_str(), f.content_type.as_str()),
        (false, 4096, "png", "image/png")
    );
    assert_eq!(store.output_data(file.uuid).await.unwrap(), None);
    assert_eq!(store.get_output(Uuid::new_v4()).await.unwrap(), None);
    // Deleting: only the owner's, once.
    assert_eq!(store.delete_output(a.id + 1, file.uuid).await.unwrap(), None);
    assert_eq!(store.delete_output(a.id, file.uuid).await.unwrap(), Some(f));
    assert_eq!(store.delete_output(a.id, file.uuid).await.unwrap(), None);
    // Finished tasks can be hidden (Runway's delete); a running one cannot.
    let running = task(a.id, 1);
    store.admit_task(running.clone()).await.unwrap();
    h.flush().await;
    assert!(!store.delete_task(a.id, running.task_uuid).await.unwrap());
    assert!(store.delete_task(a.id, t.task_uuid).await.unwrap());
    assert!(!store.delete_task(a.id, t.task_uuid).await.unwrap());
    assert_eq!(store.get_task(a.id, t.task_uuid).await.unwrap(), None);
}

pub async fn uploads_expiry_touch_and_sweep(h: Harness) {
    let store = h.store.clone();
    let a = store.create_account("a", 0).await.unwrap();
    let now = now_ms();
    let kept = NewOutput { expires_at: now + 1_000, ..output(Some(vec![1, 2, 3])) };
    store.insert_upload(a.id, kept.clone(), Some(3_600), UploadQuota::default()).await.unwrap().unwrap();
    let fixed = NewOutput { expires_at: now + 1_000, ..output(None) };
    store.insert_upload(a.id, fixed.clone(), None, UploadQuota::default()).await.unwrap().unwrap();
    let up = store.get_output(kept.uuid).await.unwrap().unwrap();
    assert_eq!((up.task_uuid, up.inline), (None, true));
    let touched = store.touch_output(kept.uuid).await.unwrap().unwrap();
    assert!(touched.expires_at >= now + 3_600_000, "a use keeps an upload keep_secs longer");
    let same = store.touch_output(fixed.uuid).await.unwrap().unwrap();
    assert_eq!(same.expires_at, now + 1_000, "no keep_secs: the expiry is fixed");
    assert_eq!(store.touch_output(Uuid::new_v4()).await.unwrap(), None);
    // The sweep takes the expired ones, oldest first, at most `limit` at a time.
    let old: Vec<NewOutput> =
        (0..3).map(|i| NewOutput { expires_at: now - 10_000 + i, ..output(None) }).collect();
    for o in old.iter().rev() {
        store.insert_upload(a.id, o.clone(), None, UploadQuota::default()).await.unwrap().unwrap();
    }
    let taken = store.take_expired_outputs(now, 2).await.unwrap();
    assert_eq!(taken.iter().map(|o| o.uuid).collect::<Vec<_>>(), vec![old[0].uuid, old[1].uuid]);
    let taken = store.take_expired_outputs(now, 10).await.unwrap();
    assert_eq!(taken.iter().map(|o| o.uuid).collect::<Vec<_>>(), vec![old[2].uuid]);
    assert!(store.take_expired_outputs(now, 10).await.unwrap().is_empty());
    assert!(store.get_output(old[0].uuid).await.unwrap().is_none());
    assert_eq!(store.take_expired_outputs(now + 2_000, 10).await.unwrap().len(), 1, "the fixed one");
    // The same UUID twice is refused.
    assert!(store.insert_upload(a.id, kept.clone(), None, UploadQuota::default()).await.is_err());
}

pub async fn uploads_stay_within_the_account_quota_also_when_concurrent(h: Harness) {
    let store = h.store.clone();
    let a = store.create_account("a", 0).await.unwrap();
    let b = store.create_account("b", 0).await.unwrap();
    let later = now_ms() + 60_000;
    let sized = |size: u64| NewOutput { size, expires_at: later, ..output(None) };
    let quota = UploadQuota { max_files: 3, max_bytes: 1_000 };
    store.insert_upload(a.id, sized(400), None, quota).await.unwrap().unwrap();
    store.insert_upload(a.id, sized(400), None, quota).await.unwrap().unwrap();
    // Bytes: 800 + 300 would pass 1,000; the usage found comes back and nothing is stored.
    let refused = store.insert_upload(a.id, sized(300), None, quota).await.unwrap();
    assert_eq!(refused, Err(UploadUsage { files: 2, bytes: 800 }));
    store.insert_upload(a.id, sized(200), None, quota).await.unwrap().unwrap();
    // Count: a fourth file is refused whatever its size.
    assert_eq!(
        store.insert_upload(a.id, sized(0), None, quota).await.unwrap(),
        Err(UploadUsage { files: 3, bytes: 1_000 })
    );
    assert_eq!(store.upload_usage(a.id).await.unwrap(), UploadUsage { files: 3, bytes: 1_000 });
    // Expired uploads and task outputs do not count; accounts are counted apart.
    let expired = NewOutput { size: 5, expires_at: now_ms() - 1, ..output(None) };
    store.insert_upload(b.id, expired, None, UploadQuota::default()).await.unwrap().unwrap();
    assert_eq!(store.upload_usage(b.id).await.unwrap(), UploadUsage::default());
    // Many at once never pass the quota.
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let s = store.clone();
            let o = sized(10);
            tokio::spawn(async move {
                s.insert_upload(b.id, o, None, UploadQuota { max_files: 5, max_bytes: 0 }).await
            })
        })
        .collect();
    let mut stored = 0;
    for h in handles {
        if h.await.unwrap().unwrap().is_ok() {
            stored += 1;
        }
    }
    assert_eq!(stored, 5);
    assert_eq!(store.upload_usage(b.id).await.unwrap(), UploadUsage { files: 5, bytes: 50 });
}

pub async fn webhook_secrets_deliveries_and_attempts(h: Harness) {
    let store = h.store.clone();
    let a = store.create_account("a", 1_000).await.unwrap();
    let s1 = store.webhook_secret(a.id, "one".into(), false).await.unwrap();
    assert_eq!(s1, "one");
    assert_eq!(store.webhook_secret(a.id, "two".into(), false).await.unwrap(), "one", "kept");
    assert_eq!(store.webhook_secret(a.id, "three".into(), true).await.unwrap(), "three", "rotated");
    assert!(matches!(store.webhook_secret(a.id + 99, "x".into(), false).await, Err(StoreError::NotFound(_))));
    let t = NewTask { webhook_url: Some("https://hook/".into()), ..task(a.id, 10) };
    store.admit_task(t.clone()).await.unwrap();
    let hooks = vec![
        NewWebhook { webhook_id: "wh_b".into(), url: "https://hook/".into(), payload: "{\"n\":1}".into() },
        NewWebhook { webhook_id: "wh_a".into(), url: "https://hook/".into(), payload: "{\"n\":2}".into() },
    ];
    store
        .finish_task(Finish {
            account_id: a.id,
            task_uuid: t.task_uuid,
            outcome: FinishOutcome::Success { results: vec![], outputs: vec![], cost_micros: 10 },
            webhooks: hooks,
            timings: None,
            attempts: vec![],
        })
        .await
        .unwrap();
    let pending = store.pending_webhooks().await.unwrap();
    assert_eq!(pending.iter().map(|d| d.webhook_id.as_str()).collect::<Vec<_>>(), ["wh_a", "wh_b"]);
    assert!(pending.iter().all(|d| d.status == "pending" && d.attempts.is_empty()));
    let failed = WebhookAttempt {
        attempt: 1,
        at: 10,
        status_code: Some(503),
        error: Some("busy".into()),
        duration_ms: 7,
    };
    store.record_webhook_attempt("wh_a", failed.clone(), None).await.unwrap();
    let ok = WebhookAttempt { attempt: 2, at: 20, status_code: Some(200), error: None, duration_ms: 3 };
    store.record_webhook_attempt("wh_a", ok.clone(), Some("delivered")).await.unwrap();
    let gave_up = WebhookAttempt {
        attempt: 1,
        at: 30,
        status_code: None,
        error: Some("refused".into()),
        duration_ms: 1,
    };
    store.record_webhook_attempt("wh_b", gave_up.clone(), Some("failed")).await.unwrap();
    assert!(store.pending_webhooks().await.unwrap().is_empty());
    let all = store.webhook_deliveries(a.id, t.task_uuid).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!((all[0].webhook_id.as_str(), all[0].status.as_str()), ("wh_a", "delivered"));
    assert_eq!(all[0].attempts, vec![failed, ok]);
    assert_eq!(all[0].task_uuid, t.task_uuid.to_string());
    assert_eq!(all[0].payload, "{\"n\":2}");
    assert_eq!((all[1].status.as_str(), all[1].attempts.as_slice()), ("failed", &[gave_up][..]));
    assert!(store.webhook_deliveries(a.id, Uuid::new_v4()).await.unwrap().is_empty());
}

pub async fn limits_overrides_and_recent_counts(h: Harness) {
    let store = h.store.clone();
    let a = store.create_account("a", 1_000_000).await.unwrap();
    let b = store.create_account("b", 0).await.unwrap();
    let wide = LimitValues {
        max_monthly_spend_micros: Some(5_000),
        key_rate_per_sec: Some(2.5),
        ..Default::default()
    };
    store.set_limits("a", None, wide.clone()).await.unwrap();
    let model = LimitValues { max_concurrent: Some(3), max_daily: Some(100), ..Default::default() };
    store.set_limits("a", Some("m:1@1"), model.clone()).await.unwrap();
    store
        .set_limits("b", Some("m:1@1"), LimitValues { max_queued: Some(1), ..Default::default() })
        .await
        .unwrap();
    let all = store.limit_overrides().await.unwrap();
    assert_eq!(
        all.iter().map(|o| (o.account_name.as_str(), o.model.as_deref())).collect::<Vec<_>>(),
        [("a", None), ("a", Some("m:1@1")), ("b", Some("m:1@1"))]
    );
    assert_eq!((all[0].values.clone(), all[1].values.clone(), all[2].account_id), (wide, model, b.id));
    // Replaced, then removed by empty values.
    let replaced = LimitValues { max_concurrent: Some(9), ..Default::default() };
    store.set_limits("a", Some("m:1@1"), replaced.clone()).await.unwrap();
    assert_eq!(store.limit_overrides().await.unwrap()[1].values, replaced);
    store.set_limits("a", Some("m:1@1"), LimitValues::default()).await.unwrap();
    store.set_limits("b", Some("m:1@1"), LimitValues::default()).await.unwrap();
    assert_eq!(store.limit_overrides().await.unwrap().len(), 1);
    assert!(matches!(
        store.set_limits("nobody", None, LimitValues::default()).await,
        Err(StoreError::NotFound(_))
    ));
    // Recent admissions and counts leave out tasks that ended in error.
    let since = now_ms() - 1;
    let on = |m: &str| NewTask { model: Some(m.into()), ..task(a.id, 1) };
    let t1 = on("m:1@1");
    let t2 = on("m:1@1");
    let t3 = on("m:2@1");
    for t in [&t1, &t2, &t3] {
        assert!(matches!(store.admit_task(t.clone()).await.unwrap(), Admission::Admitted));
    }
    store
        .finish_task(Finish {
            account_id: a.id,
            task_uuid: t2.task_uuid,
            outcome: failure("x"),
            webhooks: vec![],
            timings: None,
            attempts: vec![],
        })
        .await
        .unwrap();
    let recent = store.recent_admissions(a.id, "m:1@1", since).await.unwrap();
    assert_eq!(recent.iter().map(|r| r.1).collect::<Vec<_>>(), vec![t1.task_uuid]);
    assert!(recent[0].0 > since);
    let mut counts = store.recent_task_counts(a.id, since).await.unwrap();
    counts.sort();
    assert_eq!(counts, vec![("m:1@1".to_string(), 1), ("m:2@1".to_string(), 1)]);
    assert!(store.recent_task_counts(a.id, now_ms() + 60_000).await.unwrap().is_empty());
    assert_eq!(store.count_tasks(None, None).await.unwrap(), 3);
    assert_eq!(store.count_tasks(Some(a.id), Some(TaskStatus::Error)).await.unwrap(), 1);
    assert_eq!(store.count_tasks(Some(b.id), None).await.unwrap(), 0);
}

pub async fn admin_keys_lifecycle(h: Harness) {
    let store = h.store.clone();
    let k = store.create_admin_key(NewKey { description: "ops".into(), ..key(5) }).await.unwrap();
    assert_eq!(
        (k.status, k.description.as_str(), k.prefix.as_str()),
        (KeyStatus::Active, "ops", "key_00000005")
    );
    let k2 = store.create_admin_key(key(6)).await.unwrap();
    assert_eq!(store.list_admin_keys().await.unwrap(), vec![k.clone(), k2.clone()]);
    assert_eq!(store.admin_key_by_digest([5; 32]).await.unwrap(), Some(k.clone()));
    assert_eq!(store.admin_key_by_digest([7; 32]).await.unwrap(), None);
    assert!(store.create_admin_key(key(5)).await.is_err(), "a digest is stored once");
    assert_eq!(
        store.set_admin_key_status(k.id, KeyStatus::Revoked).await.unwrap().status,
        KeyStatus::Revoked
    );
    assert!(matches!(
        store.set_admin_key_status(k.id, KeyStatus::Active).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.set_admin_key_status(999, KeyStatus::Revoked).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.admin_key_by_digest([5; 32]).await.unwrap().unwrap().status, KeyStatus::Revoked);
}

pub async fn usage_by_day_nets_charges_and_refunds(h: Harness) {
    let store = h.store.clone();
    let a = store.create_account("a", 10_000).await.unwrap();
    let from = now_ms() - 1;
    let on = |m: Option<&str>, price| NewTask { model: m.map(Into::into), ..task(a.id, price) };
    let done = on(Some("m:1@1"), 300);
    let failed = on(Some("m:1@1"), 200);
    let other = on(Some("m:2@1"), 50);
    let untyped = on(None, 7);
    for t in [&done, &failed, &other, &untyped] {
        assert!(matches!(store.admit_task(t.clone()).await.unwrap(), Admission::Admitted));
    }
    let ok = |cost| FinishOutcome::Success { results: vec![], outputs: vec![], cost_micros: cost };
    store
        .finish_task(Finish {
            account_id: a.id,
            task_uuid: done.task_uuid,
            outcome: ok(120),
            webhooks: vec![],
            timings: None,
            attempts: vec![],
        })
        .await
        .unwrap();
    store
        .finish_task(Finish {
            account_id: a.id,
            task_uuid: failed.task_uuid,
            outcome: failure("x"),
            webhooks: vec![],
            timings: None,
            attempts: vec![],
        })
        .await
        .unwrap();
    // A grant is no usage.
    store.grant("a", 5, "").await.unwrap();
    let before = now_ms() + 1;
    let day = chrono::DateTime::from_timestamp_millis(before).unwrap().format("%Y-%m-%d").to_string();
    let usage = store.usage_by_day(a.id, from, before).await.unwrap();
    // (Should the clock pass midnight during the test, movements would split over two days.)
    if usage.iter().all(|u| u.day == day) {
        assert_eq!(
            usage,
            vec![
                DailyUsage { day: day.clone(), model: String::new(), spent_micros: 7 },
                DailyUsage { day: day.clone(), model: "m:1@1".into(), spent_micros: 120 },
                DailyUsage { day: day.clone(), model: "m:2@1".into(), spent_micros: 50 },
            ]
        );
    }
    assert!(store.usage_by_day(a.id, before, before + 1_000).await.unwrap().is_empty());
    assert!(store.usage_by_day(a.id + 1, from, before).await.unwrap().is_empty());
}

/// A deleted task's taskUUID is neither free (SQLite failed on the unique key: a 500) nor the
/// old task: admission answers `Deleted`, charges nothing and records nothing, on every backend.
pub async fn hardening_a_deleted_task_uuid_stays_taken(h: Harness) {
    let store = h.store.clone();
    let a = store.create_account("a", 1_000).await.unwrap();
    let t = task(a.id, 100);
    assert!(matches!(store.admit_task(t.clone()).await.unwrap(), Admission::Admitted));
    store
        .finish_task(Finish {
            account_id: a.id,
            task_uuid: t.task_uuid,
            outcome: FinishOutcome::Success { results: vec![], outputs: vec![], cost_micros: 100 },
            webhooks: vec![],
            timings: None,
            attempts: vec![],
        })
        .await
        .unwrap();
    assert!(store.delete_task(a.id, t.task_uuid).await.unwrap());
    // The same request and another one under the same taskUUID: both told it was deleted.
    let other = NewTask { request_hash: [9; 32], ..t.clone() };
    for again in [t.clone(), other] {
        assert!(matches!(store.admit_task(again).await.unwrap(), Admission::Deleted));
    }
    h.flush().await;
    assert_eq!(store.account_by_name("a").await.unwrap().unwrap().balance_micros, 900, "charged once");
    assert_eq!(store.get_task(a.id, t.task_uuid).await.unwrap(), None, "still deleted");
    // Another account's tasks are its own: the same taskUUID is free there.
    let b = store.create_account("b", 1_000).await.unwrap();
    assert!(matches!(store.admit_task(task(b.id, 100)).await.unwrap(), Admission::Admitted));
    let b_same = NewTask { account_id: b.id, ..t };
    assert!(matches!(store.admit_task(b_same).await.unwrap(), Admission::Admitted));
}

/// A task that ends early after recording some results keeps them and is charged their price;
/// only the rest of its reserve is refunded (it used to be refunded whole, results kept).
pub async fn hardening_a_task_ended_early_pays_for_its_delivered_results(h: Harness) {
    let store = h.store.clone();
    let a = store.create_account("a", 1_000).await.unwrap();
    let t = NewTask { resumable_payload: Some("{}".into()), ..task(a.id, 400) };
    assert!(matches!(store.admit_task(t.clone()).await.unwrap(), Admission::Admitted));
    let out = output(Some(vec![1, 2, 3]));
    let item = result_item(1);
    store.record_partial_results(a.id, t.task_uuid, vec![item.clone()], vec![out.clone()]).await.unwrap();
    let error = StoredError { code: "taskCancelled".into(), message: "x".into(), parameter: vec![] };
    store
        .finish_task(Finish {
            account_id: a.id,
            task_uuid: t.task_uuid,
            // More than the reserve is never charged.
            outcome: FinishOutcome::PartlyDelivered { error: error.clone(), cost_micros: 100 },
            webhooks: vec![],
            timings: None,
            attempts: vec![],
        })
        .await
        .unwrap();
    let rec = store.get_task(a.id, t.task_uuid).await.unwrap().unwrap();
    assert_eq!((rec.status, rec.cost_micros, rec.error), (TaskStatus::Error, 100, Some(error)));
    assert_eq!(rec.results, vec![item]);
    assert!(store.get_output(out.uuid).await.unwrap().is_some(), "the delivered output stays");
    assert_eq!(store.account_by_name("a").await.unwrap().unwrap().balance_micros, 900);
    assert_eq!(store.month_spend(a.id).await.unwrap(), 100);
}

/// A task priced by its size once running (an upscale) raises its reservation: the difference
/// is charged under admission's rules (balance, spend cap) or nothing changes; raising again to
/// the same price (a resumed task) charges nothing more; the finish settles against the raised
/// reservation; a task that is not running cannot be raised.
pub async fn hardening_a_reservation_raised_once_the_size_is_known(h: Harness) {
    let store = h.store.clone();
    let a = store.create_account("a", 1_000).await.unwrap();
    let balance = || async { store.account_by_name("a").await.unwrap().unwrap().balance_micros };
    let t = NewTask { resumable_payload: Some("{}".into()), ..task(a.id, 100) };
    assert!(matches!(store.admit_task(t.clone()).await.unwrap(), Admission::Admitted));
    // Past the balance: refused, nothing changes.
    let refused = store.raise_reservation(a.id, t.task_uuid, 1_200, 0).await.unwrap();
    assert_eq!(refused, Reservation::InsufficientCredits { balance_micros: 900 });
    // Past the spend cap: refused, nothing changes.
    let capped = store.raise_reservation(a.id, t.task_uuid, 600, 500).await.unwrap();
    assert_eq!(capped, Reservation::SpendCapReached { spent_micros: 100 });
    assert_eq!(balance().await, 900);
    assert_eq!(store.get_task(a.id, t.task_uuid).await.unwrap().unwrap().cost_micros, 100);
    // Raised: the difference is charged once, however often it is asked for.
    for _ in 0..2 {
        assert_eq!(store.raise_reservation(a.id, t.task_uuid, 400, 0).await.unwrap(), Reservation::Covered);
        assert_eq!(balance().await, 600);
    }
    assert_eq!(store.raise_reservation(a.id, t.task_uuid, 300, 0).await.unwrap(), Reservation::Covered);
    assert_eq!(balance().await, 600, "a lower price leaves the reservation alone");
    assert_eq!(store.month_spend(a.id).await.unwrap(), 400);
    let item = result_item(1);
    store
        .finish_task(Finish {
            account_id: a.id,
            task_uuid: t.task_uuid,
            outcome: FinishOutcome::Success { results: vec![item], outputs: vec![], cost_micros: 400 },
            webhooks: vec![],
            timings: None,
            attempts: vec![],
        })
        .await
        .unwrap();
    assert_eq!(balance().await, 600);
    assert_eq!(store.get_task(a.id, t.task_uuid).await.unwrap().unwrap().cost_micros, 400);
    // A settled task's reservation cannot be raised.
    let late = store.raise_reservation(a.id, t.task_uuid, 900, 0).await;
    assert!(matches!(late, Err(StoreError::Conflict(_))), "{late:?}");
    assert_eq!(balance().await, 600);
    // A failure after a raise refunds the whole raised reservation.
    let u = NewTask { resumable_payload: Some("{}".into()), ..task(a.id, 100) };
    assert!(matches!(store.admit_task(u.clone()).await.unwrap(), Admission::Admitted));
    store.raise_reservation(a.id, u.task_uuid, 300, 0).await.unwrap();
    assert_eq!(balance().await, 300);
    store
        .finish_task(Finish {
            account_id: a.id,
            task_uuid: u.task_uuid,
            outcome: failure("x"),
            webhooks: vec![],
            timings: None,
            attempts: vec![],
        })
        .await
        .unwrap();
    assert_eq!(balance().await, 600);
}

/// Every page of a history request, followed by its position to the end.
async fn all_pages(
    store: &dyn Store,
    filter: history::HistoryFilter,
    limit: u32,
    scan_rows: u32,
) -> Vec<Uuid> {
    let mut out = Vec::new();
    let mut after = None;
    for _ in 0..1_000 {
        let page = store
            .list_tasks(history::HistoryRequest { filter: filter.clone(), after, limit, scan_rows })
            .await
            .unwrap();
        assert!(page.tasks.len() <= limit as usize);
        out.extend(page.tasks.iter().map(|t| t.task_uuid));
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
    panic!("the pages never ended");
}

pub async fn history_pages_filters_and_isolation(h: Harness) {
    let store = h.store.clone();
    let a = store.create_account("a", 1_000_000).await.unwrap();
    let b = store.create_account("b", 1_000_000).await.unwrap();
    // 30 tasks of `a` in a known mix, 5 of `b`; some fail with one of two codes, one is deleted.
    let mut mine = Vec::new();
    for i in 0..30i64 {
        let t = NewTask {
            task_type: if i % 3 == 0 { "videoInference".into() } else { "imageInference".into() },
            model: Some(format!("m:{}@1", i % 2)),
            dialect: if i % 5 == 0 {
                mediagate_core::Dialect::Runway
            } else {
                mediagate_core::Dialect::Runware
            },
            key_id: Some(100 + i % 4),
            request: format!("{{\"positivePrompt\":\"a {} cat\"}}", if i == 7 { "Purple" } else { "grey" }),
            ..task(a.id, 10)
        };
        store.admit_task(t.clone()).await.unwrap();
        let outcome = match i % 4 {
            0 => failure(if i % 8 == 0 { "providerError" } else { "timeoutProvider" }),
            1 => FinishOutcome::Success { results: vec![], outputs: vec![], cost_micros: 10 },
            _ => {
                mine.push(t);
                continue; // still processing
            }
        };
        let attempts = vec![ProviderAttempt {
            provider: "p".into(),
            attempt: 1,
            outcome: "success".into(),
            duration_ms: 1.5,
            message: None,
        }];
        store
            .finish_task(Finish {
                account_id: a.id,
                task_uuid: t.task_uuid,
                outcome,
                webhooks: vec![],
                timings: None,
                attempts,
            })
            .await
            .unwrap();
        mine.push(t);
    }
    for _ in 0..5 {
        store.admit_task(task(b.id, 10)).await.unwrap();
    }
    h.flush().await;
    assert!(store.delete_task(a.id, mine[1].task_uuid).await.unwrap(), "a finished task can be deleted");
    h.flush().await;
    // What each task is, read back one by one; newest first is by (created_at, taskUUID).
    let mut recs = Vec::new();
    for t in &mine {
        recs.push(store.history_task(a.id, t.task_uuid).await.unwrap().expect("history keeps every task"));
    }
    assert!(store.history_task(b.id, mine[0].task_uuid).await.unwrap().is_none(), "another account's task");
    recs.sort_by(|x, y| {
        (y.created_at, y.task_uuid.to_string()).cmp(&(x.created_at, x.task_uuid.to_string()))
    });
    let deleted = recs.iter().find(|r| r.task_uuid == mine[1].task_uuid).unwrap();
    assert!(deleted.deleted_at.is_some());
    assert_eq!(recs[0].key_id.is_some(), true);
    let ended = recs.iter().find(|r| r.status != TaskStatus::Processing).unwrap();
    assert_eq!(ended.attempts.len(), 1, "attempts kept with the end");
    assert_eq!(ended.attempts[0].duration_ms, 1.5);
    let expect = |keep: &dyn Fn(&TaskRecord) -> bool| -> Vec<Uuid> {
        recs.iter().filter(|r| keep(r)).map(|r| r.task_uuid).collect()
    };
    let of_a = |f: history::HistoryFilter| history::HistoryFilter { account_id: Some(a.id), ..f };
    // Everything, in pages of 7, then with a tiny scan budget: the same tasks in the same order.
    let all = expect(&|_| true);
    assert_eq!(all.len(), 30);
    assert_eq!(all_pages(store.as_ref(), of_a(Default::default()), 7, 5_000).await, all);
    assert_eq!(all_pages(store.as_ref(), of_a(Default::default()), 30, 5_000).await, all);
    // Each filter, with a roomy and with a tiny scan budget (short pages, same result).
    let code = |r: &TaskRecord| r.error.as_ref().map(|e| e.code.clone());
    let cases: Vec<(history::HistoryFilter, Vec<Uuid>)> = vec![
        (
            history::HistoryFilter { status: Some(TaskStatus::Error), ..Default::default() },
            expect(&|r| r.status == TaskStatus::Error),
        ),
        (
            history::HistoryFilter { status: Some(TaskStatus::Processing), ..Default::default() },
            expect(&|r| r.status == TaskStatus::Processing),
        ),
        (
            history::HistoryFilter { error_code: Some("timeoutProvider".into()), ..Default::default() },
            expect(&|r| code(r).as_deref() == Some("timeoutProvider")),
        ),
        (
            history::HistoryFilter { task_type: Some("videoInference".into()), ..Default::default() },
            expect(&|r| r.task_type == "videoInference"),
        ),
        (
            history::HistoryFilter { model: Some("m:1@1".into()), ..Default::default() },
            expect(&|r| r.model.as_deref() == Some("m:1@1")),
        ),
        (
            history::HistoryFilter { dialect: Some(mediagate_core::Dialect::Runway), ..Default::default() },
            expect(&|r| r.dialect == mediagate_core::Dialect::Runway),
        ),
        (
            history::HistoryFilter { key_id: Some(102), ..Default::default() },
            expect(&|r| r.key_id == Some(102)),
        ),
        (
            history::HistoryFilter { text: Some("purple".into()), ..Default::default() },
            expect(&|r| r.request.contains("Purple")),
        ),
        (
            history::HistoryFilter {
                since_ms: Some(recs[20].created_at),
                until_ms: Some(recs[5].created_at + 1),
                ..Default::default()
            },
            expect(&|r| r.created_at >= recs[20].created_at && r.created_at <= recs[5].created_at),
        ),
        (
            history::HistoryFilter {
                status: Some(TaskStatus::Error),
                model: Some("m:0@1".into()),
                ..Default::default()
            },
            expect(&|r| r.status == TaskStatus::Error && r.model.as_deref() == Some("m:0@1")),
        ),
    ];
    for (filter, want) in cases {
        assert!(!want.is_empty(), "{filter:?} matches something");
        assert_eq!(all_pages(store.as_ref(), of_a(filter.clone()), 3, 5_000).await, want, "{filter:?}");
        assert_eq!(all_pages(store.as_ref(), of_a(filter.clone()), 2, 4).await, want, "{filter:?}, budget 4");
    }
    // Across accounts (operators): both accounts' tasks; failures there are checked on rows.
    let everyone = all_pages(store.as_ref(), Default::default(), 8, 5_000).await;
    assert_eq!(everyone.len(), 35);
    let failed = all_pages(
        store.as_ref(),
        history::HistoryFilter { status: Some(TaskStatus::Error), ..Default::default() },
        4,
        3,
    )
    .await;
    assert_eq!(failed, expect(&|r| r.status == TaskStatus::Error));
    // Account isolation: `b` sees only its own five.
    let theirs = all_pages(
        store.as_ref(),
        history::HistoryFilter { account_id: Some(b.id), ..Default::default() },
        10,
        5_000,
    )
    .await;
    assert_eq!(theirs.len(), 5);
    assert!(theirs.iter().all(|u| !all.contains(u)));
}
