//! `tenantry seed`: a demo organization with members and a team, made through the domain layer.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{Datelike, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tenantry_db::{RequestContext, RuntimePool};
use tenantry_server::fasttrack::{self, AccessLevel, Catalog, NewEntry, NewGrant, Status};
use tenantry_server::goals::{self, Link, NewGoal};
use tenantry_server::identity::{self, NewAccount};
use tenantry_server::kernel::access::Role;
use tenantry_server::kernel::input::Valid;
use tenantry_server::kernel::org_tx::OrgTx;
use tenantry_server::kpis::{self, Direction, NewDataPoint, NewKpi};
use tenantry_server::orgs::{self, NewTeam};
use uuid::Uuid;

use crate::database::Database;
use crate::AnyError;

const DEMO_EMAIL: &str = "demo@tenantry.local";

pub async fn run(database: &Database, listen: SocketAddr) -> Result<(), AnyError> {
    let owner = database.owner_pool().await?;
    database.migrate(&owner, None).await?;
    // Finding an existing account by email is an operator's lookup (the runtime role cannot
    // see users outside its organizations), so it runs as the owner.
    let existing: Option<Uuid> =
        sqlx::query_scalar(r"SELECT id FROM users WHERE lower(email) = $1")
            .bind(DEMO_EMAIL)
            .fetch_optional(&owner.0)
            .await?;
    owner.0.close().await;

    let pool = database.runtime_pool(4).await?;
    let demo = match existing {
        Some(id) => {
            println!("demo data already present");
            id
        }
        None => create_demo(&pool).await?,
    };
    let token = identity::create_session(
        &pool,
        demo,
        Duration::from_secs(30 * 24 * 3600),
        None,
        Some("tenantry seed"),
    )
    .await?
    .token;
    pool.close().await;
    println!("signed in as {DEMO_EMAIL}; session token (valid 30 days):\n  {token}");
    println!("try:\n  curl -H 'Authorization: Bearer {token}' http://{listen}/v1/orgs");
    Ok(())
}

async fn create_demo(pool: &RuntimePool) -> Result<Uuid, AnyError> {
    let account = |email: &str, name: &str| NewAccount {
        email: email.into(),
        name: Some(name.into()),
        password_hash: None,
        provider: "password".into(),
        provider_id: None,
        clerk_user_id: None,
        email_verified: false,
        organization_name: None,
    };
    let demo = identity::sign_up(
        pool,
        NewAccount {
            organization_name: Some("Demo Company".into()),
            ..account(DEMO_EMAIL, "Demo Founder")
        },
    )
    .await?;
    let org = demo.organization.id;
    let mut colleagues = Vec::new();
    for (email, name, role) in [
        ("ada@tenantry.local", "Ada Admin", Role::Admin),
        ("max@tenantry.local", "Max Member", Role::Member),
        ("vera@tenantry.local", "Vera Viewer", Role::Viewer),
    ] {
        let user = identity::sign_up(pool, account(email, name)).await?.user.id;
        colleagues.push((user, role));
    }
    let mut tx = OrgTx::begin(pool, &RequestContext::user(demo.user.id), org).await?;
    for (user, role) in &colleagues {
        orgs::store::add_member(&mut tx, *user, *role).await?;
    }
    let team = orgs::store::create_team(
        &mut tx,
        &Valid::new(NewTeam {
            name: "Growth".into(),
            description: Some("Owns the revenue KPIs".into()),
            lead_user_id: Some(demo.user.id),
        })?,
    )
    .await?;
    for (user, _) in &colleagues[..2] {
        orgs::store::add_team_member(&mut tx, team.id, *user).await?;
    }
    seed_kpis(&mut tx).await?;
    seed_tools(&mut tx, colleagues[1].0).await?;
    let people = [demo.user.id, colleagues[0].0, colleagues[1].0];
    let customers = seed_crm(&mut tx, &people).await?;
    let appointments = seed_appointments(&mut tx, &people, &customers).await?;
    let published = seed_site(&mut tx).await?;
    let org_slug: String = sqlx::query_scalar("SELECT slug FROM organizations WHERE id = $1")
        .bind(org)
        .fetch_one(tx.conn())
        .await?;
    tx.commit().await?;
    println!(
        "created organization \"Demo Company\" ({org}) with 4 members, a team, {} KPIs with two years of daily data, goals, Fast Track entries and grants, {} CRM customers with custom fields, projects with a kanban board, {appointments} appointments in the coming week, and a site of {published} published pages (public at /v1/public/{org_slug}/content)",
        DEMO_KPIS.len(),
        customers.len()
    );
    Ok(demo.user.id)
}

