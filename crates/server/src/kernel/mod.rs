//! The kernel every domain slice stands on, and which knows nothing of HTTP: the one error type,
//! pagination, input helpers, and the organization access check. Layers point one way:
//! `http` (router, extractors, problem responses) → slices (`routes` → model → `store`) → kernel.

pub mod access;
pub mod csv;
pub mod error;
pub mod input;
pub mod org_tx;
pub mod page;
pub mod text_enum;
