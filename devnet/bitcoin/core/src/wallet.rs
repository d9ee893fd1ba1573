//! A single P2WPKH wallet: BIP32 keys from a seed kept in the data directory, coin selection with change,
//! and signing.
//!
//! Keys follow BIP84 on a test network: receiving addresses at `m/84'/1'/0'/0/i`, change at
//! `m/84'/1'/0'/1/i`. `wallet.json` holds the seed and how many keys of each chain were handed out, so a
//! restart derives the same keys. The wallet keeps no coin list of its own: its coins are the UTXO set's
//! and the mempool's outputs to its scripts, which keeps it right across reorgs for free.
//!
//! Funding is largest-first: add the biggest coins until inputs pay the outputs and the fee at the
//! requested rate (estimated with a placeholder 72-byte signature per input), and return what is left
//! to a new change address unless it is dust. Inputs the wallet adds signal BIP125 replaceability
//! (`0xfffffffd`) as Core 25's wallet does by default (`-walletrbf=1`), or carry `0xfffffffe` when the
//! caller asks for `replaceable: false`; inputs the caller chose keep their sequence.

use std::{collections::HashMap, path::PathBuf, str::FromStr};

use bitcoin::{
    Address, Amount, CompressedPublicKey, EcdsaSighashType, OutPoint, ScriptBuf, Transaction, TxOut, Witness,
    bip32::{DerivationPath, Xpriv},
    hashes::Hash,
    hex::{DisplayHex, FromHex},
    secp256k1::{All, Message, Secp256k1, SecretKey},
    sighash::SighashCache,
};

use crate::{
    error::StoreError,
    params::NETWORK,
    store::{read_optional, write_atomic},
};

const WALLET: &str = "wallet.json";

/// The smallest change output kept (P2WPKH dust at 3 sat/vB, Core's `GetDustThreshold`).
pub const DUST: Amount = Amount::from_sat(294);

/// The fee rate the wallet pays unless told otherwise, in sat/kvB (2 sat/vB; Core has no default on
/// regtest without `-fallbackfee`, devnets usually set one).
pub const DEFAULT_FEE_PER_KVB: u64 = 2_000;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct WalletFile {
    seed: String,
    receive: u32,
    change: u32,
}

#[derive(Debug, Clone)]
struct Key {
    secret: SecretKey,
    public: CompressedPublicKey,
    address: Address,
}

/// The wallet.
#[derive(Debug)]
pub struct Wallet {
    path: PathBuf,
    master: Xpriv,
    seed: Vec<u8>,
    receive: u32,
    change: u32,
    keys: HashMap<ScriptBuf, Key>,
    secp: Secp256k1<All>,
}

/// A coin the wallet can spend.
#[derive(Debug, Clone)]
pub struct WalletCoin {
    /// Where it is.
    pub outpoint: OutPoint,
    /// The output.
    pub output: TxOut,
    /// Its confirmations (0 in the mempool).
    pub confirmations: u32,
}

/// Why funding failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FundError {
    /// The wallet's coins do not cover the outputs and the fee.
    #[error("Insufficient funds")]
    InsufficientFunds,
    /// A preset input is neither a wallet coin nor known.
    #[error("Unable to find UTXO for external input")]
    UnknownInput,
}

/// A funded transaction.
#[derive(Debug, Clone)]
pub struct Funded {
    /// The transaction with inputs and change added, unsigned.
    pub tx: Transaction,
    /// The fee it pays.
    pub fee: Amount,
    /// The change output's position, or -1.
    pub change_position: i64,
}

