//! `alys-devnet pegin`: a peg-in deposit from the devnet's Bitcoin wallet, made the way a user makes one
//! with `bitcoin-cli`: ask the Alys node for the federation's deposit address (`getdepositaddress`), then
//! `createrawtransaction` paying it with an OP_RETURN output holding the 20 bytes of the EVM address to
//! credit, `fundrawtransaction`, `signrawtransactionwithwallet` and `sendrawtransaction`. The txid goes
//! to stdout, so a script can wait for it.

use std::{path::PathBuf, str::FromStr, time::Duration};

use alloy_primitives::Address as EvmAddress;
use alys_rpc::{BridgeApiClient as _, jsonrpsee::http_client::HttpClientBuilder};
use bitcoin::{Address, Amount, Denomination, Txid, address::NetworkUnchecked};
use bitcoincore_rpc::{Auth, Client, RpcApi};
use eyre::{WrapErr as _, bail};
use serde_json::{Value, json};

/// What to say when the devnet does not answer.
const IS_IT_RUNNING: &str = "is the devnet running? start it with `cargo run --bin alys-devnet`";

/// Flags of `alys-devnet pegin`.
#[derive(Debug, clap::Args)]
pub(crate) struct PeginArgs {
    /// The amount to deposit, in BTC (up to 8 decimals).
    #[arg(long, value_parser = parse_btc)]
    amount: Amount,
    /// The EVM address credited on Alys (0x and 40 hex digits).
    #[arg(long)]
    to: EvmAddress,
    /// The Alys node's JSON-RPC, asked for the federation's deposit address.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    rpc: String,
    /// The Bitcoin node's JSON-RPC, whose wallet pays the deposit.
    #[arg(long = "bitcoin-rpc", default_value = "http://127.0.0.1:18443")]
    bitcoin_rpc: String,
    /// The Bitcoin node's cookie file (the devnet writes it in `<datadir>/bitcoin/.cookie`).
    #[arg(long = "bitcoin-cookie", default_value = "data/devnet/bitcoin/.cookie")]
    bitcoin_cookie: PathBuf,
    /// A Bitcoin RPC user (`-rpcuser`), instead of the cookie.
    #[arg(long = "bitcoin-user", requires = "bitcoin_password", conflicts_with = "bitcoin_cookie")]
    bitcoin_user: Option<String>,
    /// The password of `--bitcoin-user` (`-rpcpassword`).
    #[arg(long = "bitcoin-password", requires = "bitcoin_user")]
    bitcoin_password: Option<String>,
}

impl PeginArgs {
    fn bitcoin_auth(&self) -> Auth {
        match (&self.bitcoin_user, &self.bitcoin_password) {
            (Some(user), Some(password)) => Auth::UserPass(user.clone(), password.clone()),
            _ => Auth::CookieFile(self.bitcoin_cookie.clone()),
        }
    }
}

/// A positive BTC amount with at most 8 decimals, as `bitcoin-cli` takes one.
fn parse_btc(text: &str) -> Result<Amount, String> {
    let amount = Amount::from_str_in(text, Denomination::Bitcoin).map_err(|err| format!("{err}"))?;
    if amount == Amount::ZERO {
        return Err("a deposit needs a positive amount".into());
    }
    Ok(amount)
}

/// Runs the subcommand: prints the txid on stdout and what was done on stderr.
pub(crate) async fn run(args: PeginArgs) -> eyre::Result<()> {
    let federation = deposit_address(&args.rpc).await?;
    let (url, auth, amount, to) = (args.bitcoin_rpc.clone(), args.bitcoin_auth(), args.amount, args.to);
    let paid = federation.clone();
    // `bitcoincore-rpc` blocks on its HTTP calls.
    let txid = tokio::task::spawn_blocking(move || -> eyre::Result<Txid> {
        let client = bitcoin_client(&url, auth)?;
        deposit(&client, &paid, amount, to)
            .wrap_err_with(|| format!("depositing through the Bitcoin node at {url}"))
    })
    .await
    .wrap_err("the deposit task failed")??;
    println!("{txid}");
    eprintln!(
        "sent {} to the federation at {federation} for {to} (txid {txid}); Alys credits it once the \
         deposit has its confirmations",
        amount.display_in(Denomination::Bitcoin).show_denomination(),
    );
    Ok(())
}

/// Asks the Alys node at `rpc` for the federation's deposit address.
async fn deposit_address(rpc: &str) -> eyre::Result<Address> {
    let client = HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(10))
        .build(rpc)
        .wrap_err_with(|| format!("the Alys RPC address {rpc}"))?;
    let text = client.deposit_address().await.wrap_err_with(|| {
        format!("asking the Alys node at {rpc} for the deposit address (getdepositaddress); {IS_IT_RUNNING}")
    })?;
    parse_deposit_address(&text)
}

