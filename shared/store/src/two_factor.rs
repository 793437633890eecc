//! Two-factor sign-in, kept on the user item `USER#u / USER`: that item is read on every
//! signed-in request already, so whether two-factor is on (`totp_secret` present) costs no read,
//! and every change below is one conditional UpdateItem of one item (no transaction).
//!
//! Attributes: the pending secret of an enrolment (`totp_pending`, `totp_pending_id`,
//! `totp_pending_at`) or the active one (`totp_secret`, `totp_secret_id`, `totp_on_at`), never
//! both; `totp_last_step`, the latest time step whose code was accepted; `totp_recovery`, a string
//! set of the unused recovery codes' SHA-256; `totp_key_id`, the sealing key's id. Secrets are
//! sealed (AES-256-GCM, see `sealing`) bound to the user and the secret's id, so that a
//! ciphertext copied to another user's item does not open.
//!
//! Second-step tokens: `SIGNIN#sha256(token) / SIGNIN`, expiring by TTL after 5 minutes (and
//! checked on read: DynamoDB deletes lazily); used up by a conditional DeleteItem.

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use domain::{Secret, UserId};
use time::OffsetDateTime;

use app::ports::{
    ActiveTotp, PendingTotp, SecondStep, StoreError, TwoFactorRepo, TwoFactorState, UsedCode, User,
};

use crate::Store;
use crate::directory::{read_user, user_pk};
use crate::item::{Attrs, Item, key, n, s, time};
use crate::table::{PK, TTL};

/// Present exactly when two-factor sign-in is on (`directory::read_user` reads it so).
pub(crate) const TOTP_SECRET: &str = "totp_secret";
const TOTP_SECRET_ID: &str = "totp_secret_id";
const TOTP_ON_AT: &str = "totp_on_at";
const TOTP_LAST_STEP: &str = "totp_last_step";
const TOTP_RECOVERY: &str = "totp_recovery";
const TOTP_KEY_ID: &str = "totp_key_id";
const TOTP_PENDING: &str = "totp_pending";
const TOTP_PENDING_ID: &str = "totp_pending_id";
const TOTP_PENDING_AT: &str = "totp_pending_at";

fn user_key(user: &UserId) -> Attrs {
    key(user_pk(user), "USER")
}

/// What a sealed secret is bound to: the user item and the secret's own id.
fn context(user: &UserId, id: &str) -> String {
    format!("USER#{user}/TOTP/{id}")
}

fn second_step_key(token_hash: &str) -> Attrs {
    key(format!("SIGNIN#{token_hash}"), "SIGNIN")
}

impl Store {
    fn open_totp(
        &self,
        attrs: &Attrs,
        user: &UserId,
        sealed: &str,
        id: &str,
    ) -> Result<Secret<Vec<u8>>, StoreError> {
        let sealing = self.sealing_key()?;
        let i = Item(attrs);
        let sealed_with = i.s(TOTP_KEY_ID)?;
        if sealed_with != sealing.id() {
            return Err(StoreError(format!(
                "the two-factor secret of user {user} was sealed with key {sealed_with}, and SEALING_KEY is key {}",
                sealing.id()
            )));
        }
        let opened = sealing.open(&i.bytes(sealed)?, &context(user, i.s(id)?))?;
        Ok(Secret::new(opened))
    }

    fn read_two_factor(&self, attrs: &Attrs, user: &UserId) -> Result<TwoFactorState, StoreError> {
        let i = Item(attrs);
        let pending = if attrs.contains_key(TOTP_PENDING) {
            Some(PendingTotp {
                id: i.s(TOTP_PENDING_ID)?.to_owned(),
                secret: self.open_totp(attrs, user, TOTP_PENDING, TOTP_PENDING_ID)?,
                started_at: i.time(TOTP_PENDING_AT)?,
            })
        } else {
            None
        };
        let active = if attrs.contains_key(TOTP_SECRET) {
            let recovery_hashes = match attrs.get(TOTP_RECOVERY) {
                // DynamoDB removes a set whose last member is deleted: all codes used.
                None => Vec::new(),
                Some(value) => value
                    .as_ss()
                    .map_err(|_| StoreError("stored recovery codes are not a string set".into()))?
                    .clone(),
            };
            Some(ActiveTotp {
                secret: self.open_totp(attrs, user, TOTP_SECRET, TOTP_SECRET_ID)?,
                enabled_at: i.time(TOTP_ON_AT)?,
                last_step: i.u64(TOTP_LAST_STEP)?,
                recovery_hashes,
            })
        } else {
            None
        };
        Ok(TwoFactorState { pending, active })
    }

    /// One conditional UpdateItem of the user item; Ok(false) when its condition fails.
    async fn update_user_if(
        &self,
        user: &UserId,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(user_key(user)))
            .update_expression(update)
            .condition_expression(condition)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if condition.contains("#pk") {
            request = request.expression_attribute_names("#pk", PK);
        }
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        let result = request.send().await;
        self.conditional("UpdateItem (two-factor)", result)
    }
}

