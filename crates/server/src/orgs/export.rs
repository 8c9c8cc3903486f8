//! An owner's download of their organization's data: the bundle `tenantry org export` writes
//! (manifest.json and one NDJSON file per table), as a tar, holding what the owner may read —
//! row-level security and column privileges decide, so it adds no privileged path (another
//! member's private assistant conversations and credential hashes stay out; so do the vault's
//! sealed credentials, which the runtime role reads to use them).
//! The manifest says `"complete": false`: moving an organization is an operator's export.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use tenantry_db::bundle::{self, BundleError};
use tokio::io::AsyncReadExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::store;
use crate::http::{AppState, Forbidden, NotFound};
use crate::kernel::access::{require_role, Module, Role};
use crate::kernel::error::{Error, Result};
use crate::kernel::org_tx::OrgTx;

/// Under the long time limit: a large organization takes a while.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export_org))
        .layer(axum::Extension(Module::Orgs))
}

impl From<BundleError> for Error {
    fn from(e: BundleError) -> Self {
        match e {
            BundleError::Sqlx(e) => Error::from(e),
            other => Error::Internal(other.to_string()),
        }
    }
}

/// A directory of its own under the system's temporary directory, removed when dropped (after
/// the last byte of the download is sent, or when the client goes away).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!("tenantry-export-{}", Uuid::new_v4()));
        // Only the service's own user reads what it holds.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::Internal(format!("{}: {e}", dir.display())))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Download the organization's data (owners): a tar of `SLUG/manifest.json` and one
/// `SLUG/SCHEMA.TABLE.ndjson` per table (docs/OPERATIONS.md, "One organization's data"), read in
/// one snapshot, holding every row and column an owner may read.
#[utoipa::path(get, path = "/v1/orgs/{org}/export", tag = "organizations", security(("bearer" = [])),
    params(("org" = Uuid, Path, description = "Organization id")),
    responses(
        (status = 200, content_type = "application/x-tar", body = Vec<u8>, description = "The bundle as a tar"),
        Forbidden,
        NotFound,
    ))]
pub async fn export_org(State(state): State<AppState>, mut tx: OrgTx) -> Result<Response> {
    require_role(&mut tx, Role::Owner).await?;
    // The statement may take as long as the route (the pool's own limit is a request's).
    sqlx::query(&format!(
        "SET LOCAL statement_timeout = {}",
        state.config.bulk_timeout.as_millis()
    ))
    .execute(tx.conn())
    .await?;
    let id = tx.org();
    let org = store::get(&mut tx, id).await?.ok_or(Error::NotFound)?;
    let scratch = Scratch::new()?;
    let dir = scratch.0.join(&org.slug);
    bundle::export_readable(
        tx.conn(),
        bundle::Organization {
            id: org.id,
            slug: org.slug.clone(),
            name: org.name.clone(),
        },
        tenantry_db::migrate::latest_version(),
        &dir,
    )
    .await?;
    tx.commit().await?;
    let tar = scratch.0.join("bundle.tar");
    let (from, to, slug) = (dir.clone(), tar.clone(), org.slug.clone());
    tokio::task::spawn_blocking(move || write_tar(&from, &to, &slug))
        .await
        .map_err(|e| Error::Internal(format!("writing the tar: {e}")))??;
    let file = tokio::fs::File::open(&tar)
        .await
        .map_err(|e| Error::Internal(format!("{}: {e}", tar.display())))?;
    // The scratch goes with the stream: removed once the download ends, either way.
    let chunks = futures_util::stream::unfold(Some((file, scratch)), |state| async move {
        let (mut file, scratch) = state?;
        let mut buffer = vec![0u8; 1 << 16];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(buffer), Some((file, scratch))))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let filename = format!(
        "{}-{}.tenantry-bundle.tar",
        org.slug,
        chrono::Utc::now().format("%Y%m%d")
    );
    Ok((
        [
            (CONTENT_TYPE, "application/x-tar".to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

fn write_tar(dir: &Path, tar: &Path, prefix: &str) -> Result<()> {
    let failed = |e: std::io::Error| Error::Internal(format!("{}: {e}", tar.display()));
    let mut builder = tar::Builder::new(std::fs::File::create(tar).map_err(failed)?);
    builder.append_dir_all(prefix, dir).map_err(failed)?;
    builder
        .into_inner()
        .map_err(failed)?
        .sync_all()
        .map_err(failed)
}
