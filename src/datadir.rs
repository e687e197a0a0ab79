//! The data folder of a node: everything it needs, created on first start.
//!
//! ```text
//! <data dir>/identity.json   origin, Ed25519 signing key, commit-evidence secret (0600)
//! <data dir>/user.token      the first user's bearer token (0600), if no user is configured
//! <data dir>/tls/            node.crt, node.key (self-signed, see stele-api)
//! <data dir>/ledger/         the ledger chunks (stele-ledger)
//! <data dir>/snapshots/      KV snapshots bound to signed checkpoints (stele-consensus)
//! ```
//!
//! Everything in it is for the node's user only: folders 0700, files 0600.
//! `stele start` sets the umask to [`UMASK`] before creating anything, and
//! [`DataDir::open`] removes group and other bits from whatever an older version
//! (or an operator) left looser, with a log line.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use stele_consensus::ServiceIdentity;
use stele_history::hash::encode_lower_hex;
use stele_history::{Digest, SigningKey};

/// Mode of the data folder and of every folder in it.
pub const DIR_MODE: u32 = 0o700;

/// Mode of a secret file (identity, keys, tokens).
pub const SECRET_FILE_MODE: u32 = 0o600;

/// The process umask of `stele start`: no group or other bits on anything it
/// (or a library under it) creates, whatever mode the creating code asks for.
pub const UMASK: u32 = 0o077;

/// Paths named in the log line when modes are tightened (the count is complete).
const TIGHTENED_LOGGED_MAX: usize = 5;

/// The identity file: the service's secrets, hex-encoded.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFile {
    origin: String,
    signing_key: Digest,
    commit_secret: Digest,
}

/// The paths inside a data folder.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Creates the folder if needed (0700), and removes group and other bits
    /// from anything in it that has them (logged).
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(root)
            .with_context(|| format!("creating the data folder {}", root.display()))?;
        let mut tightened = Vec::new();
        tighten_modes(root, &mut tightened)?;
        if !tightened.is_empty() {
            let shown: Vec<String> = tightened
                .iter()
                .take(TIGHTENED_LOGGED_MAX)
                .map(|path| path.display().to_string())
                .collect();
            tracing::warn!(
                count = tightened.len(),
                paths = %shown.join(", "),
                "removed group and other permissions in the data folder (folders are now 0700, files 0600)"
            );
        }
        Ok(DataDir {
            root: root.to_owned(),
        })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ledger folder.
    pub fn ledger(&self) -> PathBuf {
        self.root.join("ledger")
    }

    /// The snapshot folder.
    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// The TLS folder.
    pub fn tls(&self) -> PathBuf {
        self.root.join("tls")
    }

    /// The first user's token file.
    pub fn user_token(&self) -> PathBuf {
        self.root.join("user.token")
    }

    /// Loads the identity, or creates one named `origin` (or after its key) on
    /// first start. Returns it and whether it was created.
    pub fn identity(&self, origin: Option<&str>) -> anyhow::Result<(ServiceIdentity, bool)> {
        let path = self.root.join("identity.json");
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let file: IdentityFile = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a valid identity file", path.display()))?;
            if let Some(origin) = origin {
                if origin != file.origin {
                    bail!(
                        "the configured origin {origin:?} differs from {:?} in {}: the origin of an existing ledger cannot change",
                        file.origin,
                        path.display()
                    );
                }
            }
            let identity = ServiceIdentity::new(
                &file.origin,
                SigningKey::from_bytes(file.signing_key.as_bytes()),
                file.commit_secret.0,
            )?;
            return Ok((identity, false));
        }
        let signing_key = SigningKey::from_bytes(&random_bytes()?);
        let commit_secret = random_bytes()?;
        let origin = match origin {
            Some(origin) => origin.to_owned(),
            None => {
                let key = signing_key.verifying_key().to_bytes();
                format!("localhost/stele-{}", encode_lower_hex(&key[..4]))
            }
        };
        let file = IdentityFile {
            origin: origin.clone(),
            signing_key: Digest(signing_key.to_bytes()),
            commit_secret: Digest(commit_secret),
        };
        let text = serde_json::to_string_pretty(&file).context("encoding the identity")?;
        write_secret(&path, text.as_bytes())?;
        let identity = ServiceIdentity::new(&origin, signing_key, commit_secret)?;
        Ok((identity, true))
    }

    /// Loads this node's peer key (`node.key`, 64 hex digits, 0600), or creates
    /// it. It authenticates this node's Raft messages to its peers.
    pub fn node_key(&self) -> anyhow::Result<SigningKey> {
        let path = self.root.join("node.key");
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let bytes: Digest =
                serde_json::from_value(serde_json::Value::String(text.trim().to_owned()))
                    .with_context(|| format!("{} must hold 64 hex digits", path.display()))?;
            return Ok(SigningKey::from_bytes(bytes.as_bytes()));
        }
        let key = SigningKey::from_bytes(&random_bytes()?);
        write_secret(
            &path,
            format!("{}\n", encode_lower_hex(&key.to_bytes())).as_bytes(),
        )?;
        Ok(key)
    }

    /// BFT mode (`cluster-init --mode bft`): gives this node's identity file a
    /// fresh signing key of its own, keeping the origin and the commit
    /// secret: no two validators hold the same key.
    pub fn replace_signing_key(&self) -> anyhow::Result<()> {
        let path = self.root.join("identity.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut file: IdentityFile = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid identity file", path.display()))?;
        file.signing_key = Digest(random_bytes()?);
        let text = serde_json::to_string_pretty(&file).context("encoding the identity")?;
        write_secret(&path, text.as_bytes())
    }

    /// Loads the first user's token, or creates it. Returns it and whether it was
    /// created.
    pub fn token(&self) -> anyhow::Result<(String, bool)> {
        let path = self.user_token();
        if path.exists() {
            let token = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let token = token.trim().to_owned();
            if token.len() < 32 {
                bail!(
                    "{} holds a token shorter than 32 characters",
                    path.display()
                );
            }
            return Ok((token, false));
        }
        let token = random_token()?;
        write_secret(&path, format!("{token}\n").as_bytes())?;
        Ok((token, true))
    }
}

