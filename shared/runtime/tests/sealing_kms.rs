//! The sealing key from a KMS data key, against a real peer: moto's KMS makes the key and the
//! data key (`GenerateDataKey` with the encryption context app=paybridge, as the README's
//! deployment steps do), the configuration names the ciphertext, and `runtime::sealing_key`
//! (what `runtime::services` calls at every function's start) decrypts it. Secrets sealed with
//! the resolved key open with a key built from the data key's plaintext, and the other way
//! round, in DynamoDB Local. A wrong encryption context, a changed ciphertext or another KMS key
//! is a config error that shows neither the ciphertext nor the key.

use std::time::{Duration, Instant};

use app::ports::WebhookSecrets;
use aws_sdk_kms::types::DataKeySpec;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use domain::{OrgSlug, Secret};
use runtime::{Config, ConfigError, SEALING_KEY_CONTEXT, SealingKeySource};

/// A KMS client on this process's moto (placeholder credentials, us-east-1).
fn kms() -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(&devtools::aws_client_config(
        devtools::moto::shared_for_tests(),
    ))
}

/// A new symmetric KMS key in moto: its ARN.
async fn new_kms_key(kms: &aws_sdk_kms::Client) -> String {
    let made = kms
        .create_key()
        .description("paybridge sealing key (test)")
        .send()
        .await
        .expect("CreateKey in moto");
    made.key_metadata()
        .and_then(|m| m.arn())
        .expect("the new key's ARN")
        .to_owned()
}

/// A 256-bit data key under `kms_key`, made with the encryption context `context`:
/// (CiphertextBlob in base64, as the configuration holds it; the plaintext).
async fn data_key(
    kms: &aws_sdk_kms::Client,
    kms_key: &str,
    context: (&str, &str),
) -> (String, [u8; 32]) {
    let made = kms
        .generate_data_key()
        .key_id(kms_key)
        .key_spec(DataKeySpec::Aes256)
        .encryption_context(context.0, context.1)
        .send()
        .await
        .expect("GenerateDataKey in moto");
    let ciphertext = STANDARD.encode(made.ciphertext_blob().expect("a ciphertext").as_ref());
    let plaintext: [u8; 32] = made
        .plaintext()
        .expect("a plaintext")
        .as_ref()
        .try_into()
        .expect("AES_256 is 32 bytes");
    (ciphertext, plaintext)
}