impl Wallet {
    /// Opens the wallet in `dir`, creating a new seed on first use.
    pub fn open(dir: &std::path::Path) -> Result<Self, StoreError> {
        let path = dir.join(WALLET);
        let file = match read_optional(&path)? {
            Some(bytes) => serde_json::from_slice(&bytes)?,
            None => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed)?;
                let file = WalletFile { seed: seed.to_lower_hex_string(), receive: 0, change: 0 };
                write_atomic(&path, &serde_json::to_vec_pretty(&file)?)?;
                file
            }
        };
        let seed = Vec::from_hex(&file.seed)
            .map_err(|_| StoreError::Keys(bitcoin::bip32::Error::InvalidChildNumberFormat))?;
        let master = Xpriv::new_master(NETWORK, &seed)?;
        let mut wallet =
            Self { path, master, seed, receive: 0, change: 0, keys: HashMap::new(), secp: Secp256k1::new() };
        for index in 0..file.receive {
            wallet.derive(false, index)?;
        }
        for index in 0..file.change {
            wallet.derive(true, index)?;
        }
        wallet.receive = file.receive;
        wallet.change = file.change;
        Ok(wallet)
    }

    fn derive(&mut self, change: bool, index: u32) -> Result<Address, StoreError> {
        let path = DerivationPath::from_str(&format!("m/84'/1'/0'/{}/{index}", u8::from(change)))?;
        let child = self.master.derive_priv(&self.secp, &path)?;
        let public = CompressedPublicKey(child.private_key.public_key(&self.secp));
        let address = Address::p2wpkh(&public, NETWORK);
        self.keys.insert(
            address.script_pubkey(),
            Key { secret: child.private_key, public, address: address.clone() },
        );
        Ok(address)
    }

    /// Hands out a new address (`getnewaddress`, or a change address) and remembers it.
    pub fn new_address(&mut self, change: bool) -> Result<Address, StoreError> {
        let index = if change { self.change } else { self.receive };
        let address = self.derive(change, index)?;
        if change {
            self.change += 1;
        } else {
            self.receive += 1;
        }
        let file =
            WalletFile { seed: self.seed.to_lower_hex_string(), receive: self.receive, change: self.change };
        write_atomic(&self.path, &serde_json::to_vec_pretty(&file)?)?;
        Ok(address)
    }

    /// Whether `script` pays this wallet.
    pub fn is_mine(&self, script: &bitcoin::Script) -> bool {
        self.keys.contains_key(script)
    }

    /// The wallet address of `script`.
    pub fn address_of(&self, script: &bitcoin::Script) -> Option<&Address> {
        self.keys.get(script).map(|key| &key.address)
    }

    /// Signs every input whose spent output (`spent[i]`) pays one of the wallet's keys, with
    /// `SIGHASH_ALL`. Inputs of others are left as they are.
    pub fn sign(&self, tx: &mut Transaction, spent: &[Option<TxOut>]) {
        let mut witnesses = Vec::new();
        {
            let mut cache = SighashCache::new(&*tx);
            for (index, output) in spent.iter().enumerate() {
                let Some(output) = output else { continue };
                let Some(key) = self.keys.get(&output.script_pubkey) else { continue };
                let Ok(sighash) = cache.p2wpkh_signature_hash(
                    index,
                    &output.script_pubkey,
                    output.value,
                    EcdsaSighashType::All,
                ) else {
                    continue;
                };
                let signature = self.secp.sign_ecdsa(&Message::from(sighash), &key.secret);
                let signature = bitcoin::ecdsa::Signature { signature, sighash_type: EcdsaSighashType::All };
                witnesses.push((index, Witness::p2wpkh(&signature, &key.public.0)));
            }
        }
        for (index, witness) in witnesses {
            if let Some(input) = tx.input.get_mut(index) {
                input.script_sig = ScriptBuf::new();
                input.witness = witness;
            }
        }
    }

    /// Adds inputs from `coins` (largest first) and a change output to `tx` so it pays its outputs
    /// and a fee of `fee_per_kvb`. `preset` are the outputs `tx`'s existing inputs spend. Added inputs
    /// signal BIP125 when `replaceable`.
    pub fn fund(
        &mut self,
        mut tx: Transaction,
        preset: &[Option<TxOut>],
        coins: &[WalletCoin],
        fee_per_kvb: u64,
        replaceable: bool,
    ) -> Result<Funded, FundError> {
        // Core's `CreateTransactionInternal`: MAX_BIP125_RBF_SEQUENCE, or MAX_SEQUENCE_NONFINAL (which
        // keeps the lock time meaningful without signalling).
        let sequence = if replaceable {
            bitcoin::Sequence::ENABLE_RBF_NO_LOCKTIME
        } else {
            bitcoin::Sequence::ENABLE_LOCKTIME_NO_RBF
        };
        if preset.iter().any(Option::is_none) {
            return Err(FundError::UnknownInput);
        }
        let mut value_in: Amount = preset.iter().flatten().map(|output| output.value).sum();
        let value_out: Amount = tx.output.iter().map(|output| output.value).sum();
        let mut candidates: Vec<&WalletCoin> = coins
            .iter()
            .filter(|coin| !tx.input.iter().any(|input| input.previous_output == coin.outpoint))
            .collect();
        candidates.sort_by(|a, b| b.output.value.cmp(&a.output.value).then(a.outpoint.cmp(&b.outpoint)));
        let change_script = ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([0; 20]));
        let mut candidates = candidates.into_iter();
        loop {
            let without_change = fee_for(&tx, fee_per_kvb);
            let mut with_change = tx.clone();
            with_change.output.push(TxOut { value: Amount::ZERO, script_pubkey: change_script.clone() });
            let fee_with_change = fee_for(&with_change, fee_per_kvb);
            if !tx.input.is_empty() && value_in >= value_out + fee_with_change + DUST {
                let change = value_in - value_out - fee_with_change;
                let address = self.new_address(true).map_err(|_| FundError::InsufficientFunds)?;
                tx.output.push(TxOut { value: change, script_pubkey: address.script_pubkey() });
                let position = tx.output.len() as i64 - 1;
                return Ok(Funded { tx, fee: fee_with_change, change_position: position });
            }
            if !tx.input.is_empty() && value_in >= value_out + without_change {
                let fee = value_in - value_out;
                return Ok(Funded { tx, fee, change_position: -1 });
            }
            let coin = candidates.next().ok_or(FundError::InsufficientFunds)?;
            value_in += coin.output.value;
            tx.input.push(bitcoin::TxIn { previous_output: coin.outpoint, sequence, ..Default::default() });
        }
    }
}

/// The fee of `tx` at `fee_per_kvb` once every input carries a P2WPKH witness.
fn fee_for(tx: &Transaction, fee_per_kvb: u64) -> Amount {
    let mut sized = tx.clone();
    for input in &mut sized.input {
        if input.witness.is_empty() && input.script_sig.is_empty() {
            input.witness = Witness::from_slice(&[vec![0u8; 72], vec![0u8; 33]]);
        }
    }
    Amount::from_sat((sized.vsize() as u64 * fee_per_kvb).div_ceil(1000))
}
