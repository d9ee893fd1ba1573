//! Bad configuration is refused at start with a message that says what to fix.

use std::path::{Path, PathBuf};

use alys_node::{
    LaunchError,
    config::{
        AuthoritySection, BitcoinSection, ChainSection, EngineSection, MetricsSection, NodeConfig,
        RpcSection, StorageSection,
    },
    launch,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A private copy of the public devnet key (the node refuses keys other users can read).
fn devnet_key(dir: &Path) -> PathBuf {
    let path = dir.join("authority.key");
    if !path.exists() {
        let text = std::fs::read_to_string(root().join("etc/keys/devnet-authority.key")).unwrap();
        alys_primitives::AuthorityKey::from_hex(text.trim()).unwrap().write_file(&path).unwrap();
    }
    path
}

fn config(dir: &Path) -> NodeConfig {
    let etc = root().join("etc");
    NodeConfig {
        chain: ChainSection {
            genesis: etc.join("genesis/devnet.json"),
            slot_duration: std::time::Duration::from_secs(1),
            future_tolerance: std::time::Duration::from_millis(500),
            authorities: vec![
                "0xb869b7645e587b3156a978d60ee14923032d029ce53d69d12fe42bfa4b16ecf97b431110ec762f414c80ee09f3c783c5"
                    .into(),
            ],
            fee_recipient: Default::default(),
        },
        authority: Some(AuthoritySection { key_file: devnet_key(dir) }),
        storage: StorageSection { data_dir: dir.to_path_buf() },
        // Nothing listens on port 1.
        engine: EngineSection { url: "http://127.0.0.1:1".into(), jwt_secret: etc.join("jwt/jwt.hex"), eth_rpc_url: None },
        rpc: RpcSection { listen: "127.0.0.1:0".parse().unwrap(), admin_token_file: None, dashboard: true },
        metrics: MetricsSection { listen: None },
        governance: None,
        pegout: None,
        auxpow: Default::default(),
        bitcoin: None,
        network: None,
    }
}

async fn refused(config: NodeConfig) -> String {
    match launch(config).await {
        Ok(_) => panic!("a bad configuration was accepted"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn bad_configuration_is_refused_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();

    let mut missing_jwt = config(&dir);
    missing_jwt.engine.jwt_secret = dir.join("no-such-jwt.hex");
    let message = refused(missing_jwt).await;
    assert!(message.contains("JWT secret") && message.contains("no-such-jwt.hex"), "{message}");

    let short_key = dir.join("short.key");
    std::fs::write(&short_key, "abcd").unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&short_key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut bad_key = config(&dir);
    bad_key.authority = Some(AuthoritySection { key_file: short_key });
    let message = refused(bad_key).await;
    assert!(message.contains("64 hex characters") && message.contains("short.key"), "{message}");

    let mut stranger = config(&dir);
    stranger.chain.authorities = vec![
        "0x97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb"
            .into(),
    ];
    let message = refused(stranger).await;
    assert!(message.contains("not in [chain].authorities"), "{message}");

    let mut bad_authority = config(&dir);
    bad_authority.chain.authorities = vec!["0x1234".into()];
    assert!(matches!(launch(bad_authority).await, Err(LaunchError::Key(_))));

    let message = refused(config(&dir)).await;
    assert!(message.contains("cannot reach the execution client at http://127.0.0.1:1"), "{message}");

    let mut no_cookie = config(&dir);
    no_cookie.bitcoin = Some(BitcoinSection::with_cookie("http://127.0.0.1:1", dir.join("no-such.cookie")));
    let message = refused(no_cookie).await;
    assert!(message.contains("[bitcoin]") && message.contains("no-such.cookie"), "{message}");

    let mut both = config(&dir);
    both.bitcoin = Some(BitcoinSection {
        user: Some("alys".into()),
        ..BitcoinSection::with_cookie("http://127.0.0.1:1", dir.join("no-such.cookie"))
    });
    let message = refused(both).await;
    assert!(message.contains("cookie_file, or user and password_file"), "{message}");

    let mut too_short = config(&dir);
    too_short.chain.slot_duration = std::time::Duration::ZERO;
    let message = refused(too_short).await;
    assert!(message.contains("[chain].slot_duration") && message.contains("at least 100ms"), "{message}");

    let mut no_genesis = config(&dir);
    no_genesis.chain.genesis = dir.join("missing.json");
    assert!(matches!(launch(no_genesis).await, Err(LaunchError::Genesis(_))));
}
