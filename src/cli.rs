//! Command line: `serve`, `migrate`, `demo`, `tenant create`, `audit verify`, `bench ...`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{config::Config, db, demo, startup, web::telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "arbor",
    version,
    about = "Multi-tenant B2B billing and receivables"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web app and run background workers (the default).
    Serve,
    /// Apply pending migrations to the control schema and every tenant.
    Migrate,
    /// Provision the demo tenant with sample data (idempotent), print logins, then serve.
    Demo {
        /// Provision and print, but do not start the server.
        #[arg(long)]
        no_serve: bool,
    },
    /// Tenant administration.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Performance figures (printed, never asserted in tests).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Bill a month for N subscriptions in a throwaway tenant and compare with plain INSERTs.
    Billrun {
        #[arg(long, default_value_t = 10_000)]
        subscriptions: i64,
    },
    /// Post N signed CRM deal events over loopback HTTP and time them until fully processed.
    Webhooks {
        #[arg(long, default_value_t = 20_000)]
        events: usize,
    },
    /// Time the AR aging report on a throwaway tenant against a plain aggregate scan.
    Aging {
        #[arg(long, default_value_t = 1_000_000)]
        invoices: i64,
        #[arg(long, default_value_t = 100_000)]
        accounts: i64,
        /// Also print the query plans.
        #[arg(long)]
        explain: bool,
    },
    /// Load the signed-in invoice list over loopback HTTP (server as a child process) and
    /// compare its req/s with /healthz of the same server.
    Http {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 64)]
        connections: usize,
    },
    /// Provision N throwaway tenants; time provisioning and migrate-all, and compare a signed-in
    /// page's latency with 1 and with 1 + N tenants.
    Tenants {
        #[arg(long, default_value_t = 1_000)]
        tenants: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check a tenant's hash chain; exits non-zero and names the first broken row if altered.
    Verify { slug: String },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant (schema, migrations). With --owner-email, also its owner; the password
    /// comes from ARBOR_OWNER_PASSWORD or is generated and printed once.
    Create {
        slug: String,
        name: String,
        #[arg(long)]
        owner_email: Option<String>,
        #[arg(long, default_value = "Workspace owner")]
        owner_name: String,
    },
}

pub async fn main() -> ExitCode {
    telemetry::init_subscriber("info,actix_server=warn");
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    tracing::debug!(?config, "configuration");
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let cfg = config.clone();
            let report = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let url = db::bootstrap::resolve_database_url(&cfg)?;
                let mut conn = db::connect(&url)?;
                db::migrate::migrate_all(&mut conn)
            })
            .await??;
            println!(
                "migrated: {} control migration(s), {} tenant(s), {} tenant migration(s) applied",
                report.control, report.tenants, report.migrations_applied
            );
            Ok(())
        }
        Command::Demo { no_serve } => {
            let pool = startup::prepare_database(&config).await?;
            let p = pool.clone();
            let cfg = config.clone();
            let info = tokio::task::spawn_blocking(move || demo::provision(&p, &cfg)).await??;
            println!("\nArbor demo tenant {:?} is ready.", info.tenant_name);
            println!("  Open:     {}/login", config.base_url);
            println!("  Sign in:  {} / {}", info.owner_email, demo::PASSWORD);
            for (email, role) in &info.others {
                println!("            {email} / {} ({role})", demo::PASSWORD);
            }
            println!();
            if no_serve {
                return Ok(());
            }
            let mut cfg = config;
            let app = startup::Application::build_with_pool(&mut cfg, pool).await?;
            tracing::info!(url = %cfg.base_url, "serving");
            app.run_until_stopped().await?;
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify { slug },
        } => {
            let cfg = config.clone();
            let result = tokio::task::spawn_blocking(move || {
                let url = db::bootstrap::resolve_database_url(&cfg)?;
                audit_verify(&url, &slug)
            })
            .await??;
            match result {
                Ok(msg) => {
                    println!("{msg}");
                    Ok(())
                }
                Err(msg) => anyhow::bail!(msg),
            }
        }
        Command::Bench {
            command: BenchCommand::Billrun { subscriptions },
        } => {
            let pool = startup::prepare_database(&config).await?;
            let cfg = config.clone();
            let report = tokio::task::spawn_blocking(move || {
                crate::bench::billrun(&cfg, &pool, subscriptions)
            })
            .await??;
            report.print();
            Ok(())
        }
        Command::Bench {
            command: BenchCommand::Webhooks { events },
        } => {
            let report = crate::bench_webhooks::webhooks(&config, events).await?;
            report.print();
            Ok(())
        }
        Command::Bench {
            command:
                BenchCommand::Aging {
                    invoices,
                    accounts,
                    explain,
                },
        } => {
            let pool = startup::prepare_database(&config).await?;
            let report = tokio::task::spawn_blocking(move || {
                crate::bench::aging(&pool, invoices, accounts, explain)
            })
            .await??;
            report.print();
            Ok(())
        }
        Command::Bench {
            command:
                BenchCommand::Http {
                    seconds,
                    connections,
                },
        } => {
            crate::bench_http::http(&config, seconds, connections)
                .await?
                .print();
            Ok(())
        }
        Command::Bench {
            command: BenchCommand::Tenants { tenants },
        } => {
            crate::bench_tenants::tenants(&config, tenants)
                .await?
                .print();
            Ok(())
        }
        Command::Tenant {
            command:
                TenantCommand::Create {
                    slug,
                    name,
                    owner_email,
                    owner_name,
                },
        } => {
            let pool = startup::prepare_database(&config).await?;
            let out = tokio::task::spawn_blocking(move || {
                demo::create_tenant_cli(&pool, &slug, &name, owner_email.as_deref(), &owner_name)
            })
            .await??;
            println!("{out}");
            Ok(())
        }
    }
}

/// `arbor audit verify <slug>`: Ok(message) when intact, Err(message) when broken.
pub fn audit_verify(url: &str, slug: &str) -> anyhow::Result<Result<String, String>> {
    let mut conn = db::connect(url)?;
    let (_, schema) = crate::tenants::repo::find_id_by_slug(&mut conn, slug)?
        .ok_or_else(|| anyhow::anyhow!("no tenant with slug {slug:?}"))?;
    let schema = db::scope::TenantSchema::parse(&schema).map_err(|e| anyhow::anyhow!(e))?;
    let v = db::scope::in_tenant(&mut conn, &schema, crate::audit::repo::verify)?;
    Ok(match v {
        crate::audit::Verification::Intact { rows } => Ok(format!("audit chain of {slug} intact: {rows} entries verified")),
        crate::audit::Verification::Broken { rows, first_bad_seq, first_bad_id, reason } => Err(format!(
            "audit chain of {slug} BROKEN at entry #{first_bad_seq} (row id {first_bad_id}) of {rows}: {reason}"
        )),
    })
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let mut cfg = config;
    let pool = startup::prepare_database(&cfg).await?;
    let app = startup::Application::build_with_pool(&mut cfg, pool).await?;
    tracing::info!(url = %cfg.base_url, "serving");
    app.run_until_stopped().await?;
    Ok(())
}
