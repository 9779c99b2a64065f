//! Key files: a 32-byte Ed25519 seed as 64 hex digits on one line.
//!
//! The node's identity and a wallet's key are the same kind of file, so `ballot chain
//! keygen` makes either and a node's `node.key` can sign transfers of its rewards.

use std::io::Write as _;
use std::path::Path;

use ballot_ledger::Keypair;

use crate::Error;

/// A key pair and its seed.
#[derive(Debug)]
pub struct KeyFile {
    /// The 32-byte seed.
    pub seed: [u8; 32],
    /// The key pair of the seed.
    pub keypair: Keypair,
}

fn key_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Key { path: path.to_path_buf(), reason: reason.into() }
}

/// Parses 64 hex digits.
fn parse_seed(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl KeyFile {
    /// The key of `seed`.
    ///
    /// # Errors
    /// [`Error::Key`] if the seed is refused (never for 32 bytes).
    pub fn from_seed(seed: [u8; 32]) -> Result<Self, Error> {
        let keypair = Keypair::from_seed(&seed).map_err(|e| key_err(Path::new("(seed)"), e.to_string()))?;
        Ok(KeyFile { seed, keypair })
    }

    /// Reads a key file.
    ///
    /// # Errors
    /// [`Error::Key`] when it is missing, unreadable or not 64 hex digits.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| key_err(path, e.to_string()))?;
        let seed = parse_seed(&text)
            .ok_or_else(|| key_err(path, "expected 64 hex digits (a key made by `ballot chain keygen`)"))?;
        Self::from_seed(seed)
    }

    /// A new random key (from the operating system's generator).
    ///
    /// # Errors
    /// [`Error::Key`] if the generator fails.
    pub fn generate() -> Result<Self, Error> {
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| key_err(Path::new("(random)"), "the system's random generator failed"))?;
        Self::from_seed(seed)
    }

    /// Writes the key to a new file readable by its owner only; never overwrites.
    ///
    /// # Errors
    /// [`Error::Key`] if the file exists or cannot be written.
    pub fn write_new(&self, path: &Path) -> Result<(), Error> {
        use std::os::unix::fs::OpenOptionsExt as _;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| key_err(path, e.to_string()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| key_err(path, format!("{e} (keys are never overwritten)")))?;
        let hex: String = self.seed.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(file, "{hex}").and_then(|()| file.sync_all()).map_err(|e| key_err(path, e.to_string()))
    }

    /// Reads `path`, or creates it with a new key if it does not exist.
    ///
    /// # Errors
    /// As [`read`](Self::read) and [`write_new`](Self::write_new).
    pub fn load_or_create(path: &Path) -> Result<Self, Error> {
        if path.exists() {
            return Self::read(path);
        }
        let key = Self::generate()?;
        key.write_new(path)?;
        tracing::info!(path = %path.display(), key = %key.keypair.public(), "created a node key");
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_bad_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = KeyFile::load_or_create(&path).unwrap();
        assert_eq!(KeyFile::read(&path).unwrap().keypair.public(), key.keypair.public());
        assert!(key.write_new(&path).is_err(), "never overwritten");
        std::fs::write(dir.path().join("bad"), "xyz\n").unwrap();
        let err = KeyFile::read(&dir.path().join("bad")).unwrap_err().to_string();
        assert!(err.contains("64 hex digits"), "{err}");
        assert!(KeyFile::read(&dir.path().join("missing")).is_err());
    }
}