/// A small CRM: custom fields, customers with tags and custom values, assigned among `people`
/// (members who may write); projects for some of them, each with a board of tasks and subtasks
/// spread over the columns. Returns the customers' ids.
async fn seed_crm(tx: &mut OrgTx, people: &[Uuid]) -> Result<Vec<Uuid>, AnyError> {
    use tenantry_server::crm::customers::{self, CustomerSource, CustomerStatus, FieldKind};
    use tenantry_server::crm::projects::{self, Priority, ProjectStatus};
    use tenantry_server::crm::tasks::{self, Move, TaskStatus};

    for (key, label, kind, options) in [
        (
            "industry",
            "Industry",
            FieldKind::OneOf,
            Some(vec!["saas", "retail", "health", "finance"]),
        ),
        ("seats", "Seats", FieldKind::Number, None),
        ("renewal", "Renewal date", FieldKind::Date, None),
    ] {
        let field = customers::NewCustomField {
            key: key.into(),
            label: label.into(),
            kind,
            options: options.map(|o| o.into_iter().map(String::from).collect()),
            required: false,
        };
        customers::store::create_field(tx, &Valid::new(field)?).await?;
    }
    let mut rng = StdRng::seed_from_u64(15);
    let (first, last) = (
        [
            "Ada",
            "Grace",
            "Alan",
            "Katherine",
            "Margaret",
            "Edsger",
            "Barbara",
            "Donald",
            "Frances",
            "John",
        ],
        [
            "Lovelace", "Hopper", "Turing", "Johnson", "Hamilton", "Dijkstra", "Liskov", "Knuth",
            "Allen", "Backus",
        ],
    );
    let industries = ["saas", "retail", "health", "finance"];
    let mut created = Vec::new();
    for i in 0..24 {
        let (given, family) = (first[i % 10], last[(i * 7 + 3) % 10]);
        let industry = industries[rng.gen_range(0..industries.len())];
        let new = customers::NewCustomer {
            name: format!("{given} {family}"),
            email: Some(format!(
                "{}.{}{i}@example.com",
                given.to_lowercase(),
                family.to_lowercase()
            )),
            phone: Some(format!("+1 555 01{i:02}")),
            company: Some(format!(
                "{family} {}",
                ["Labs", "Systems", "& Co", "Health", "Capital"][i % 5]
            )),
            status: Some(CustomerStatus::ALL[i % CustomerStatus::ALL.len()]),
            source: Some(CustomerSource::ALL[(i / 2) % CustomerSource::ALL.len()]),
            tags: Some(
                [
                    ["vip"].as_slice(),
                    &["newsletter"],
                    &["vip", "partner"],
                    &[],
                ][i % 4]
                    .iter()
                    .map(|t| t.to_string())
                    .collect(),
            ),
            custom_fields: Some(json!({"industry": industry, "seats": rng.gen_range(3..500),
                                       "renewal": format!("2027-{:02}-15", i % 12 + 1)})),
            assigned_to: Some(people[i % people.len()]),
        };
        created.push(customers::store::create(tx, &Valid::new(new)?).await?);
    }
    for (customer, name) in created
        .iter()
        .zip(["Website relaunch", "Data migration", "Onboarding"])
    {
        let project = projects::NewProject {
            name: name.into(),
            description: Some(format!("For {}", customer.name)),
            customer_id: Some(customer.id),
            status: Some(ProjectStatus::Active),
            priority: Some(Priority::High),
            start_date: Some(Utc::now().date_naive()),
            due_date: Some(Utc::now().date_naive() + chrono::Days::new(90)),
            budget: Some("25000.00".into()),
            progress_manual: None,
            project_manager_id: Some(people[0]),
        };
        let project = projects::store::create(tx, &Valid::new(project)?).await?;
        let mut parent = None;
        for (j, title) in [
            "Kick-off",
            "Requirements",
            "Design",
            "Build",
            "Review",
            "Launch",
            "Retro",
        ]
        .iter()
        .enumerate()
        {
            let task = tasks::NewTask {
                title: (*title).into(),
                description: None,
                parent_task_id: if j == 2 { parent } else { None },
                status: Some(TaskStatus::Todo),
                priority: Some(Priority::ALL[j % Priority::ALL.len()]),
                assigned_to: Some(people[j % people.len()]),
                due_date: Some(Utc::now() + chrono::Duration::days(7 * j as i64 + 7)),
                estimated_hours: Some(format!("{}", 4 + j * 2)),
                actual_hours: None,
                tags: Some(vec!["demo".into()]),
            };
            let task = tasks::store::create(tx, project.id, &Valid::new(task)?).await?;
            parent = parent.or(Some(task.id));
            let column = [
                TaskStatus::Done,
                TaskStatus::Done,
                TaskStatus::InProgress,
                TaskStatus::InProgress,
                TaskStatus::Review,
                TaskStatus::Todo,
                TaskStatus::Todo,
            ][j];
            if column != TaskStatus::Todo {
                let to = Move {
                    status: Some(column),
                    after: None,
                    before: None,
                };
                tasks::store::move_task(tx, project.id, task.id, &Valid::new(to)?).await?;
            }
        }
    }
    Ok(created.iter().map(|c| c.id).collect())
}

