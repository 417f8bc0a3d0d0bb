//! The tasks inbox, the account tab's notes and holds, and who may change collections.

use arbor::{
    auth::Role,
    db::scope::in_tenant,
    dunning::{
        domain::Assignee,
        repo::{self, NewTask},
    },
};
use chrono::Duration;

use super::{open_invoice, quiet_app, task_ids, today};
use crate::{
    accounts::{count, put_account},
    billing::one,
    helpers::{audit_actions, location, member, new_client},
};

#[tokio::test]
async fn the_inbox_filters_mine_and_team_lists_overdue_first_and_exports_what_it_shows() {
    // Arrange: tasks for me, for the team and for a colleague, due around today.
    let app = quiet_app().await;
    let owner = new_client();
    let t = app.signup(&owner, "inbox").await;
    let (me, my_id, _) = member(&app, &t, Role::Collections).await;
    let (_, colleague, _) = member(&app, &t, Role::Collections).await;
    let aid = put_account(&app, &t, "Tasked Ltd", None);
    let inv = open_invoice(&app, &t, aid, "T-1", today() - Duration::days(10));
    let task = |title: &str, assignee: Assignee, due: i64| {
        in_tenant(&mut app.conn(), &t.schema(), |c| {
            repo::create_task(
                c,
                &NewTask {
                    account_id: aid,
                    invoice_id: Some(inv),
                    title: title.into(),
                    detail: String::new(),
                    assignee,
                    due_on: today() + Duration::days(due),
                    source: "manual",
                },
            )
        })
        .unwrap()
    };
    let later = task("Later mine", Assignee::User(my_id), 5);
    let overdue = task("Overdue mine", Assignee::User(my_id), -3);
    let team = task("Team overdue", Assignee::Team, -1);
    let theirs = task("Colleague's", Assignee::User(colleague), 1);
    let now = task("Today mine", Assignee::User(my_id), 0);
    let base = format!("/t/{}", t.slug);

    // Act / Assert: mine, team and all, overdue first then by due date.
    let mine = app.html(&me, &format!("{base}/collections")).await;
    assert_eq!(task_ids(&mine), [overdue, now, later]);
    assert!(mine.contains("3 days overdue") && mine.contains("EUR 100.00"));
    assert!(
        mine.contains(&format!("{base}/accounts/{aid}?tab=collections"))
            && mine.contains(&format!("{base}/invoices/{inv}"))
    );
    assert_eq!(
        task_ids(&app.html(&me, &format!("{base}/collections?who=team")).await),
        [team]
    );
    let all = app
        .html(&me, &format!("{base}/collections?who=all&status=open"))
        .await;
    assert_eq!(task_ids(&all), [overdue, team, now, theirs, later]);
    // The CSV has the same rows, ids and plain decimals.
    let csv = app
        .html(
            &me,
            &format!("{base}/collections?who=all&status=open&format=csv"),
        )
        .await;
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let ids: Vec<i64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(ids, task_ids(&all));
    assert_eq!(
        (&rows[0][2], &rows[0][4], &rows[0][7]),
        (aid.to_string().as_str(), inv.to_string().as_str(), "100")
    );

    // Completing needs a resolution; then the task moves to Done and is audited.
    let complete = format!("{base}/collections/tasks/{overdue}/complete");
    let r = app
        .post_form(&me, &complete, &[("resolution", ""), ("who", "mine")])
        .await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Say how the task was resolved."));
    let r = app
        .post_form(
            &me,
            &complete,
            &[("resolution", "Customer paid by wire"), ("who", "mine")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).contains("who=mine"));
    assert_eq!(
        task_ids(&app.html(&me, &format!("{base}/collections")).await),
        [now, later]
    );
    let done = app
        .html(&me, &format!("{base}/collections?status=done"))
        .await;
    assert_eq!(task_ids(&done), [overdue]);
    assert!(done.contains("Customer paid by wire"));
    assert!(audit_actions(&app, &t).contains(&"collections.task_completed".to_string()));
    assert_eq!(
        app.post_form(&me, &complete, &[("resolution", "again")])
            .await
            .status(),
        409
    );

    // Reassigning the team's task to me puts it in my list.
    let assign = format!("{base}/collections/tasks/{team}/assign");
    assert_eq!(
        app.post_form(&me, &assign, &[("assignee", "999999")])
            .await
            .status(),
        422
    );
    let r = app
        .post_form(&me, &assign, &[("assignee", &my_id.to_string())])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        task_ids(&app.html(&me, &format!("{base}/collections")).await),
        [team, now, later]
    );
    assert!(task_ids(&app.html(&me, &format!("{base}/collections?who=team")).await).is_empty());
}

