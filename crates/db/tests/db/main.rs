//! Database-level tests: migrations, the guard, row-level security, the audit trail, the cluster.
//! Tenant data is always touched as the runtime role.

mod audit;
mod cluster;
mod fasttrack;
mod forgery;
mod guard;
mod isolation;
mod kpis;
mod migrations;
mod support;
mod tenant;