/// A week of appointments: on each working day of the next seven (always five), a morning
/// meeting with a customer for each of `people` and an afternoon call (booked the way the API
/// books them: the database schedules their reminders). Returns how many.
async fn seed_appointments(
    tx: &mut OrgTx,
    people: &[Uuid],
    customers: &[Uuid],
) -> Result<usize, AnyError> {
    use tenantry_server::crm::appointments::{store, AppointmentStatus, NewAppointment};
    let tomorrow = Utc::now().date_naive() + chrono::Days::new(1);
    let mut booked = 0;
    let working_days = (0..7_u64)
        .map(|day| tomorrow + chrono::Days::new(day))
        .filter(|date| date.weekday().num_days_from_monday() < 5);
    for (day, date) in working_days.enumerate() {
        for (i, person) in people.iter().enumerate() {
            for (hour, title, online) in
                [(9, "Customer meeting", false), (14, "Follow-up call", true)]
            {
                let start = date
                    .and_hms_opt(hour + i as u32, 0, 0)
                    .ok_or("a time of day")?
                    .and_utc();
                let new = NewAppointment {
                    title: title.into(),
                    description: Some("Booked by `tenantry seed`".into()),
                    start_time: start,
                    end_time: start + chrono::Duration::minutes(45),
                    timezone: Some("Europe/Berlin".into()),
                    customer_id: customers.get((day + i) % customers.len().max(1)).copied(),
                    assigned_to: Some(*person),
                    status: Some(if day == 0 {
                        AppointmentStatus::Confirmed
                    } else {
                        AppointmentStatus::Scheduled
                    }),
                    location: (!online).then(|| "Office, room 2".into()),
                    meeting_url: online.then(|| "https://meet.example.com/demo".into()),
                };
                store::create(tx, &Valid::new(new)?).await?;
                booked += 1;
            }
        }
    }
    Ok(booked)
}