#[tokio::test]
async fn notes_and_holds_are_logged_and_read_only_roles_cannot_change_collections() {
    let app = quiet_app().await;
    let owner = new_client();
    let t = app.signup(&owner, "collperm").await;
    let base = format!("/t/{}", t.slug);
    let aid = put_account(&app, &t, "Guarded Ltd", None);
    let inv = open_invoice(&app, &t, aid, "G-1", today() - Duration::days(1));
    let task = one(&app, &t, &format!("INSERT INTO collections_tasks (account_id, title, due_on, source) VALUES ({aid}, 'Chase', '{}', 'manual') RETURNING id", today()));
    let promise = one(&app, &t, &format!("INSERT INTO promises_to_pay (account_id, currency, amount, promised_on) VALUES ({aid}, 'EUR', 10, '{}') RETURNING id", today()));
    let (collector, _, _) = member(&app, &t, Role::Collections).await;

    // A collector logs a call and puts the account on hold.
    let notes = format!("{base}/accounts/{aid}/collections/notes");
    let r = app
        .post_form(&collector, &notes, &[("kind", "call"), ("body", "")])
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(count(&app, &t, "collections_notes"), 0);
    let r = app
        .post_form(
            &collector,
            &notes,
            &[
                ("kind", "call"),
                ("outcome", "promised"),
                ("body", "Spoke to AP, paying Friday"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let hold = format!("{base}/accounts/{aid}/collections/hold");
    assert_eq!(
        app.post_form(&collector, &hold, &[("action", "hold")])
            .await
            .status(),
        422
    );
    assert_eq!(
        app.post_form(
            &collector,
            &hold,
            &[("action", "hold"), ("hold_reason", "Credit check")]
        )
        .await
        .status(),
        303
    );
    assert_eq!(count(&app, &t, "account_collections WHERE on_hold"), 1);
    let tab = app
        .html(
            &collector,
            &format!("{base}/accounts/{aid}?tab=collections"),
        )
        .await;
    assert!(
        tab.contains("Call by Collections Person: Promised to pay"),
        "last contact: {tab}"
    );
    assert!(tab.contains("Credit check") && tab.contains("Spoke to AP, paying Friday"));
    assert!(
        !tab.contains("Dunning policy of this account"),
        "collections cannot assign policies"
    );
    let home = app.html(&collector, &base).await;
    assert!(
        home.contains(&format!("{base}/collections\"")),
        "Collections is in the navigation"
    );

    // Sales and auditors may look at the account but change nothing in collections.
    let others = [
        (Role::Sales, member(&app, &t, Role::Sales).await.0),
        (Role::Auditor, member(&app, &t, Role::Auditor).await.0),
    ];
    let before = audit_actions(&app, &t).len();
    for (role, c) in others {
        assert_eq!(
            app.status(&c, &format!("{base}/collections")).await,
            403,
            "{role}"
        );
        let home = app.html(&c, &base).await;
        assert!(
            !home.contains(&format!("{base}/collections\"")),
            "{role} sees no Collections link"
        );
        for (path, fields) in [
            (notes.clone(), vec![("kind", "note"), ("body", "x")]),
            (
                format!("{base}/accounts/{aid}/collections/promises"),
                vec![("promise_amount", "5"), ("promise_date", "2099-01-01")],
            ),
            (
                format!("{base}/accounts/{aid}/collections/promises/{promise}/cancel"),
                vec![],
            ),
            (
                format!("{base}/accounts/{aid}/collections/pause"),
                vec![("action", "resume")],
            ),
            (hold.clone(), vec![("action", "lift"), ("hold_reason", "x")]),
            (
                format!("{base}/accounts/{aid}/collections/policy"),
                vec![("policy", "exclude")],
            ),
            (
                format!("{base}/invoices/{inv}/dispute"),
                vec![("action", "flag"), ("reason", "x")],
            ),
            (
                format!("{base}/collections/tasks/{task}/complete"),
                vec![("resolution", "x")],
            ),
            (
                format!("{base}/collections/tasks/{task}/assign"),
                vec![("assignee", "team")],
            ),
        ] {
            let r = app.post_form(&c, &path, &fields).await;
            assert_eq!(r.status(), 403, "{role} POST {path}");
        }
    }
    assert_eq!(audit_actions(&app, &t).len(), before, "nothing changed");
    assert_eq!(count(&app, &t, "account_collections WHERE on_hold"), 1);
}
