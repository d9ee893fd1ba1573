//! BLS12-381 authority keys (blst, public keys in G1 as in Alys and Ethereum's consensus layer).

use std::{
    fmt,
    path::{Path, PathBuf},
};

use alloy_primitives::{B256, hex};
use blst::{
    BLST_ERROR, Pairing, blst_p1_affine, blst_p2_affine,
    min_pk::{AggregatePublicKey, AggregateSignature, PublicKey, SecretKey, Signature},
};

/// Domain separation tag: the proof-of-possession ciphersuite Ethereum uses.
const DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// Why a key file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The key file could not be read.
    #[error("cannot read key file {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file's content is not a key.
    #[error("key file {}: {source}", path.display())]
    Key {
        /// The path.
        path: PathBuf,
        /// What is wrong with the content.
        source: KeyError,
    },
    /// Other users may read or write the file: a secret key must be private to the node's user.
    #[error(
        "key file {} has mode {mode:04o}: other users can read it; run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Permissions {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file could not be written.
    #[error("cannot write key file {}: {source}", path.display())]
    Write {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Why a key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not 32 bytes of hex.
    #[error("secret key must be 64 hex characters")]
    SecretFormat,
    /// The bytes are not a valid BLS secret key.
    #[error("invalid BLS secret key")]
    InvalidSecret,
    /// The bytes are not a valid compressed G1 public key (or it is the identity).
    #[error("invalid BLS public key")]
    InvalidPublicKey,
    /// The bytes are not a valid compressed G2 signature.
    #[error("invalid BLS signature encoding")]
    InvalidSignature,
    /// A signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// Nothing to aggregate.
    #[error("no signatures to aggregate")]
    Empty,
}

/// An authority's secret signing key.
pub struct AuthorityKey {
    secret: SecretKey,
    public: AuthorityPublicKey,
}

impl fmt::Debug for AuthorityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorityKey").field("public", &self.public).finish_non_exhaustive()
    }
}

impl AuthorityKey {
    /// Derives a key from 32 bytes of secret input keying material (EIP-2333 `KeyGen`).
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, KeyError> {
        let secret = SecretKey::key_gen(seed, &[]).map_err(|_| KeyError::InvalidSecret)?;
        Ok(Self::from_secret(secret))
    }

    /// Loads a raw 32-byte secret key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let secret = SecretKey::from_bytes(bytes).map_err(|_| KeyError::InvalidSecret)?;
        Ok(Self::from_secret(secret))
    }

    /// Reads a key file: the secret key as 64 hex characters (optionally `0x`-prefixed).
    ///
    /// On Unix the file must be private to its owner (no group or other permission bits): a key others
    /// can read is refused, as ssh refuses such keys.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyFileError> {
        let path = path.as_ref();
        let io = |source| KeyFileError::Io { path: path.to_owned(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = file.metadata().map_err(io)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyFileError::Permissions { path: path.to_owned(), mode });
            }
        }
        let text = std::io::read_to_string(file).map_err(io)?;
        Self::from_hex(text.trim()).map_err(|source| KeyFileError::Key { path: path.to_owned(), source })
    }

    /// Writes the secret key to a new file readable by its owner only (mode 0600 on Unix), as 64 hex
    /// characters; refuses to overwrite an existing file.
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<(), KeyFileError> {
        let path = path.as_ref();
        let write = |source| KeyFileError::Write { path: path.to_owned(), source };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(write)?;
        std::io::Write::write_all(&mut file, format!("{}\n", hex::encode(self.secret_bytes())).as_bytes())
            .map_err(write)?;
        file.sync_all().map_err(write)
    }

    /// Parses a secret key written as 64 hex characters (optionally `0x`-prefixed).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = hex::decode(text).map_err(|_| KeyError::SecretFormat)?;
        if bytes.len() != 32 {
            return Err(KeyError::SecretFormat);
        }
        Self::from_bytes(&bytes)
    }

    fn from_secret(secret: SecretKey) -> Self {
        let public = AuthorityPublicKey(secret.sk_to_pk());
        Self { secret, public }
    }

    /// The secret key's bytes, to write a key file. Handle with care.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes()
    }

    /// The public key.
    pub const fn public(&self) -> &AuthorityPublicKey {
        &self.public
    }

    /// Signs a 32-byte message (a block hash).
    pub fn sign(&self, message: &B256) -> BlsSignature {
        BlsSignature(self.secret.sign(message.as_slice(), DST, &[]))
    }
}

/// An authority's public key (48-byte compressed G1 point).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorityPublicKey(PublicKey);