#[async_trait]
impl TwoFactorRepo for Store {
    /// 1 read (GetItem, strongly consistent) of the user item.
    async fn two_factor(
        &self,
        user: &UserId,
    ) -> Result<Option<(User, TwoFactorState)>, StoreError> {
        let Some(attrs) = self.get_key(user_key(user)).await? else {
            return Ok(None);
        };
        let state = self.read_two_factor(&attrs, user)?;
        Ok(Some((read_user(&attrs)?, state)))
    }

    async fn start_totp(&self, user: &UserId, pending: &PendingTotp) -> Result<bool, StoreError> {
        let sealing = self.sealing_key()?;
        let sealed = sealing.seal(pending.secret.expose(), &context(user, &pending.id));
        self.update_user_if(
            user,
            &format!(
                "SET {TOTP_PENDING} = :secret, {TOTP_PENDING_ID} = :id, {TOTP_PENDING_AT} = :at, {TOTP_KEY_ID} = :key"
            ),
            &format!("attribute_exists(#pk) AND attribute_not_exists({TOTP_SECRET})"),
            vec![
                (":secret", AttributeValue::B(Blob::new(sealed))),
                (":id", s(&pending.id)),
                (":at", time(pending.started_at)),
                (":key", s(sealing.id())),
            ],
        )
        .await
    }

    async fn confirm_totp(
        &self,
        user: &UserId,
        pending: &PendingTotp,
        step: u64,
        recovery_hashes: &[String],
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // Sealed afresh for the same id (which becomes the active secret's), under the key now.
        let sealing = self.sealing_key()?;
        let sealed = sealing.seal(pending.secret.expose(), &context(user, &pending.id));
        self.update_user_if(
            user,
            &format!(
                "SET {TOTP_SECRET} = :secret, {TOTP_SECRET_ID} = :id, {TOTP_KEY_ID} = :key, \
                 {TOTP_ON_AT} = :now, {TOTP_LAST_STEP} = :step, {TOTP_RECOVERY} = :codes \
                 REMOVE {TOTP_PENDING}, {TOTP_PENDING_ID}, {TOTP_PENDING_AT}"
            ),
            &format!("{TOTP_PENDING_ID} = :id AND attribute_not_exists({TOTP_SECRET})"),
            vec![
                (":secret", AttributeValue::B(Blob::new(sealed))),
                (":key", s(sealing.id())),
                (":now", time(now)),
                (":step", n(step)),
                (":codes", AttributeValue::Ss(recovery_hashes.to_vec())),
                (":id", s(&pending.id)),
            ],
        )
        .await
    }

    async fn use_code(&self, user: &UserId, code: &UsedCode) -> Result<bool, StoreError> {
        match code {
            // Every step up to this one is spent: a code is taken once, and none older after it.
            UsedCode::Step(step) => {
                self.update_user_if(
                    user,
                    &format!("SET {TOTP_LAST_STEP} = :step"),
                    &format!("attribute_exists({TOTP_SECRET}) AND {TOTP_LAST_STEP} < :step"),
                    vec![(":step", n(step))],
                )
                .await
            }
            UsedCode::Recovery(hash) => {
                self.update_user_if(
                    user,
                    &format!("DELETE {TOTP_RECOVERY} :used"),
                    &format!(
                        "attribute_exists({TOTP_SECRET}) AND contains({TOTP_RECOVERY}, :hash)"
                    ),
                    vec![
                        (":used", AttributeValue::Ss(vec![hash.clone()])),
                        (":hash", s(hash)),
                    ],
                )
                .await
            }
        }
    }

    async fn disable_totp(&self, user: &UserId) -> Result<bool, StoreError> {
        self.update_user_if(
            user,
            &format!(
                "REMOVE {TOTP_SECRET}, {TOTP_SECRET_ID}, {TOTP_ON_AT}, {TOTP_LAST_STEP}, \
                 {TOTP_RECOVERY}, {TOTP_KEY_ID}, {TOTP_PENDING}, {TOTP_PENDING_ID}, {TOTP_PENDING_AT}"
            ),
            &format!("attribute_exists({TOTP_SECRET})"),
            vec![],
        )
        .await
    }

    async fn put_second_step(&self, step: &SecondStep) -> Result<(), StoreError> {
        let mut item = second_step_key(&step.token_hash);
        item.extend([
            ("type".into(), s("second_step")),
            ("user_id".into(), s(step.user.as_str())),
            ("created_at".into(), time(step.created_at)),
            ("expires_at".into(), time(step.expires_at)),
            (TTL.into(), n(step.expires_at.unix_timestamp())),
        ]);
        if self.put_new(item).await? {
            Ok(())
        } else {
            Err(StoreError("second-step token collision".into()))
        }
    }

    async fn get_second_step(&self, token_hash: &str) -> Result<Option<SecondStep>, StoreError> {
        let Some(attrs) = self.get_key(second_step_key(token_hash)).await? else {
            return Ok(None);
        };
        let i = Item(&attrs);
        Ok(Some(SecondStep {
            token_hash: token_hash.to_owned(),
            user: i.parsed("user_id", UserId::parse)?,
            created_at: i.time("created_at")?,
            expires_at: i.time("expires_at")?,
        }))
    }

    async fn take_second_step(&self, token_hash: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(second_step_key(token_hash)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        self.conditional("DeleteItem (second step)", result)
    }
}