/// A small public site, written and published by the owner the way the API does: a home page,
/// an about page, three blog posts and a documentation page, plus a draft the public never sees.
/// Returns how many are published.
async fn seed_site(tx: &mut OrgTx) -> Result<usize, AnyError> {
    use tenantry_server::content::{store, ContentStatus, ContentType, NewContent, SeoMeta};
    let pages = [
        ("Welcome to Demo Company", Some("home"), ContentType::Page, ContentStatus::Published,
         "# Welcome\n\nWe help small teams **grow**. Read [about us](about) or our blog."),
        ("About us", Some("about"), ContentType::Page, ContentStatus::Published,
         "# About us\n\nFounded in 2026.\n\n| Team | People |\n|---|---|\n| Growth | 3 |\n| Support | 2 |"),
        ("We launched", None, ContentType::BlogPost, ContentStatus::Published,
         "Today we launched.\n\n- KPIs\n- CRM\n- Appointments"),
        ("Our pricing, explained", None, ContentType::BlogPost, ContentStatus::Published,
         "Plans start free. ~~Hidden fees~~ none."),
        ("Three habits of growing teams", None, ContentType::BlogPost, ContentStatus::Published,
         "1. Measure\n2. Talk to customers\n3. Ship"),
        ("Getting started", None, ContentType::Documentation, ContentStatus::Published,
         "## Sign in\n\n```sh\ncurl -X POST /v1/auth/sign-in\n```"),
        ("Next quarter's plans", None, ContentType::BlogPost, ContentStatus::Draft,
         "Not ready yet."),
    ];
    let mut published = 0;
    for (title, slug, content_type, status, content) in pages {
        let new = NewContent {
            title: title.into(),
            slug: slug.map(str::to_string),
            content_type: Some(content_type),
            content: Some(content.into()),
            excerpt: content
                .lines()
                .find(|l| !l.starts_with('#') && !l.is_empty())
                .map(str::to_string),
            status: Some(status),
            author_id: None,
            publish_at: None,
            seo_meta: Some(SeoMeta {
                title: Some(title.into()),
                ..SeoMeta::default()
            }),
        };
        store::create(tx, &Valid::new(new)?).await?;
        published += usize::from(status == ContentStatus::Published);
    }
    Ok(published)
}

/// The founder's first Fast Track entries (WOOP, Know Thyself), and edit grants on both tools
/// for a member.
async fn seed_tools(tx: &mut OrgTx, member: Uuid) -> Result<(), AnyError> {
    let catalog = Catalog::shipped()?;
    let entries = [
        (
            "woop",
            json!({"wish": "Reach $80k MRR this year", "outcome": "A team that can plan, not firefight",
                   "obstacle": "I say yes to every feature request",
                   "plan": "If a request arrives, then I log it and decide on Fridays"}),
        ),
        (
            "know_thyself",
            json!({"values": ["honesty", "craft"], "strengths": ["selling the vision"],
                   "weaknesses": ["delegating"], "purpose": "Tools that let small teams punch above their weight"}),
        ),
    ];
    for (slug, data) in entries {
        let grant = NewGrant {
            user_id: member,
            tool: slug.into(),
            access_level: AccessLevel::Edit,
            expires_at: None,
        };
        fasttrack::store::grant(tx, &catalog, &grant).await?;
        let entry = NewEntry {
            data,
            status: Some(Status::InProgress),
        };
        fasttrack::store::create(tx, &catalog, catalog.get(slug)?, &entry).await?;
    }
    Ok(())
}

/// (name, unit, category, direction, start value, daily growth, noise, target, baseline)
type KpiSpec = (
    &'static str,
    &'static str,
    &'static str,
    Direction,
    f64,
    f64,
    f64,
    f64,
    f64,
);