impl fmt::Debug for AuthorityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.to_bytes()))
    }
}

impl fmt::Display for AuthorityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl AuthorityPublicKey {
    /// Parses and validates a compressed public key (not the identity, in the subgroup).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let key = PublicKey::key_validate(bytes).map_err(|_| KeyError::InvalidPublicKey)?;
        Ok(Self(key))
    }

    /// The compressed encoding.
    pub fn to_bytes(&self) -> [u8; 48] {
        self.0.compress()
    }

    /// Verifies `signature` over `message` by this key.
    pub fn verify(&self, message: &B256, signature: &BlsSignature) -> Result<(), KeyError> {
        match signature.0.verify(true, message.as_slice(), DST, &[], &self.0, false) {
            BLST_ERROR::BLST_SUCCESS => Ok(()),
            _ => Err(KeyError::BadSignature),
        }
    }
}

/// A BLS signature (96-byte compressed G2 point), single or aggregate.
#[derive(Clone, PartialEq, Eq)]
pub struct BlsSignature(Signature);

impl fmt::Debug for BlsSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.to_bytes()))
    }
}

impl BlsSignature {
    /// Parses a compressed signature (group membership is checked at verification).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        Signature::from_bytes(bytes).map(Self).map_err(|_| KeyError::InvalidSignature)
    }

    /// The compressed encoding.
    pub fn to_bytes(&self) -> [u8; 96] {
        self.0.compress()
    }

    /// Aggregates signatures over the same message.
    pub fn aggregate(signatures: &[&Self]) -> Result<Self, KeyError> {
        if signatures.is_empty() {
            return Err(KeyError::Empty);
        }
        let inner: Vec<&Signature> = signatures.iter().map(|s| &s.0).collect();
        AggregateSignature::aggregate(&inner, true)
            .map(|agg| Self(agg.to_signature()))
            .map_err(|_| KeyError::InvalidSignature)
    }

    /// Verifies an aggregate of signatures by `keys`, all over the same `message`.
    pub fn fast_aggregate_verify(
        &self,
        message: &B256,
        keys: &[&AuthorityPublicKey],
    ) -> Result<(), KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        let keys: Vec<&PublicKey> = keys.iter().map(|k| &k.0).collect();
        match self.0.fast_aggregate_verify(true, message.as_slice(), DST, &keys) {
            BLST_ERROR::BLST_SUCCESS => Ok(()),
            _ => Err(KeyError::BadSignature),
        }
    }
}

/// One signature to check in a batch ([`verify_batch`]): `signature` over `message` by all of `signers`
/// (one key for a plain signature, several for an aggregate of signatures over the same message).
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    /// The signed message.
    pub message: &'a B256,
    /// The (possibly aggregate) signature.
    pub signature: &'a BlsSignature,
    /// Who signed.
    pub signers: &'a [&'a AuthorityPublicKey],
}