/// The deposit address as the Alys node sent it, which must be one of the devnet's (regtest) network.
fn parse_deposit_address(text: &str) -> eyre::Result<Address> {
    let network = alys_devnet_bitcoin::params::NETWORK;
    Address::<NetworkUnchecked>::from_str(text)
        .wrap_err_with(|| format!("the Alys node's deposit address {text:?} is not a Bitcoin address"))?
        .require_network(network)
        .wrap_err_with(|| format!("the Alys node's deposit address {text} is not a {network} address"))
}

/// A client of the Bitcoin node at `url`.
fn bitcoin_client(url: &str, auth: Auth) -> eyre::Result<Client> {
    let cookie = match &auth {
        Auth::CookieFile(path) => Some(path.display().to_string()),
        _ => None,
    };
    Client::new(url, auth).wrap_err_with(|| match cookie {
        Some(path) => format!(
            "reading the Bitcoin node's cookie {path}; {IS_IT_RUNNING} (or pass --bitcoin-cookie, or \
             --bitcoin-user and --bitcoin-password)"
        ),
        None => format!("the Bitcoin RPC address {url}"),
    })
}

/// `createrawtransaction`'s outputs for a peg-in: `amount` to `federation`, then the OP_RETURN data,
/// the 20 raw bytes of `to`. The amount goes as a decimal string, which Core takes as exactly as a
/// number and which no float rounding can touch.
fn deposit_outputs(federation: &Address, amount: Amount, to: EvmAddress) -> Value {
    json!([
        {federation.to_string(): amount.to_string_in(Denomination::Bitcoin)},
        {"data": alloy_primitives::hex::encode(to)},
    ])
}

/// Makes the peg-in deposit from the wallet of the Bitcoin node behind `client`: pays `amount` to
/// `federation` with an OP_RETURN naming `to`, funded (inputs, change, fee) and signed by the wallet,
/// and broadcasts it.
pub(crate) fn deposit(
    client: &impl RpcApi,
    federation: &Address,
    amount: Amount,
    to: EvmAddress,
) -> eyre::Result<Txid> {
    let outputs = deposit_outputs(federation, amount, to);
    let raw: String = client.call("createrawtransaction", &[json!([]), outputs]).wrap_err_with(|| {
        format!(
            "createrawtransaction on the Bitcoin node; {IS_IT_RUNNING} (an HTTP 401 means the cookie or \
             user and password are not the node's)"
        )
    })?;
    let funded = client
        .fund_raw_transaction(raw.as_str(), None, None)
        .wrap_err("fundrawtransaction: the Bitcoin wallet could not fund the deposit")?;
    let signed = client
        .sign_raw_transaction_with_wallet(&funded.hex, None, None)
        .wrap_err("signrawtransactionwithwallet")?;
    if !signed.complete {
        bail!("signrawtransactionwithwallet left inputs unsigned: {:?}", signed.errors.unwrap_or_default());
    }
    client
        .send_raw_transaction(&signed.hex)
        .wrap_err("sendrawtransaction: the Bitcoin node refused the deposit")
}

#[cfg(test)]
mod tests {
    use bitcoin::{
        Network, ScriptBuf, Transaction,
        opcodes::all::{OP_PUSHNUM_1, OP_RETURN},
        script::Instruction,
    };
    use clap::Parser as _;

    use super::*;
    use crate::{Cli, Command};

    const EVM: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

    fn pegin(args: &[&str]) -> Result<PeginArgs, clap::Error> {
        let argv = ["alys-devnet", "pegin"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv)?.command {
            Some(Command::Pegin(args)) => Ok(args),
            other => panic!("not pegin: {other:?}"),
        }
    }

    #[test]
    fn flags_parse_with_the_devnet_defaults() {
        let args = pegin(&["--amount", "0.5", "--to", EVM]).unwrap();
        assert_eq!(args.amount, Amount::from_sat(50_000_000));
        assert_eq!(args.to, EvmAddress::from_str(EVM).unwrap());
        assert_eq!(
            (args.rpc.as_str(), args.bitcoin_rpc.as_str()),
            ("http://127.0.0.1:3000", "http://127.0.0.1:18443")
        );
        assert!(
            matches!(args.bitcoin_auth(), Auth::CookieFile(path) if path == std::path::Path::new("data/devnet/bitcoin/.cookie"))
        );

        let args = pegin(&[
            "--amount",
            "21",
            "--to",
            &EVM.to_lowercase(),
            "--bitcoin-user",
            "alys",
            "--bitcoin-password",
            "secret",
        ])
        .unwrap();
        assert_eq!(args.amount, Amount::from_int_btc(21));
        assert!(
            matches!(args.bitcoin_auth(), Auth::UserPass(user, password) if user == "alys" && password == "secret")
        );
    }

