//! The credential vault's keys and `tenantry vault …`: where the keys come from (never the
//! database), a new key, which keys seal how many secrets, and rotation.

use std::path::{Path, PathBuf};

use tenantry_server::vault::Vault;

use crate::database::Database;
use crate::AnyError;

/// Where the vault's keys come from: `id:base64` entries, the first the primary.
#[derive(clap::Args, Clone)]
pub struct VaultOptions {
    /// The keys themselves, comma-separated (prefer a file or a secret store's environment).
    #[arg(
        long,
        global = true,
        env = "TENANTRY_VAULT_KEYS",
        hide_env_values = true
    )]
    vault_keys: Option<String>,
    /// A file of keys, one per line (default: DATA_DIR/vault.keys, made on first use).
    #[arg(long, global = true, env = "TENANTRY_VAULT_KEYS_FILE")]
    vault_keys_file: Option<PathBuf>,
}

impl VaultOptions {
    /// The configured vault; with neither option, the data directory's key file, generated with
    /// one key (readable by this user only) when it does not exist.
    pub fn load(&self, data_dir: &Path) -> Result<Vault, AnyError> {
        if let Some(spec) = &self.vault_keys {
            return Ok(Vault::from_spec(spec)?);
        }
        let file = crate::key_file::locate(
            self.vault_keys_file.as_deref(),
            data_dir,
            "vault.keys",
            || {
                let id = format!("k{}", chrono::Utc::now().format("%Y%m%d"));
                format!(
                    "# Tenantry vault keys: id:base64, the first seals new secrets. Keep a copy apart from backups of the database.\n{}\n",
                    Vault::new_key_entry(&id)
                )
            },
            "the vault's secrets open only with it: back this file up",
        )?;
        let spec = std::fs::read_to_string(&file)
            .map_err(|e| format!("vault keys {}: {e}", file.display()))?;
        Ok(Vault::from_spec(&spec).map_err(|e| format!("{}: {e}", file.display()))?)
    }
}

#[derive(clap::Subcommand)]
pub enum VaultAction {
    /// Print a new key entry (`id:base64`) to put first in the keys, making it the primary.
    NewKey { id: String },
    /// The configured keys (the primary first) and how many secrets each seals.
    Status,
    /// Re-seal every secret not under the primary key, in batches (resumable); afterwards the
    /// other keys can be removed.
    Rotate {
        #[arg(long, default_value_t = 500)]
        batch: i64,
    },
}

pub async fn run(
    database: &Database,
    options: &VaultOptions,
    data_dir: &Path,
    action: VaultAction,
) -> Result<(), AnyError> {
    if let VaultAction::NewKey { id } = &action {
        // Checked by parsing it back.
        let entry = Vault::new_key_entry(id);
        Vault::from_spec(&entry)?;
        println!("{entry}");
        return Ok(());
    }
    let vault = options.load(data_dir)?;
    let owner = database.owner_pool().await?;
    database.migrate(&owner, None).await?;
    let result = act(&owner.0, &vault, action).await;
    owner.0.close().await;
    result
}

async fn act(owner: &sqlx::PgPool, vault: &Vault, action: VaultAction) -> Result<(), AnyError> {
    use tenantry_server::integrations::store;
    match action {
        VaultAction::NewKey { .. } => {}
        VaultAction::Status => {
            println!(
                "keys: {} (primary: {})",
                vault.key_ids().join(", "),
                vault.primary_key_id()
            );
            let counts = store::sealed_by_key(owner).await?;
            if counts.is_empty() {
                println!("no sealed secrets");
            }
            for (key, n) in counts {
                let state = if key == vault.primary_key_id() {
                    "primary"
                } else if vault.key_ids().contains(&key.as_str()) {
                    "to rotate"
                } else {
                    "NOT CONFIGURED: these secrets cannot be opened"
                };
                println!("{key}: {n} secrets ({state})");
            }
        }
        VaultAction::Rotate { batch } => {
            let before: i64 = store::sealed_by_key(owner)
                .await?
                .iter()
                .filter(|(key, _)| key != vault.primary_key_id())
                .map(|(_, n)| n)
                .sum();
            let started = std::time::Instant::now();
            let mut done = 0u64;
            loop {
                let n = store::rewrap_batch(owner, vault, batch.clamp(1, 10_000)).await?;
                if n == 0 {
                    break;
                }
                done += n;
                println!("re-sealed {done} of {before}");
            }
            println!(
                "rotation done: {done} secrets re-sealed under {} in {:.1} s",
                vault.primary_key_id(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