/// A function's configuration on Lambda with the sealing key given as that ciphertext.
fn config_with(ciphertext: &str, kms_key: &str) -> Config {
    let vars = [
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ("TABLE_NAME", "unused"),
        ("MAIL_FROM", "billing@paybridge.test"),
        ("EVENT_BUS_NAME", "paybridge"),
        ("SEALING_KEY_CIPHERTEXT", ciphertext),
        ("SEALING_KMS_KEY_ID", kms_key),
    ];
    Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("a configuration with a KMS ciphertext")
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Two stores over one new table of DynamoDB Local, sealing with `a` and `b`.
async fn stores(a: store::SealingKey, b: store::SealingKey) -> (store::Store, store::Store) {
    let client = devtools::local_client(devtools::shared_for_tests()).await;
    let table = format!("test-kms-{}", unique());
    let first = store::Store::new(client.clone(), table.clone()).with_sealing_key(a);
    first
        .ensure_table()
        .await
        .expect("a table on DynamoDB Local");
    (first, store::Store::new(client, table).with_sealing_key(b))
}

/// Seals `secret` as `gateway`'s webhook secret of demo through `sealer`, opens it through
/// `opener`.
async fn seal_and_open(
    sealer: &store::Store,
    opener: &store::Store,
    gateway: &str,
    secret: &str,
) -> Vec<String> {
    let org = OrgSlug::parse("demo").unwrap();
    let now = time::OffsetDateTime::now_utc();
    sealer
        .rotate_secret(
            &org,
            gateway,
            &format!("whs_{gateway}"),
            &Secret::new(secret.to_owned()),
            now,
            now,
        )
        .await
        .expect("sealed and written");
    opener
        .active_secrets(&org, gateway, now)
        .await
        .expect("read and opened")
        .iter()
        .map(|s| s.expose().clone())
        .collect()
}

#[tokio::test]
async fn the_data_key_from_kms_seals_and_opens_like_its_plaintext() {
    let kms = kms();
    let kms_key = new_kms_key(&kms).await;
    let (ciphertext, plaintext) = data_key(&kms, &kms_key, SEALING_KEY_CONTEXT).await;
    let config = config_with(&ciphertext, &kms_key);
    assert!(matches!(
        config.sealing_key,
        Some(SealingKeySource::Kms { .. })
    ));

    // What a function does at start: one Decrypt.
    let started = Instant::now();
    let resolved = runtime::sealing_key(&kms, &config)
        .await
        .expect("KMS decrypts the data key")
        .expect("a sealing key");
    let took = started.elapsed();
    eprintln!("sealing key from moto's KMS: one Decrypt in {took:?} (debug build, loopback)");
    assert!(took < Duration::from_secs(10));

    // The resolved key is the data key's plaintext: the same id, and each opens what the
    // other sealed.
    let direct = store::SealingKey::from_bytes(&plaintext);
    assert_eq!(resolved.id(), direct.id());
    let (with_resolved, with_plaintext) = stores(resolved, direct).await;
    assert_eq!(
        seal_and_open(&with_resolved, &with_plaintext, "sandbox", "whsec_from_kms").await,
        ["whsec_from_kms"]
    );
    assert_eq!(
        seal_and_open(&with_plaintext, &with_resolved, "stripe", "whsec_other_way").await,
        ["whsec_other_way"]
    );
    // A key of another data key opens nothing of theirs.
    let (other, _) = data_key(&kms, &kms_key, SEALING_KEY_CONTEXT).await;
    let other = runtime::sealing_key(&kms, &config_with(&other, &kms_key))
        .await
        .unwrap()
        .unwrap();
    let stranger = with_resolved.clone().with_sealing_key(other);
    let now = time::OffsetDateTime::now_utc();
    assert!(
        stranger
            .active_secrets(&OrgSlug::parse("demo").unwrap(), "sandbox", now)
            .await
            .is_err()
    );

    // A key that was configured raw (SEALING_KEY) moves to KMS unchanged: the ciphertext of
    // `aws kms encrypt` of it, with the same context, resolves to the same key.
    let wrapped = kms
        .encrypt()
        .key_id(&kms_key)
        .plaintext(aws_sdk_kms::primitives::Blob::new(plaintext.to_vec()))
        .encryption_context(SEALING_KEY_CONTEXT.0, SEALING_KEY_CONTEXT.1)
        .send()
        .await
        .expect("Encrypt in moto");
    let wrapped = STANDARD.encode(wrapped.ciphertext_blob().unwrap().as_ref());
    let rewrapped = runtime::sealing_key(&kms, &config_with(&wrapped, &kms_key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        rewrapped.id(),
        store::SealingKey::from_bytes(&plaintext).id()
    );

    // The KMS key may be named by an alias as well as by its ARN.
    let alias = format!("alias/paybridge-test-{}", unique());
    kms.create_alias()
        .alias_name(&alias)
        .target_key_id(&kms_key)
        .send()
        .await
        .expect("CreateAlias in moto");
    let by_alias = runtime::sealing_key(&kms, &config_with(&ciphertext, &alias))
        .await
        .expect("decrypted through the alias")
        .unwrap();
    assert_eq!(
        by_alias.id(),
        store::SealingKey::from_bytes(&plaintext).id()
    );
}

/// Asserts a start refused with a config error about the ciphertext, showing neither it nor
/// the key: the error's text.
fn refused(
    result: Result<Option<store::SealingKey>, ConfigError>,
    ciphertext: &str,
    plaintext: &[u8; 32],
) -> String {
    let error = match result {
        Err(e @ ConfigError::Unusable { .. }) => e,
        Err(other) => panic!("another error: {other}"),
        Ok(key) => panic!("KMS gave a key: {key:?}"),
    };
    let text = error.to_string();
    let debug = format!("{error:?}");
    assert!(
        text.starts_with("SEALING_KEY_CIPHERTEXT cannot be used: KMS Decrypt under "),
        "{text}"
    );
    for shown in [&text, &debug] {
        // Nothing of the ciphertext (whole or any 12 characters of it), nothing of the key.
        for i in 0..ciphertext.len().saturating_sub(12) {
            assert!(
                !shown.contains(&ciphertext[i..i + 12]),
                "the ciphertext in {shown}"
            );
        }
        assert!(!shown.contains(&STANDARD.encode(plaintext)), "{shown}");
        assert!(!shown.contains(&hex(plaintext)), "{shown}");
    }
    text
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_wrong_context_a_changed_ciphertext_or_another_key_is_a_clear_config_error() {
    let kms = kms();
    let kms_key = new_kms_key(&kms).await;

    // Made with another encryption context: Decrypt with app=paybridge is refused.
    let (elsewhere, plaintext) = data_key(&kms, &kms_key, ("app", "another")).await;
    let text = refused(
        runtime::sealing_key(&kms, &config_with(&elsewhere, &kms_key)).await,
        &elsewhere,
        &plaintext,
    );
    assert!(text.contains("InvalidCiphertextException"), "{text}");
    assert!(text.contains("another encryption context"), "{text}");
    eprintln!("wrong context: {text}");

    // One bit changed (the last byte: the authentication tag).
    let (good, plaintext) = data_key(&kms, &kms_key, SEALING_KEY_CONTEXT).await;
    let mut bytes = STANDARD.decode(&good).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    let changed = STANDARD.encode(&bytes);
    let text = refused(
        runtime::sealing_key(&kms, &config_with(&changed, &kms_key)).await,
        &changed,
        &plaintext,
    );
    assert!(text.contains("InvalidCiphertextException"), "{text}");
    eprintln!("changed ciphertext: {text}");

    // Another KMS key named than the one it was made under (KMS: IncorrectKeyException; moto
    // answers AccessDeniedException).
    let another_key = new_kms_key(&kms).await;
    let text = refused(
        runtime::sealing_key(&kms, &config_with(&good, &another_key)).await,
        &good,
        &plaintext,
    );
    assert!(text.contains(&another_key), "{text}");
    eprintln!("another key: {text}");

    // The unchanged one still works: the failures were about the ciphertext, not the client.
    let key = runtime::sealing_key(&kms, &config_with(&good, &kms_key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key.id(), store::SealingKey::from_bytes(&plaintext).id());
}
