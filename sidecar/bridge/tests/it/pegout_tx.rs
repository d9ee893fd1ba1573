//! The peg-out transaction rules: what is paid, refunded or left waiting, and that the checker accepts
//! exactly what the builder makes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]

use alloy_primitives::{Address as EvmAddress, B256, Bytes, U256};
use alys_bridge::pegout::tx::{
    PegoutCheckError, PegoutParams, RefundReason, SpendableUtxo, build, check, destination,
};
use alys_burns::Burn;
use alys_contracts::WEI_PER_SAT;
use bitcoin::{
    Amount, Network, OutPoint, PublicKey, ScriptBuf, Sequence, TxOut, Txid,
    hashes::Hash as _,
    opcodes::all::OP_CHECKMULTISIG,
    script::Builder,
    secp256k1::{Secp256k1, SecretKey},
};

fn federation() -> (ScriptBuf, ScriptBuf) {
    let secp = Secp256k1::new();
    let mut keys: Vec<PublicKey> = (1..=3u8)
        .map(|n| PublicKey::new(SecretKey::from_slice(&[n; 32]).unwrap().public_key(&secp)))
        .collect();
    keys.sort_by_key(|k| k.to_bytes());
    let mut builder = Builder::new().push_int(2);
    for key in &keys {
        builder = builder.push_key(key);
    }
    let witness_script = builder.push_int(3).push_opcode(OP_CHECKMULTISIG).into_script();
    (ScriptBuf::new_p2wsh(&witness_script.wscript_hash()), witness_script)
}

fn utxo(n: u8, sats: u64) -> SpendableUtxo {
    let (script_pubkey, witness_script) = federation();
    SpendableUtxo {
        outpoint: OutPoint::new(Txid::from_byte_array([n; 32]), u32::from(n)),
        amount_sats: sats,
        script_pubkey,
        witness_script,
        threshold: 2,
    }
}

fn burn(n: u64, address: &str, sats: u64) -> Burn {
    Burn {
        block_number: 10 + n / 4,
        block_hash: B256::with_last_byte((n / 4) as u8),
        log_index: n,
        tx_hash: B256::with_last_byte(n as u8),
        tx_index: n,
        sender: EvmAddress::with_last_byte(n as u8),
        bitcoin_address: Bytes::copy_from_slice(address.as_bytes()),
        value: U256::from(sats) * U256::from(WEI_PER_SAT),
    }
}

const USER: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
const USER_2: &str = "bcrt1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qzf4jry";

fn params() -> PegoutParams {
    PegoutParams {
        network: Network::Regtest,
        fee_rate_sat_vb: 10,
        change_script: federation().0,
        max_outputs: 100,
        min_sats: 1,
    }
}

#[test]
fn one_burn_is_paid_its_amount_minus_the_fee_and_the_rest_returns_as_change() {
    let plan = build(&[burn(0, USER, 1_000_000)], &[utxo(1, 50_000_000), utxo(2, 3_000_000)], &params());
    assert!(plan.refunds.is_empty());
    let proposal = plan.proposal.unwrap();
    let tx = &proposal.tx;
    // The largest UTXO alone covers it.
    assert_eq!(tx.input.len(), 1);
    assert_eq!(tx.input[0].previous_output, utxo(1, 0).outpoint);
    assert_eq!(tx.input[0].sequence, Sequence::ENABLE_RBF_NO_LOCKTIME, "replaceable, for fee bumps");
    let to = destination(&burn(0, USER, 0), Network::Regtest).unwrap().script_pubkey();
    let payment = proposal.payments[0];
    assert_eq!(tx.output[0].script_pubkey, to);
    assert_eq!(payment.amount_sats + payment.fee_share_sats, 1_000_000);
    assert_eq!(tx.output[0].value.to_sat(), payment.amount_sats);
    assert_eq!(tx.output[1], TxOut { value: Amount::from_sat(49_000_000), script_pubkey: federation().0 });
    // The burner bears the whole fee; the change is exactly what the burn did not take.
    assert_eq!(proposal.fee_sats, payment.fee_share_sats);
    assert!(proposal.fee_sats >= 10 * 150, "a 2-of-3 P2WSH spend is well above 150 vB");
    assert_eq!(
        proposal.spent,
        vec![TxOut { value: Amount::from_sat(50_000_000), script_pubkey: federation().0 }]
    );
}

