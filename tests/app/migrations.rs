use arbor::db::{self, migrate};
use diesel::{sql_types::BigInt, QueryableByName, RunQueryDsl};

use crate::helpers::{new_client, TestApp};

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[tokio::test]
async fn migrate_all_is_idempotent_for_two_tenants() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = app.signup(&new_client(), "mig-a").await;
    let b = app.signup(&new_client(), "mig-b").await;
    let mut conn = db::connect(&app.db_url).unwrap();
    // Act
    let first = migrate::migrate_all(&mut conn).unwrap();
    let second = migrate::migrate_all(&mut conn).unwrap();
    // Assert: provisioning already applied everything; reruns apply nothing and break nothing.
    assert_eq!(first.tenants, 2);
    assert_eq!(first.migrations_applied, 0);
    assert_eq!(first.control, 0);
    assert_eq!(second.migrations_applied, 0);
    assert_eq!(migrate::tenants_behind(&mut conn).unwrap(), 0);
    for t in [&a, &b] {
        let n: N = diesel::sql_query("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = $1 AND table_name IN ('outbox', 'settings', '__diesel_schema_migrations')")
            .bind::<diesel::sql_types::Text, _>(&t.schema)
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(n.n, 3, "{}", t.schema);
    }
    // No tenant table exists in control or public.
    let n: N = diesel::sql_query("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema IN ('control', 'public') AND table_name IN ('outbox', 'settings')")
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(n.n, 0);
}

#[tokio::test]
async fn a_missing_tenant_migration_is_applied_by_migrate_all() {
    // Arrange: simulate a tenant created by an older binary by removing its migration record.
    let app = TestApp::spawn().await;
    let t = app.signup(&new_client(), "old").await;
    let mut conn = db::connect(&app.db_url).unwrap();
    diesel::sql_query(format!("DROP SCHEMA {} CASCADE", t.schema))
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query("UPDATE control.tenants SET schema_version = NULL WHERE id = $1")
        .bind::<BigInt, _>(t.id)
        .execute(&mut conn)
        .unwrap();
    assert_eq!(migrate::tenants_behind(&mut conn).unwrap(), 1);
    // Act
    let report = migrate::migrate_all(&mut conn).unwrap();
    // Assert
    assert!(report.migrations_applied >= 1);
    assert_eq!(migrate::tenants_behind(&mut conn).unwrap(), 0);
    assert!(migrate::schema_exists(&mut conn, &t.schema).unwrap());
}

#[tokio::test]
async fn concurrent_migrate_all_runs_apply_each_migration_exactly_once() {
    // Arrange: three tenants whose schemas are gone, as if created before any migration ran.
    let app = TestApp::spawn().await;
    let mut conn = db::connect(&app.db_url).unwrap();
    for p in ["c-a", "c-b", "c-c"] {
        let t = app.signup(&new_client(), p).await;
        diesel::sql_query(format!("DROP SCHEMA {} CASCADE", t.schema))
            .execute(&mut conn)
            .unwrap();
    }
    diesel::sql_query("UPDATE control.tenants SET schema_version = NULL")
        .execute(&mut conn)
        .unwrap();
    let per_tenant = diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(
        &migrate::TENANT_MIGRATIONS,
    )
    .unwrap()
    .len();
    // Act: four instances start at once.
    let url = app.db_url.clone();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut c = db::connect(&url).unwrap();
                migrate::migrate_all(&mut c).map(|r| (r.tenants, r.migrations_applied))
            })
        })
        .collect();
    // Assert: nobody failed, and the migrations ran once in total.
    let mut applied = 0;
    for h in handles {
        let (tenants, n) = h.join().unwrap().unwrap();
        assert_eq!(tenants, 3);
        applied += n;
    }
    assert_eq!(applied, 3 * per_tenant);
    assert_eq!(migrate::tenants_behind(&mut conn).unwrap(), 0);
}
