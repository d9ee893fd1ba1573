//! The data directory: an append-only block file, the list of invalidated blocks, the wallet.
//!
//! `blocks.dat` holds every accepted block as `[length: u32 LE][block]`, in acceptance order, so a
//! parent always precedes its children. On start the node replays it through full validation,
//! rebuilding the tree, the UTXO set and the undo data; a torn record at the end (a crash mid-append)
//! is cut off. Small files (`invalidated.txt`, `wallet.json`) are replaced atomically by writing a
//! temporary file and renaming it over the old one.

use std::{
    fs::{self, File, OpenOptions},
    io::{Read, Write},
    path::{Path, PathBuf},
};

use bitcoin::{Block, BlockHash, consensus::encode};

use crate::error::StoreError;

const BLOCKS: &str = "blocks.dat";
const INVALIDATED: &str = "invalidated.txt";

/// The open data directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    blocks: File,
    size: u64,
}

/// What was stored before this start.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Blocks in acceptance order.
    pub blocks: Vec<Block>,
    /// Blocks `invalidateblock` marked and `reconsiderblock` did not clear.
    pub invalidated: Vec<BlockHash>,
}

impl Store {
    /// Opens (creating) `dir` and reads what it holds.
    pub fn open(dir: &Path) -> Result<(Self, Loaded), StoreError> {
        fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        let path = dir.join(BLOCKS);
        let mut bytes = Vec::new();
        if path.exists() {
            File::open(&path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(StoreError::io(&path))?;
        }
        let mut loaded = Loaded::default();
        let mut offset = 0usize;
        while let Some(len_bytes) = bytes.get(offset..offset + 4) {
            let len = u32::from_le_bytes(len_bytes.try_into().unwrap_or_default()) as usize;
            let Some(record) = bytes.get(offset + 4..offset + 4 + len) else { break };
            loaded.blocks.push(encode::deserialize(record)?);
            offset += 4 + len;
        }
        let blocks =
            OpenOptions::new().create(true).append(true).open(&path).map_err(StoreError::io(&path))?;
        if offset < bytes.len() {
            tracing::warn!(target: "devnet::bitcoin", kept = offset, dropped = bytes.len() - offset, "cut a torn record off the block file");
            blocks.set_len(offset as u64).map_err(StoreError::io(&path))?;
        }
        if let Some(text) = read_optional(&dir.join(INVALIDATED))? {
            loaded.invalidated =
                String::from_utf8_lossy(&text).lines().filter_map(|line| line.trim().parse().ok()).collect();
        }
        Ok((Self { dir: dir.to_path_buf(), blocks, size: offset as u64 }, loaded))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes in the block file (`size_on_disk`).
    pub const fn size_on_disk(&self) -> u64 {
        self.size
    }

    /// Appends `block` durably.
    pub fn append_block(&mut self, block: &Block) -> Result<(), StoreError> {
        let bytes = encode::serialize(block);
        let mut record = Vec::with_capacity(bytes.len() + 4);
        record.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
        record.extend_from_slice(&bytes);
        let path = self.dir.join(BLOCKS);
        self.blocks
            .write_all(&record)
            .and_then(|()| self.blocks.sync_data())
            .map_err(StoreError::io(path))?;
        self.size += record.len() as u64;
        Ok(())
    }

    /// Replaces the list of invalidated blocks.
    pub fn save_invalidated(&self, hashes: &[BlockHash]) -> Result<(), StoreError> {
        let text: String = hashes.iter().map(|hash| format!("{hash}\n")).collect();
        self.write_atomic(INVALIDATED, text.as_bytes())
    }

    /// Replaces the file `name` in the data directory with `bytes`, atomically.
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        write_atomic(&self.dir.join(name), bytes)
    }
}

/// Replaces `path` with `bytes`: write a temporary file, sync it, rename it over.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(StoreError::io(path))
}

/// The contents of `path`, or `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(StoreError::Io { path: path.to_path_buf(), source: err }),
    }
}