#[test]
fn invalid_and_foreign_addresses_and_dust_are_refunded_in_burn_order() {
    let mut not_text = burn(1, USER, 2_000_000);
    not_text.bitcoin_address = Bytes::from_static(&[0xff, 0xfe, 0x00]);
    let burns = vec![
        burn(0, USER, 2_000_000),
        not_text,
        burn(2, "not an address", 2_000_000),
        burn(3, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", 2_000_000),
        burn(4, USER_2, 400),
        burn(5, &format!("  {USER_2}\n"), 3_000_000),
    ];
    let plan = build(&burns, &[utxo(1, 100_000_000)], &params());
    let reasons: Vec<(u64, RefundReason)> =
        plan.refunds.iter().map(|r| (r.burn.log_index, r.reason)).collect();
    assert_eq!(
        reasons,
        vec![
            (1, RefundReason::NotText),
            (2, RefundReason::InvalidAddress),
            (3, RefundReason::WrongNetwork),
            (4, RefundReason::BelowDust),
        ]
    );
    let refund = plan.refunds[0];
    assert_eq!(
        (refund.to, refund.amount_wei),
        (burns[1].sender, burns[1].value),
        "returned whole to the burner"
    );
    let proposal = plan.proposal.unwrap();
    let paid: Vec<u64> = proposal.payments.iter().map(|p| p.burn.log_index).collect();
    assert_eq!(paid, vec![0, 5], "the rest is paid, in burn order");
    // The fee is shared equally (the odd satoshi on the first payment) and sums to what is paid.
    let shares: Vec<u64> = proposal.payments.iter().map(|p| p.fee_share_sats).collect();
    assert!(shares[0] - shares[1] <= 1);
    assert_eq!(shares.iter().sum::<u64>(), proposal.fee_sats);
}

#[test]
fn burns_the_federation_cannot_cover_wait_and_a_batch_is_bounded() {
    let burns: Vec<Burn> = (0..5).map(|n| burn(n, USER, 10_000_000)).collect();
    let plan = build(&burns, &[utxo(1, 25_000_000)], &params());
    assert!(plan.refunds.is_empty(), "not refunded: they wait for more UTXOs");
    assert_eq!(plan.proposal.unwrap().payments.len(), 2);
    let bounded = PegoutParams { max_outputs: 3, ..params() };
    let plan = build(&burns, &[utxo(1, 25_000_000), utxo(2, 100_000_000)], &bounded);
    assert_eq!(plan.proposal.unwrap().payments.len(), 3);
    assert_eq!(build(&burns, &[], &params()).proposal, None);
}

#[test]
fn every_node_builds_the_same_transaction_and_the_checker_accepts_only_it() {
    let burns: Vec<Burn> =
        (0..20).map(|n| burn(n, if n % 2 == 0 { USER } else { USER_2 }, 1_000_000 + n * 7)).collect();
    let utxos: Vec<SpendableUtxo> = (1..=30u8).map(|n| utxo(n, 500_000 * u64::from(n % 7 + 1))).collect();
    let mut shuffled = utxos.clone();
    shuffled.reverse();
    shuffled.swap(3, 17);
    let plan = build(&burns, &utxos, &params());
    let tx = plan.proposal.clone().unwrap().tx;
    assert_eq!(build(&burns, &shuffled, &params()), plan, "UTXO order does not matter");
    assert_eq!(check(&tx, 10, (1, 100), &burns, &shuffled, &params()).unwrap(), plan);

    assert_eq!(
        check(&tx, 150, (1, 100), &burns, &utxos, &params()),
        Err(PegoutCheckError::FeeRate { rate: 150, floor: 1, cap: 100 })
    );
    // Another rate than the one the transaction was built at.
    assert!(matches!(
        check(&tx, 11, (1, 100), &burns, &utxos, &params()),
        Err(PegoutCheckError::Differs { .. })
    ));
    let mut tampered = Vec::new();
    let mut change_elsewhere = tx.clone();
    change_elsewhere.output.last_mut().unwrap().script_pubkey =
        ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::all_zeros());
    tampered.push(change_elsewhere);
    let mut paid_more = tx.clone();
    paid_more.output[0].value += Amount::from_sat(1);
    tampered.push(paid_more);
    let mut not_ours = tx.clone();
    not_ours.input[0].previous_output = OutPoint::new(Txid::from_byte_array([0xee; 32]), 0);
    tampered.push(not_ours);
    let mut paid_twice = tx.clone();
    paid_twice.output.insert(1, tx.output[0].clone());
    tampered.push(paid_twice);
    for bad in tampered {
        assert!(matches!(
            check(&bad, 10, (1, 100), &burns, &utxos, &params()),
            Err(PegoutCheckError::Differs { .. })
        ));
    }
}

#[test]
fn the_fee_covers_the_signed_transaction_and_every_witness_verifies() {
    use bitcoin::{EcdsaSighashType, secp256k1::Message, sighash::SighashCache};
    let burns = vec![burn(0, USER, 30_000_000), burn(1, USER_2, 30_000_000)];
    let utxos = vec![utxo(1, 20_000_000), utxo(2, 20_000_000), utxo(3, 25_000_000)];
    let proposal = build(&burns, &utxos, &params()).proposal.unwrap();
    let mut tx = proposal.tx.clone();
    assert_eq!(tx.input.len(), 3);
    let secp = Secp256k1::new();
    let (_, witness_script) = federation();
    for index in 0..tx.input.len() {
        let hash = SighashCache::new(&proposal.tx)
            .p2wsh_signature_hash(index, &witness_script, proposal.spent[index].value, EcdsaSighashType::All)
            .unwrap();
        let signatures: Vec<(PublicKey, bitcoin::ecdsa::Signature)> = [1u8, 3]
            .iter()
            .map(|n| {
                let secret = SecretKey::from_slice(&[*n; 32]).unwrap();
                let signature = secp.sign_ecdsa(&Message::from_digest(hash.to_byte_array()), &secret);
                (PublicKey::new(secret.public_key(&secp)), bitcoin::ecdsa::Signature::sighash_all(signature))
            })
            .collect();
        tx.input[index].witness =
            alys_governance::witness::multisig_witness(&witness_script, &signatures).unwrap();
    }
    alys_governance::witness::verify_transaction(&tx, &proposal.spent).unwrap();
    assert_eq!(tx.compute_txid(), proposal.tx.compute_txid(), "witnesses do not change the txid");
    // The fee was reckoned on the largest witnesses: the signed transaction pays at least the rate.
    assert!(proposal.fee_sats >= tx.vsize() as u64 * 10, "{} sats for {} vB", proposal.fee_sats, tx.vsize());
    assert!(proposal.fee_sats <= (tx.vsize() as u64 + 10) * 10, "and not much more");
}

