//! HTTP API tests: the real router on a random port, over real HTTP, against a per-test
//! database reached as the runtime role.

mod ai;
mod api_keys;
mod appointments;
mod auth;
mod billing;
mod burst;
mod calendar_feed;
mod content;
mod crm;
mod crm_board;
mod docs;
mod email;
mod fasttrack;
mod faults;
mod goals;
mod helpers;
mod input;
mod integrations;
mod integrations_google;
mod integrations_schedule;
mod invitations;
mod jobs;
mod kpis;
mod lifecycle;
mod metering;
mod oidc;
mod orgs;
mod plans;
mod platform;
mod platform_admin;
mod provider;
mod proxies;
mod smtp;
mod stripe;
mod teams;
