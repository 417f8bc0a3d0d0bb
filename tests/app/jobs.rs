use std::{collections::HashSet, time::Duration};

use arbor::{
    db,
    jobs::{kinds, queue},
};
use diesel::{sql_types::BigInt, QueryableByName, RunQueryDsl};
use serde_json::json;

use crate::helpers::{new_client, TestApp};

#[tokio::test]
async fn each_job_is_claimed_exactly_once_across_four_workers() {
    // Arrange: workers of the app itself are off so only our four claim.
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let t = app.signup(&new_client(), "jobs").await;
    const N: usize = 400;
    {
        let mut c = app.conn();
        for i in 0..N {
            queue::enqueue(
                &mut c,
                &queue::NewJob::new(kinds::NOOP, Some(t.id), json!({ "i": i })),
            )
            .unwrap();
        }
    }
    // Act: four threads with their own connections race to claim.
    let handles: Vec<_> = (0..4)
        .map(|w| {
            let url = app.db_url.clone();
            std::thread::spawn(move || {
                let mut c = db::connect(&url).unwrap();
                let mut mine = Vec::new();
                while let Some(job) = queue::claim(&mut c, &format!("w{w}"), None).unwrap() {
                    mine.push(job.id);
                    queue::complete(&mut c, job.id).unwrap();
                }
                mine
            })
        })
        .collect();
    let claimed: Vec<Vec<i64>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    // Assert
    let all: Vec<i64> = claimed.iter().flatten().copied().collect();
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), N, "every job claimed");
    assert_eq!(unique.len(), N, "no job claimed twice");
    assert!(
        claimed.iter().filter(|c| !c.is_empty()).count() >= 2,
        "work was actually shared"
    );
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    attempts: i32,
}

fn job_row(app: &TestApp, id: i64) -> Row {
    diesel::sql_query("SELECT status, attempts FROM control.jobs WHERE id = $1")
        .bind::<BigInt, _>(id)
        .get_result(&mut app.conn())
        .unwrap()
}

#[tokio::test]
async fn failing_jobs_back_off_then_die_and_unknown_kinds_die_at_once() {
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let t = app.signup(&new_client(), "fail").await;
    let mut c = app.conn();
    let mut bad = queue::NewJob::new("no.such.kind", Some(t.id), json!({}));
    bad.max_attempts = 5;
    let id = queue::enqueue(&mut c, &bad).unwrap().unwrap();
    // An unknown kind is a permanent failure: dead after one attempt.
    assert!(arbor::jobs::worker::run_one(&app.state, "t", Some(t.id))
        .await
        .unwrap());
    let r = job_row(&app, id);
    assert_eq!((r.status.as_str(), r.attempts), ("dead", 1));
    // A retryable failure is requeued in the future, not immediately.
    let claimed = queue::NewJob::new(kinds::NOOP, Some(t.id), json!({}));
    let id = queue::enqueue(&mut c, &claimed).unwrap().unwrap();
    let job = queue::claim(&mut c, "t", Some(t.id)).unwrap().unwrap();
    assert_eq!(job.id, id);
    let outcome = queue::fail(&mut c, &job, "boom", true, Duration::from_secs(60)).unwrap();
    assert_eq!(outcome, queue::FailOutcome::Retry);
    assert!(
        queue::claim(&mut c, "t", Some(t.id)).unwrap().is_none(),
        "backoff delays the retry"
    );
    assert_eq!(job_row(&app, id).status, "queued");
}

#[tokio::test]
async fn jobs_of_a_vanished_worker_are_requeued_after_the_lease() {
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let t = app.signup(&new_client(), "lease").await;
    let mut c = app.conn();
    let id = queue::enqueue(
        &mut c,
        &queue::NewJob::new(kinds::NOOP, Some(t.id), json!({})),
    )
    .unwrap()
    .unwrap();
    let job = queue::claim(&mut c, "crashed", None).unwrap().unwrap();
    assert_eq!(job.id, id);
    // The worker "dies" here. Within the lease nobody else may take the job.
    assert_eq!(
        queue::requeue_stale(&mut c, Duration::from_secs(300)).unwrap(),
        0
    );
    diesel::sql_query(
        "UPDATE control.jobs SET locked_at = now() - interval '10 minutes' WHERE id = $1",
    )
    .bind::<BigInt, _>(id)
    .execute(&mut c)
    .unwrap();
    assert_eq!(
        queue::requeue_stale(&mut c, Duration::from_secs(300)).unwrap(),
        1
    );
    let again = queue::claim(&mut c, "survivor", None).unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (id, 2));
}

#[tokio::test]
async fn dedupe_key_makes_enqueue_idempotent() {
    let app = TestApp::spawn_with(|c| c.workers = 0).await;
    let mut c = app.conn();
    let mut j = queue::NewJob::new(kinds::NOOP, None, json!({}));
    j.dedupe_key = Some("billrun:2026-11-22".into());
    assert!(queue::enqueue(&mut c, &j).unwrap().is_some());
    assert!(queue::enqueue(&mut c, &j).unwrap().is_none());
}