#[rustfmt::skip]
const DEMO_KPIS: [KpiSpec; 12] = [
    ("Monthly recurring revenue", "$", "revenue", Direction::HigherIsBetter, 20_000.0, 0.0018, 0.01, 80_000.0, 20_000.0),
    ("Active users", "users", "growth", Direction::HigherIsBetter, 1_200.0, 0.002, 0.02, 5_000.0, 1_000.0),
    ("Signups per day", "users", "growth", Direction::HigherIsBetter, 40.0, 0.001, 0.2, 120.0, 30.0),
    ("Trial conversion", "%", "growth", Direction::HigherIsBetter, 8.0, 0.0004, 0.05, 15.0, 8.0),
    ("Monthly churn", "%", "revenue", Direction::LowerIsBetter, 6.0, -0.0008, 0.05, 2.5, 6.0),
    ("Net promoter score", "points", "engagement", Direction::HigherIsBetter, 25.0, 0.0006, 0.04, 50.0, 20.0),
    ("Customer acquisition cost", "$", "efficiency", Direction::LowerIsBetter, 420.0, -0.0004, 0.05, 250.0, 450.0),
    ("Lifetime value", "$", "revenue", Direction::HigherIsBetter, 1_800.0, 0.0009, 0.02, 4_000.0, 1_500.0),
    ("Support tickets per day", "tickets", "engagement", Direction::LowerIsBetter, 60.0, -0.0005, 0.15, 25.0, 60.0),
    ("Uptime", "%", "reliability", Direction::HigherIsBetter, 99.5, 0.000005, 0.001, 99.95, 99.0),
    ("Monthly burn", "$", "efficiency", Direction::LowerIsBetter, 90_000.0, 0.0002, 0.01, 70_000.0, 100_000.0),
    ("Runway", "months", "efficiency", Direction::HigherIsBetter, 18.0, -0.0005, 0.01, 24.0, 12.0),
];

/// A dozen KPIs with two years of daily points (a trend with noise, reproducible), and goals.
async fn seed_kpis(tx: &mut OrgTx) -> Result<(), AnyError> {
    let mut rng = StdRng::seed_from_u64(7);
    let today = Utc::now().date_naive();
    let mut ids = Vec::new();
    for (name, unit, category, direction, start, growth, noise, target, baseline) in DEMO_KPIS {
        let kpi = kpis::store::create(
            tx,
            &Valid::new(NewKpi {
                name: name.into(),
                description: None,
                target_value: Some(target),
                unit: Some(unit.into()),
                category: Some(category.into()),
                direction: Some(direction),
                baseline: Some(baseline),
                initial_value: None,
            })?,
        )
        .await?;
        let points: Vec<NewDataPoint> = (0..730)
            .map(|day| {
                let trend = start * (1.0 + growth).powi(day);
                let jitter = 1.0 + noise * (rng.gen::<f64>() * 2.0 - 1.0);
                let date = today - chrono::Duration::days(i64::from(729 - day));
                NewDataPoint {
                    value: (trend * jitter * 100.0).round() / 100.0,
                    observed_at: date.and_hms_opt(12, 0, 0).map(|t| t.and_utc()),
                    source: Some("seed".into()),
                }
            })
            .collect();
        kpis::store::record(tx, kpi.id, &Valid::new(points)?).await?;
        ids.push(kpi.id);
    }
    for (title, linked) in [
        ("Reach $80k MRR", &[(0, 3.0), (4, 1.0), (7, 1.0)][..]),
        ("Grow the user base", &[(1, 2.0), (2, 1.0), (3, 1.0)][..]),
    ] {
        let goal = goals::store::create(
            tx,
            &Valid::new(NewGoal {
                title: title.into(),
                description: None,
                target_date: Some(today + chrono::Duration::days(180)),
                status: None,
            })?,
        )
        .await?;
        for (index, weight) in linked {
            goals::store::link(
                tx,
                goal.id,
                ids[*index],
                &Valid::new(Link {
                    weight: Some(*weight),
                })?,
            )
            .await?;
        }
    }
    Ok(())
}
