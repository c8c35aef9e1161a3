//! Encryption keys. The master key is an age X25519 identity kept outside the state
//! store; every other secret svcdash must read back (backup keys, engine passwords)
//! is stored sealed under it: age-encrypted to the master recipient, base64 text.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};
use age::x25519;
use anyhow::{Context, bail};
use base64::Engine;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The key that seals every stored secret.
#[derive(Clone)]
pub struct MasterKey {
    identity: x25519::Identity,
    recipient: x25519::Recipient,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    pub fn generate() -> Self {
        Self::from_identity(x25519::Identity::generate())
    }

    fn from_identity(identity: x25519::Identity) -> Self {
        let recipient = identity.to_public();
        Self { identity, recipient }
    }

    /// Parses an `AGE-SECRET-KEY-1...` string.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let identity = x25519::Identity::from_str(text.trim())
            .map_err(|e| anyhow::anyhow!("the master key is not an age X25519 secret key: {e}"))?;
        Ok(Self::from_identity(identity))
    }

    /// Reads the key file, or creates it (mode 0600) when it does not exist yet.
    pub fn load_or_generate(path: &Path) -> anyhow::Result<Self> {
        match fs::read_to_string(path) {
            Ok(text) => {
                let mode = fs::metadata(path)?.permissions().mode();
                if mode & 0o077 != 0 {
                    bail!(
                        "master key file {} is readable by others (mode {:o}); chmod 600 it",
                        path.display(),
                        mode & 0o777
                    );
                }
                Self::parse(&text).with_context(|| format!("reading master key file {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                key.save(path)?;
                tracing::info!(path = %path.display(), "generated a new master key");
                Ok(key)
            }
            Err(e) => Err(e).with_context(|| format!("reading master key file {}", path.display())),
        }
    }

    /// Writes the key to a new file (mode 0600, flushed to disk); an existing file is an error.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating master key file {}", path.display()))?;
        file.write_all(self.identity.to_string().expose_secret().as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        Ok(())
    }

    /// The key as text, for writing to a file by `svcdash master-key` tooling.
    pub fn to_secret_string(&self) -> SecretString {
        self.identity.to_string()
    }

    pub fn seal(&self, secret: &str) -> anyhow::Result<String> {
        let sealed = age::encrypt(&self.recipient, secret.as_bytes()).context("sealing a secret")?;
        Ok(B64.encode(sealed))
    }

    pub fn unseal(&self, sealed: &str) -> anyhow::Result<SecretString> {
        let bytes = B64.decode(sealed).context("a sealed secret is not base64")?;
        let plain = age::decrypt(&self.identity, &bytes)
            .context("a sealed secret does not open with this master key (was the master key changed?)")?;
        let text = String::from_utf8(plain).context("a sealed secret is not UTF-8")?;
        Ok(SecretString::from(text))
    }
}

/// The key a backup is encrypted with.
pub enum BackupKey {
    /// An X25519 identity generated for the instance.
    Generated(x25519::Identity),
    /// A person's passphrase (age's scrypt recipient), so that `age -d` opens a
    /// downloaded backup with nothing but the passphrase.
    Personal(SecretString),
}

impl BackupKey {
    pub fn generate() -> Self {
        Self::Generated(x25519::Identity::generate())
    }

    pub fn personal(passphrase: SecretString) -> Self {
        Self::Personal(passphrase)
    }

    /// The text stored (sealed) in the state store.
    pub fn to_secret_string(&self) -> SecretString {
        match self {
            Self::Generated(identity) => identity.to_string(),
            Self::Personal(passphrase) => passphrase.clone(),
        }
    }

    /// A generated key from its stored text.
    pub fn parse(text: &SecretString) -> anyhow::Result<Self> {
        let identity = x25519::Identity::from_str(text.expose_secret())
            .map_err(|e| anyhow::anyhow!("a stored backup key is not an age X25519 key: {e}"))?;
        Ok(Self::Generated(identity))
    }

    pub fn recipient(&self) -> Box<dyn age::Recipient + Send> {
        match self {
            Self::Generated(identity) => Box::new(identity.to_public()),
            Self::Personal(passphrase) => Box::new(age::scrypt::Recipient::new(passphrase.clone())),
        }
    }

    pub fn identity(&self) -> Box<dyn age::Identity + Send> {
        match self {
            Self::Generated(identity) => Box::new(identity.clone()),
            Self::Personal(passphrase) => Box::new(age::scrypt::Identity::new(passphrase.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_master_key() {
        let key = MasterKey::generate();
        let sealed = key.seal("s3cret").unwrap();
        assert!(!sealed.contains("s3cret"));
        assert_eq!(key.unseal(&sealed).unwrap().expose_secret(), "s3cret");
        assert!(MasterKey::generate().unseal(&sealed).is_err());
    }

    #[test]
    fn master_key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let first = MasterKey::load_or_generate(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = MasterKey::load_or_generate(&path).unwrap();
        let sealed = first.seal("x").unwrap();
        assert_eq!(again.unseal(&sealed).unwrap().expose_secret(), "x");
    }

    #[test]
    fn master_key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::load_or_generate(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load_or_generate(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
