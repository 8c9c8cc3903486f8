//! Tenantry's domains and the HTTP API that serves them.
//!
//! Each domain is a vertical slice: its model and SQL in `mod.rs`/`store.rs`, its HTTP routes in
//! `routes.rs`. Every store function takes a [`tenantry_db::TenantTx`], never a pool.

pub mod ai;
pub mod api_keys;
pub mod audit;
pub mod billing;
pub mod content;
pub mod crm;
pub mod email;
pub mod fasttrack;
pub mod goals;
pub mod http;
pub mod identity;
pub mod integrations;
pub mod invitations;
pub mod jobs;
pub mod kernel;
pub mod kpis;
pub mod lifecycle;
pub mod metrics;
pub mod orgs;
pub mod platform;
pub mod vault;

pub use kernel::error::{Error, Result};