/// Verifies many signatures at once, `Ok` only if every item verifies; on `Err`, verify them one by
/// one to learn which does not.
///
/// A random linear combination: each item gets a secret random 64-bit scalar `rᵢ`, and one
/// multi-pairing checks `e(g₁, Σ rᵢ·σᵢ) = Π e(rᵢ·pkᵢ, H(mᵢ))`. An invalid item passes only if the
/// forger guesses its scalar (probability 2⁻⁶⁴). Items over the same message share one pairing term,
/// since `e(r₁·pk₁, H(m))·e(r₂·pk₂, H(m)) = e(r₁·pk₁ + r₂·pk₂, H(m))`: a block's author signature and
/// its approvals (both over the block hash) cost one hash to the curve and one Miller loop, not two.
/// Signatures are checked to be in the G2 subgroup. It runs on the calling thread (blst is built
/// without its thread pool: the node verifies on blocking threads of its own, beside an execution
/// client that needs the other cores).
pub fn verify_batch(items: &[BatchItem<'_>]) -> Result<(), KeyError> {
    if items.is_empty() {
        return Ok(());
    }
    // Group by message, in first-seen order.
    let mut index: std::collections::HashMap<&B256, usize> = std::collections::HashMap::new();
    let mut groups: Vec<(&B256, Vec<PublicKey>, Vec<Signature>)> = Vec::new();
    for item in items {
        let signers: Vec<&PublicKey> = item.signers.iter().map(|k| &k.0).collect();
        if signers.is_empty() {
            return Err(KeyError::Empty);
        }
        let key = AggregatePublicKey::aggregate(&signers, false).map_err(|_| KeyError::BadSignature)?;
        let at = *index.entry(item.message).or_insert_with(|| {
            groups.push((item.message, Vec::new(), Vec::new()));
            groups.len() - 1
        });
        let (_, keys, signatures) = groups.get_mut(at).ok_or(KeyError::BadSignature)?;
        keys.push(key.to_public_key());
        signatures.push(item.signature.0);
    }
    let mut pairing = Pairing::new(true, DST);
    for (message, keys, signatures) in &groups {
        let mut scalars = vec![0u8; 8 * keys.len()];
        getrandom::fill(&mut scalars).map_err(|_| KeyError::BadSignature)?;
        for scalar in scalars.chunks_mut(8) {
            if scalar.iter().all(|b| *b == 0) {
                scalar.fill(1);
            }
        }
        // Σ rᵢ·σᵢ (each σᵢ checked in the subgroup and not at infinity) against Σ rᵢ·pkᵢ.
        let signature = AggregateSignature::aggregate_with_randomness(signatures, &scalars, 64, true)
            .map_err(|_| KeyError::BadSignature)?
            .to_signature();
        let key = AggregatePublicKey::aggregate_with_randomness(keys, &scalars, 64, false)
            .map_err(|_| KeyError::BadSignature)?
            .to_public_key();
        let (key, signature): (blst_p1_affine, blst_p2_affine) = (key.into(), signature.into());
        if pairing.aggregate(&key, false, &signature, false, message.as_slice(), &[])
            != BLST_ERROR::BLST_SUCCESS
        {
            return Err(KeyError::BadSignature);
        }
    }
    pairing.commit();
    if pairing.finalverify(None) { Ok(()) } else { Err(KeyError::BadSignature) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_verifies_only_when_every_signature_does() {
        let keys: Vec<AuthorityKey> = (1..=3u8).map(|i| AuthorityKey::from_seed(&[i; 32]).unwrap()).collect();
        let messages: Vec<B256> = (0..4u8).map(B256::repeat_byte).collect();
        let single: Vec<BlsSignature> = messages.iter().map(|m| keys[0].sign(m)).collect();
        let aggregate =
            BlsSignature::aggregate(&[&keys[1].sign(&messages[3]), &keys[2].sign(&messages[3])]).unwrap();
        let (k0, k1, k2) = (keys[0].public(), keys[1].public(), keys[2].public());
        let one = [k0];
        let two = [k1, k2];
        let mut items: Vec<BatchItem<'_>> = messages
            .iter()
            .zip(&single)
            .map(|(message, signature)| BatchItem { message, signature, signers: &one })
            .collect();
        items.push(BatchItem { message: &messages[3], signature: &aggregate, signers: &two });
        verify_batch(&items).unwrap();
        verify_batch(&[]).unwrap();
        // One wrong signer, one wrong message: the whole batch fails.
        let mut wrong = items.clone();
        wrong[4].signers = &one;
        assert_eq!(verify_batch(&wrong), Err(KeyError::BadSignature));
        let mut wrong = items.clone();
        wrong[1].message = &messages[2];
        assert_eq!(verify_batch(&wrong), Err(KeyError::BadSignature));
    }

    #[test]
    fn items_over_one_message_are_checked_each_on_its_own() {
        let keys: Vec<AuthorityKey> = (1..=3u8).map(|i| AuthorityKey::from_seed(&[i; 32]).unwrap()).collect();
        let message = B256::repeat_byte(9);
        let other = B256::repeat_byte(8);
        let (s0, s1, s2) = (keys[0].sign(&message), keys[1].sign(&message), keys[2].sign(&message));
        let s12 = BlsSignature::aggregate(&[&s1, &s2]).unwrap();
        let s_other = keys[0].sign(&other);
        let (k0, k1, k2) = (keys[0].public(), keys[1].public(), keys[2].public());
        let (one, two) = ([k0], [k1, k2]);
        // An author signature and approvals over the same block hash, beside another message.
        let good = [
            BatchItem { message: &message, signature: &s0, signers: &one },
            BatchItem { message: &message, signature: &s12, signers: &two },
            BatchItem { message: &other, signature: &s_other, signers: &one },
        ];
        verify_batch(&good).unwrap();
        // Signatures swapped between two items of one message sum to the same total: a plain sum
        // would pass, the per-item random scalars do not.
        let (only1, only0) = ([k1], [k0]);
        let swapped = [
            BatchItem { message: &message, signature: &s1, signers: &only0 },
            BatchItem { message: &message, signature: &s0, signers: &only1 },
        ];
        assert_eq!(verify_batch(&swapped), Err(KeyError::BadSignature));
        let summed = BlsSignature::aggregate(&[&s0, &s1]).unwrap();
        summed.fast_aggregate_verify(&message, &[k0, k1]).unwrap();
        // One bad item in a group of good ones fails the batch.
        let bad = [
            BatchItem { message: &message, signature: &s0, signers: &one },
            BatchItem { message: &message, signature: &s1, signers: &two },
        ];
        assert_eq!(verify_batch(&bad), Err(KeyError::BadSignature));
    }

    fn key(n: u8) -> AuthorityKey {
        AuthorityKey::from_seed(&[n; 32]).unwrap()
    }

    #[test]
    fn sign_verify_and_aggregate() {
        let msg = B256::repeat_byte(7);
        let (a, b, c) = (key(1), key(2), key(3));
        let sa = a.sign(&msg);
        a.public().verify(&msg, &sa).unwrap();
        assert_eq!(b.public().verify(&msg, &sa), Err(KeyError::BadSignature));
        assert_eq!(a.public().verify(&B256::ZERO, &sa), Err(KeyError::BadSignature));

        let agg = BlsSignature::aggregate(&[&sa, &b.sign(&msg)]).unwrap();
        agg.fast_aggregate_verify(&msg, &[a.public(), b.public()]).unwrap();
        assert!(agg.fast_aggregate_verify(&msg, &[a.public(), c.public()]).is_err());
        assert!(agg.fast_aggregate_verify(&msg, &[a.public()]).is_err());
        assert_eq!(BlsSignature::aggregate(&[]), Err(KeyError::Empty));
    }

    #[test]
    fn encodings_round_trip_and_garbage_is_refused() {
        let k = key(9);
        let pk = AuthorityPublicKey::from_bytes(&k.public().to_bytes()).unwrap();
        assert_eq!(&pk, k.public());
        let sig = k.sign(&B256::ZERO);
        assert_eq!(BlsSignature::from_bytes(&sig.to_bytes()).unwrap(), sig);
        assert_eq!(AuthorityPublicKey::from_bytes(&[0u8; 48]), Err(KeyError::InvalidPublicKey));
        assert_eq!(AuthorityPublicKey::from_bytes(&[1u8; 5]), Err(KeyError::InvalidPublicKey));
        assert_eq!(BlsSignature::from_bytes(&[0xffu8; 96]), Err(KeyError::InvalidSignature));
        assert_eq!(BlsSignature::from_bytes(&[]), Err(KeyError::InvalidSignature));
    }

    fn set_private(path: &Path) {
        #[cfg(unix)]
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_written_private_and_a_key_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authority.key");
        AuthorityKey::from_seed(&[4; 32]).unwrap().write_file(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        AuthorityKey::from_file(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = AuthorityKey::from_file(&path).unwrap_err();
        assert!(matches!(error, KeyFileError::Permissions { mode: 0o644, .. }), "{error}");
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }

    #[test]
    fn key_file_loads_hex_and_refuses_garbage() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let good = dir.join("good");
        AuthorityKey::from_bytes(&[0x11; 32]).unwrap().write_file(&good).unwrap();
        let loaded = AuthorityKey::from_file(&good).unwrap();
        let prefixed = dir.join("prefixed");
        std::fs::write(&prefixed, format!("0x{}\n", "11".repeat(32))).unwrap();
        set_private(&prefixed);
        assert_eq!(AuthorityKey::from_file(&prefixed).unwrap().public(), loaded.public());
        assert_eq!(loaded.public(), AuthorityKey::from_bytes(&[0x11; 32]).unwrap().public());
        assert!(
            matches!(
                AuthorityKey::from_bytes(&[0x11; 32]).unwrap().write_file(&good),
                Err(KeyFileError::Write { .. })
            ),
            "never overwrites a key"
        );
        let bad = dir.join("bad");
        std::fs::write(&bad, "zz").unwrap();
        set_private(&bad);
        assert!(matches!(
            AuthorityKey::from_file(&bad),
            Err(KeyFileError::Key { source: KeyError::SecretFormat, .. })
        ));
        std::fs::write(&bad, "00".repeat(31)).unwrap();
        set_private(&bad);
        assert!(matches!(
            AuthorityKey::from_file(&bad),
            Err(KeyFileError::Key { source: KeyError::SecretFormat, .. })
        ));
        assert!(matches!(AuthorityKey::from_file(dir.join("missing")), Err(KeyFileError::Io { .. })));
    }
}
