//! The node's persistent ed25519 identity.

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
};

use libp2p::identity::Keypair;

/// Why the identity key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is not a protobuf-encoded keypair.
    #[error("{path}: not a protobuf-encoded keypair: {reason}")]
    Decode {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key could not be encoded.
    #[error("encoding the keypair: {0}")]
    Encode(String),
}

/// Loads the keypair at `path`, or generates an ed25519 keypair and writes it there (mode 0600,
/// through a temporary file renamed into place, so a crash never leaves half a key).
pub fn load_or_create_identity(path: &Path) -> Result<Keypair, KeyError> {
    let io_err = |source| KeyError::Io { path: path.to_path_buf(), source };
    match std::fs::read(path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes)
            .map_err(|e| KeyError::Decode { path: path.to_path_buf(), reason: e.to_string() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            let bytes = keypair.to_protobuf_encoding().map_err(|e| KeyError::Encode(e.to_string()))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io_err)?;
            }
            let tmp = path.with_extension("tmp");
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&tmp).map_err(io_err)?;
            file.write_all(&bytes).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
            drop(file);
            std::fs::rename(&tmp, path).map_err(io_err)?;
            let peer_id = keypair.public().to_peer_id();
            tracing::info!(target: "alys::network", path = %path.display(), %peer_id, "created a network identity");
            Ok(keypair)
        }
        Err(e) => Err(io_err(e)),
    }
}