/// A new bearer token: 64 hex digits from the operating system's generator.
pub fn random_token() -> anyhow::Result<String> {
    Ok(encode_lower_hex(&random_bytes()?))
}

/// 32 bytes from the operating system's generator.
fn random_bytes() -> anyhow::Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    Ok(bytes)
}

/// Sets the process umask to [`UMASK`]: every file and folder created from now
/// on is for this user only.
pub fn restrict_new_files() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(UMASK));
}

/// Removes the group and other bits of `path` and of everything under it (not
/// following symbolic links), pushing each path changed onto `tightened`.
fn tighten_modes(path: &Path, tightened: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let metadata = std::fs::symlink_metadata(path)
        .with_context(|| format!("reading the mode of {}", path.display()))?;
    if metadata.file_type().is_symlink() {
        return Ok(());
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & UMASK != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !UMASK))
            .with_context(|| format!("restricting the mode of {}", path.display()))?;
        tightened.push(path.to_owned());
    }
    if metadata.is_dir() {
        let entries =
            std::fs::read_dir(path).with_context(|| format!("listing {}", path.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", path.display()))?;
            tighten_modes(&entry.path(), tightened)?;
        }
    }
    Ok(())
}

/// Writes a secret file readable by its owner only, atomically (temporary file,
/// fsync, rename), so a crash never leaves half a key. The temporary file is
/// always created afresh (`O_EXCL`, mode 0600): one left by a crash, or planted,
/// is removed first, so its mode or owner never carries over to the secret.
pub fn write_secret(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temporary = path.with_extension("tmp");
    match std::fs::remove_file(&temporary) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(error).with_context(|| format!("removing {}", temporary.display()));
        }
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(SECRET_FILE_MODE)
        .open(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("renaming {} into place", temporary.display()))?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)
            .and_then(|folder| folder.sync_all())
            .with_context(|| format!("syncing {}", parent.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn a_stale_temporary_file_does_not_lend_its_mode_to_a_secret() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("user.token");
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, b"stale").expect("written");
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        write_secret(&path, b"secret\n").expect("written");
        assert_eq!(mode(&path), SECRET_FILE_MODE);
        assert_eq!(std::fs::read(&path).expect("read"), b"secret\n");
        assert!(!temporary.exists());
    }

    #[test]
    fn open_tightens_a_loose_data_folder() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let root = dir.path().join("data");
        let ledger = root.join("ledger");
        std::fs::create_dir_all(&ledger).expect("created");
        let chunk = ledger.join("ledger_1");
        std::fs::write(&chunk, b"x").expect("written");
        for (path, loose) in [(&root, 0o755), (&ledger, 0o755), (&chunk, 0o644)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(loose)).expect("chmod");
        }
        DataDir::open(&root).expect("opened");
        assert_eq!(mode(&root), DIR_MODE);
        assert_eq!(mode(&ledger), DIR_MODE);
        assert_eq!(mode(&chunk), SECRET_FILE_MODE);
    }
}