    #[test]
    fn bad_flags_are_refused() {
        for amount in ["0", "-1", "0.123456789", "abc", "1e-3"] {
            assert!(pegin(&["--amount", amount, "--to", EVM]).is_err(), "{amount}");
        }
        assert!(pegin(&["--amount", "0.00000001", "--to", EVM]).is_ok());
        for to in ["0x1234", "f39Fd6e51aad88F6F4ce6aB8827279cffFb922", "bcrt1qxyz"] {
            assert!(pegin(&["--amount", "1", "--to", to]).is_err(), "{to}");
        }
        assert!(pegin(&["--to", EVM]).is_err(), "--amount is required");
        assert!(pegin(&["--amount", "1", "--to", EVM, "--bitcoin-user", "alys"]).is_err());
        let both = [
            "--amount",
            "1",
            "--to",
            EVM,
            "--bitcoin-cookie",
            "c",
            "--bitcoin-user",
            "u",
            "--bitcoin-password",
            "p",
        ];
        assert!(pegin(&both).is_err());
    }

    #[test]
    fn outputs_pay_the_federation_and_carry_the_evm_address() {
        let federation = Address::p2wsh(&ScriptBuf::new(), Network::Regtest);
        let outputs =
            deposit_outputs(&federation, Amount::from_sat(123_456_789), EvmAddress::from_str(EVM).unwrap());
        assert_eq!(
            outputs,
            json!([
                {federation.to_string(): "1.23456789"},
                {"data": "f39fd6e51aad88f6f4ce6ab8827279cfffb92266"},
            ])
        );
        assert!(parse_deposit_address(&federation.to_string()).is_ok());
        let mainnet = Address::p2wsh(&ScriptBuf::new(), Network::Bitcoin).to_string();
        assert!(parse_deposit_address(&mainnet).unwrap_err().to_string().contains("regtest"));
        assert!(parse_deposit_address("not an address").is_err());
    }

    #[test]
    fn a_missing_cookie_says_how_to_start_the_devnet() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            bitcoin_client("http://127.0.0.1:1", Auth::CookieFile(dir.path().join(".cookie"))).unwrap_err();
        assert!(format!("{err:#}").contains(IS_IT_RUNNING), "{err:#}");
    }

    /// The deposit against the stand-in regtest node, in process, with the devnet's cookie
    /// authentication: the transaction reaches the mempool with the exact amount to the federation and
    /// one OP_RETURN holding the EVM address.
    #[test]
    fn deposit_reaches_the_mempool_in_the_peg_in_shape() {
        let dir = tempfile::tempdir().unwrap();
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let config =
            alys_devnet_bitcoin::BitcoinConfig::new(dir.path()).with_rpc_addr("127.0.0.1:0".parse().unwrap());
        let node = runtime.block_on(alys_devnet_bitcoin::start(config)).unwrap();
        let client =
            bitcoin_client(&node.url(), Auth::CookieFile(node.cookie_path().unwrap().to_path_buf())).unwrap();
        let miner = client.get_new_address(None, None).unwrap().require_network(Network::Regtest).unwrap();
        client.generate_to_address(101, &miner).unwrap();

        // A federation's P2WSH address, as `getdepositaddress` answers (any witness script will do).
        let federation =
            Address::p2wsh(&ScriptBuf::builder().push_opcode(OP_PUSHNUM_1).into_script(), Network::Regtest);
        let amount = Amount::from_btc(0.5).unwrap();
        let to = EvmAddress::from_str(EVM).unwrap();

        let txid = deposit(&client, &federation, amount, to).unwrap();
        assert!(client.get_raw_mempool().unwrap().contains(&txid));
        let tx: Transaction = client.get_raw_transaction(&txid, None).unwrap();
        let paid: Vec<_> =
            tx.output.iter().filter(|out| out.script_pubkey == federation.script_pubkey()).collect();
        assert_eq!(paid.len(), 1);
        assert_eq!(paid[0].value, amount);
        let data: Vec<_> = tx.output.iter().filter(|out| out.script_pubkey.is_op_return()).collect();
        assert_eq!(data.len(), 1, "{tx:?}");
        let instructions: Vec<_> = data[0].script_pubkey.instructions().collect::<Result<_, _>>().unwrap();
        let [Instruction::Op(op), Instruction::PushBytes(bytes)] = instructions.as_slice() else {
            panic!("not OP_RETURN <data>: {:?}", data[0].script_pubkey)
        };
        assert_eq!((*op, bytes.as_bytes()), (OP_RETURN, to.as_slice()));
        runtime.block_on(node.stop());
    }
}
