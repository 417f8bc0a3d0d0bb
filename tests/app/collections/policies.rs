//! The dunning policy editor: versions, validation, stale forms.

use chrono::Duration;

use super::{action, evaluate, gentle_form, open_invoice, pinned_version, post, quiet_app, today};
use crate::{
    accounts::count,
    accounts::put_account,
    billing::one,
    helpers::{audit_actions, location, new_client},
};

#[tokio::test]
async fn a_policy_edit_adds_a_version_and_invoices_in_dunning_keep_theirs() {
    // Arrange: an invoice due in 3 days enters dunning today (standard step 1 is day -3).
    let app = quiet_app().await;
    let owner = new_client();
    let t = app.signup(&owner, "dpol").await;
    let base = format!("/t/{}", t.slug);
    let aid = put_account(&app, &t, "Versioned Ltd", None);
    let first = open_invoice(&app, &t, aid, "C-1", today() + Duration::days(3));
    assert_eq!(evaluate(&app, &t, first, today()), 1);
    let v1 = pinned_version(&app, &t, first);
    let list = app.html(&owner, &format!("{base}/settings/dunning")).await;
    assert!(
        list.contains("Standard") && list.contains("Default"),
        "{list}"
    );
    let pid = one(&app, &t, "SELECT id FROM dunning_policies WHERE is_default");
    let editor = app
        .html(&owner, &format!("{base}/settings/dunning/{pid}"))
        .await;
    assert!(
        editor.contains("name=\"step5_stop\" value=\"yes\" checked"),
        "the standard steps are in the form"
    );
    assert!(editor.contains("Add a step"));

    // Act: save a different policy.
    let r = post(
        &app,
        &owner,
        &format!("{base}/settings/dunning/{pid}"),
        &gentle_form("1"),
    )
    .await;

    // Assert: version 2 exists, the invoice in dunning stays on version 1 and runs its steps.
    assert_eq!(r.status(), 303);
    assert!(location(&r).ends_with("?saved=2"));
    assert_eq!(count(&app, &t, "dunning_policy_versions"), 2);
    assert_eq!(pinned_version(&app, &t, first), v1);
    evaluate(&app, &t, first, today() + Duration::days(4));
    let retried = one(&app, &t, &format!("SELECT count(*) AS id FROM dunning_actions WHERE invoice_id = {first} AND action = 'retry_payment' AND policy_version_id = {v1}"));
    assert_eq!(
        retried, 1,
        "version 1's day +1 step (reminder and retry) ran"
    );
    let second = open_invoice(&app, &t, aid, "C-2", today() - Duration::days(2));
    evaluate(&app, &t, second, today());
    assert_ne!(
        pinned_version(&app, &t, second),
        v1,
        "new dunning starts on version 2"
    );
    assert_eq!(action(&app, &t, second, 0, "reminder").0, "done");
    let editor = app
        .html(&owner, &format!("{base}/settings/dunning/{pid}?saved=2"))
        .await;
    assert!(editor.contains("Saved as version 2"));
    assert!(
        editor.contains("<td>2</td>") && editor.contains("Olivia Owner"),
        "history names the editor"
    );
    assert!(audit_actions(&app, &t).contains(&"dunning.policy_versioned".to_string()));

    // Invalid input: steps out of order and a bad fee come back as 422; nothing is saved.
    let mut bad = gentle_form("2");
    bad[2].1 = "9".into();
    bad.push(("step1_fee_on", "yes".into()));
    bad.push(("step1_fee", "ten".into()));
    let r = post(
        &app,
        &owner,
        &format!("{base}/settings/dunning/{pid}"),
        &bad,
    )
    .await;
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Each step must come after the one before it."),
        "{page}"
    );
    assert!(page.contains("is not a number."));
    assert_eq!(count(&app, &t, "dunning_policy_versions"), 2);
    // Saving the form unchanged adds nothing; a stale form is refused.
    let r = post(
        &app,
        &owner,
        &format!("{base}/settings/dunning/{pid}"),
        &gentle_form("2"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("No changes to save."));
    let mut changed = gentle_form("1");
    changed[2].1 = "2".into();
    let r = post(
        &app,
        &owner,
        &format!("{base}/settings/dunning/{pid}"),
        &changed,
    )
    .await;
    assert_eq!(r.status(), 409);
    assert_eq!(count(&app, &t, "dunning_policy_versions"), 2);
}