#[test]
fn a_batch_stays_under_the_standard_transaction_size_once_signed() {
    use alys_bridge::pegout::tx::MAX_STANDARD_VSIZE;
    // Small UTXOs: many inputs per burn.
    let burns: Vec<Burn> = (0..400).map(|n| burn(n, USER, 1_000_000)).collect();
    let template = utxo(1, 200_000);
    let utxos: Vec<SpendableUtxo> = (0..4_000u32)
        .map(|n| SpendableUtxo {
            outpoint: OutPoint::new(Txid::from_byte_array([(n % 251) as u8; 32]), n),
            ..template.clone()
        })
        .collect();
    let plan = build(&burns, &utxos, &PegoutParams { max_outputs: 1_000, ..params() });
    let proposal = plan.proposal.unwrap();
    assert!(plan.refunds.is_empty(), "the rest wait, nothing is refunded");
    assert!(proposal.payments.len() < 400, "trimmed: {}", proposal.payments.len());
    // Unsigned size plus the largest witnesses: 1 + 2 * 74 + 1 + 105 bytes each, a quarter in vB.
    let signed = proposal.tx.vsize() as u64 + (proposal.tx.input.len() as u64 * 255).div_ceil(4);
    assert!(signed <= MAX_STANDARD_VSIZE, "{signed} vB");
    assert!(signed > MAX_STANDARD_VSIZE * 9 / 10, "and not needlessly small: {signed} vB");
}

#[test]
fn burns_below_the_governed_minimum_are_refunded_and_the_rest_paid() {
    let burns = vec![burn(0, USER, 999_999), burn(1, USER, 1_000_000)];
    let plan = build(&burns, &[utxo(1, 100_000_000)], &PegoutParams { min_sats: 1_000_000, ..params() });
    let reasons: Vec<(u64, RefundReason)> =
        plan.refunds.iter().map(|r| (r.burn.log_index, r.reason)).collect();
    assert_eq!(reasons, vec![(0, RefundReason::BelowMinimum)]);
    assert_eq!(RefundReason::BelowMinimum.code(), "below_minimum");
    let proposal = plan.proposal.unwrap();
    assert_eq!(proposal.payments.len(), 1);
    assert_eq!(proposal.payments[0].burn.log_index, 1);
    assert_eq!(proposal.payments[0].block_number, burns[1].block_number);
}

#[test]
fn a_sweep_moves_every_output_to_the_new_federation_minus_its_fee() {
    use alys_bridge::pegout::tx::{MAX_SWEEP_INPUTS, build_sweep};
    let to = ScriptBuf::new_p2wsh(&ScriptBuf::from_bytes(vec![0x51]).wscript_hash());
    let old = vec![utxo(3, 50_000), utxo(1, 70_000), utxo(2, 30_000)];
    let sweep = build_sweep(&old, &to, 10).unwrap();
    // Inputs by outpoint, whatever order the set came in; one output to the new federation.
    let inputs: Vec<u8> = sweep.tx.input.iter().map(|i| i.previous_output.txid.to_byte_array()[0]).collect();
    assert_eq!(inputs, vec![1, 2, 3]);
    assert_eq!(sweep.tx.output.len(), 1);
    assert_eq!(sweep.tx.output[0].script_pubkey, to);
    assert_eq!(sweep.tx.output[0].value.to_sat() + sweep.fee_sats, 150_000);
    assert!(sweep.fee_sats > 0 && sweep.payments.is_empty());
    // Deterministic: every node builds the same sweep.
    assert_eq!(build_sweep(&[utxo(2, 30_000), utxo(3, 50_000), utxo(1, 70_000)], &to, 10).unwrap(), sweep);
    // Nothing to sweep, or too little to pay its fee: no transaction.
    assert!(build_sweep(&[], &to, 10).is_none());
    assert!(build_sweep(&[utxo(1, 1_000)], &to, 10).is_none());
    // A bounded number of inputs per sweep; the rest go in the next one.
    let many: Vec<SpendableUtxo> = (0..=250u8).map(|n| utxo(n, 10_000)).collect();
    assert_eq!(build_sweep(&many, &to, 1).unwrap().tx.input.len(), MAX_SWEEP_INPUTS);
}
