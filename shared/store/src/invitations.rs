//! Invitations: `ORG#o / INVITE#id` (the record), `INVITE#sha256(token) / INVITE` (a link's token,
//! pointing at its invitation; kept after it is spent so that an old link can say why it no
//! longer works), `ORG#o / INVITEMAIL#email` (one pending invitation per email and org).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem, Update};
use domain::{CustomerId, Email, InvitationId, Membership, OrgSlug, Role};
use time::{Duration, OffsetDateTime};

use app::ports::{
    AcceptWriteError, Acceptor, Invitation, InvitationRepo, InvitationState, NewInvitation,
    StoreError,
};

use crate::Store;
use crate::directory::{email_marker, member_item, org_pk, put_if_absent, user_item};
use crate::error::condition_failed;
use crate::item::{Attrs, Item, key, n, s, time};
use crate::table::TTL;

/// How long a spent or expired link still explains itself before its token item goes.
const TOKEN_AFTERLIFE: Duration = Duration::days(30);

fn invitation_sk(id: &InvitationId) -> String {
    format!("INVITE#{id}")
}

fn token_pk(hash: &str) -> String {
    format!("INVITE#{hash}")
}

fn marker_key(org: &OrgSlug, email: &Email) -> Attrs {
    key(org_pk(org), format!("INVITEMAIL#{email}"))
}

fn state_str(state: InvitationState) -> &'static str {
    match state {
        InvitationState::Pending => "pending",
        InvitationState::Accepted => "accepted",
        InvitationState::Revoked => "revoked",
    }
}

fn invitation_item(i: &Invitation) -> Attrs {
    let mut item = key(org_pk(&i.org), invitation_sk(&i.id));
    item.extend(mutable_attrs(i));
    item.extend([
        ("type".into(), s("invitation")),
        ("id".into(), s(i.id.as_str())),
        ("org".into(), s(i.org.as_str())),
        ("email".into(), s(i.email.as_str())),
        ("created_at".into(), time(i.created_at)),
    ]);
    item
}

/// What a reissue may change.
fn mutable_attrs(i: &Invitation) -> Vec<(String, AttributeValue)> {
    let customers = i.customer_ids.iter().map(|c| s(c.as_str())).collect();
    vec![
        ("name".into(), s(&i.name)),
        ("role".into(), s(i.role.as_str())),
        ("customer_ids".into(), AttributeValue::L(customers)),
        ("state".into(), s(state_str(i.state))),
        ("token_hash".into(), s(&i.token_hash)),
        ("invited_by".into(), s(&i.invited_by)),
        ("expires_at".into(), time(i.expires_at)),
        // A number, so that a condition can compare it with now.
        ("expires_epoch".into(), n(i.expires_at.unix_timestamp())),
        ("updated_at".into(), time(i.updated_at)),
    ]
}

fn read_invitation(attrs: &Attrs) -> Result<Invitation, StoreError> {
    let i = Item(attrs);
    let state = match i.s("state")? {
        "pending" => InvitationState::Pending,
        "accepted" => InvitationState::Accepted,
        "revoked" => InvitationState::Revoked,
        other => return Err(StoreError(format!("unknown invitation state {other:?}"))),
    };
    Ok(Invitation {
        id: i.parsed("id", InvitationId::parse)?,
        org: i.parsed("org", OrgSlug::parse)?,
        email: i.parsed("email", Email::parse)?,
        name: i.s("name")?.to_owned(),
        role: i.parsed("role", |r| Role::parse(r).ok_or(()))?,
        customer_ids: i
            .strings("customer_ids")?
            .iter()
            .map(|c| CustomerId::parse(c))
            .collect::<Result<_, _>>()
            .map_err(|_| StoreError("malformed customer id on invitation".into()))?,
        state,
        token_hash: i.s("token_hash")?.to_owned(),
        invited_by: i.s("invited_by")?.to_owned(),
        created_at: i.time("created_at")?,
        expires_at: i.time("expires_at")?,
        updated_at: i.time("updated_at")?,
    })
}

fn token_item(i: &Invitation) -> Attrs {
    let mut item = key(token_pk(&i.token_hash), "INVITE");
    item.extend([
        ("org".into(), s(i.org.as_str())),
        ("id".into(), s(i.id.as_str())),
        (
            TTL.into(),
            n((i.expires_at + TOKEN_AFTERLIFE).unix_timestamp()),
        ),
    ]);
    item
}

fn marker_item(i: &Invitation) -> Attrs {
    let mut item = marker_key(&i.org, &i.email);
    item.insert("id".into(), s(i.id.as_str()));
    item
}

fn delete_marker(table: &str, i: &Invitation) -> TransactWriteItem {
    TransactWriteItem::builder()
        .delete(
            Delete::builder()
                .table_name(table)
                .set_key(Some(marker_key(&i.org, &i.email)))
                .build()
                .expect("delete has table and key"),
        )
        .build()
}

/// An update of the invitation that holds only while it is pending with `token_hash`.
fn update_pending(
    table: &str,
    i: &Invitation,
    token_hash: &str,
    set: Vec<(String, AttributeValue)>,
    extra_condition: Option<(&str, AttributeValue)>,
) -> TransactWriteItem {
    let mut update = Update::builder()
        .table_name(table)
        .set_key(Some(key(org_pk(&i.org), invitation_sk(&i.id))))
        .expression_attribute_names("#state", "state")
        .expression_attribute_names("#hash", "token_hash")
        .expression_attribute_values(":pending", s("pending"))
        .expression_attribute_values(":current", s(token_hash));
    let mut condition = "#state = :pending AND #hash = :current".to_owned();
    if let Some((clause, now)) = extra_condition {
        condition.push_str(" AND ");
        condition.push_str(clause);
        update = update
            .expression_attribute_names("#expires", "expires_epoch")
            .expression_attribute_values(":now", now);
    }
    let mut assignments = Vec::new();
    for (i, (name, value)) in set.into_iter().enumerate() {
        assignments.push(format!("#s{i} = :s{i}"));
        update = update
            .expression_attribute_names(format!("#s{i}"), name)
            .expression_attribute_values(format!(":s{i}"), value);
    }
    TransactWriteItem::builder()
        .update(
            update
                .update_expression(format!("SET {}", assignments.join(", ")))
                .condition_expression(condition)
                .build()
                .expect("update has table, key and expression"),
        )
        .build()
}

fn cancelled(what: &str, codes: Vec<String>) -> StoreError {
    StoreError(format!("{what} cancelled: {codes:?}"))
}

#[async_trait]
impl InvitationRepo for Store {
    async fn create_invitation(&self, i: &Invitation) -> Result<NewInvitation, StoreError> {
        let items = vec![
            put_if_absent(&self.table, invitation_item(i)),
            put_if_absent(&self.table, token_item(i)),
            put_if_absent(&self.table, marker_item(i)),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(NewInvitation::Created),
            Err(Ok(codes)) if condition_failed(&codes, 2) => {
                let Some(marker) = self
                    .get_item(org_pk(&i.org), &format!("INVITEMAIL#{}", i.email))
                    .await?
                else {
                    return Err(StoreError("invitation marker vanished; try again".into()));
                };
                Ok(NewInvitation::PendingExists(
                    Item(&marker).parsed("id", InvitationId::parse)?,
                ))
            }
            Err(Ok(codes)) => Err(cancelled("create invitation", codes)),
            Err(Err(e)) => Err(e),
        }
    }

    async fn get_invitation(
        &self,
        org: &OrgSlug,
        id: &InvitationId,
    ) -> Result<Option<Invitation>, StoreError> {
        self.get_item(org_pk(org), &invitation_sk(id))
            .await?
            .map(|a| read_invitation(&a))
            .transpose()
    }

    async fn find_invitation_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<Invitation>, StoreError> {
        let Some(token) = self.get_item(token_pk(token_hash), "INVITE").await? else {
            return Ok(None);
        };
        let token = Item(&token);
        let org = token.parsed("org", OrgSlug::parse)?;
        let id = token.parsed("id", InvitationId::parse)?;
        self.get_invitation(&org, &id).await
    }

    async fn list_invitations(&self, org: &OrgSlug) -> Result<Vec<Invitation>, StoreError> {
        let mut list: Vec<Invitation> = self
            .query_prefix(None, org_pk(org), "INVITE#")
            .await?
            .iter()
            .map(read_invitation)
            .collect::<Result<_, _>>()?;
        // ULIDs sort by time: newest first.
        list.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(list)
    }

    async fn reissue_invitation(
        &self,
        updated: &Invitation,
        old_token_hash: &str,
    ) -> Result<bool, StoreError> {
        let items = vec![
            update_pending(
                &self.table,
                updated,
                old_token_hash,
                mutable_attrs(updated),
                None,
            ),
            put_if_absent(&self.table, token_item(updated)),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(Ok(codes)) if condition_failed(&codes, 0) => Ok(false),
            Err(Ok(codes)) => Err(cancelled("reissue invitation", codes)),
            Err(Err(e)) => Err(e),
        }
    }

    async fn revoke_invitation(
        &self,
        i: &Invitation,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let set = vec![
            ("state".to_owned(), s("revoked")),
            ("updated_at".to_owned(), time(now)),
        ];
        let items = vec![
            update_pending(&self.table, i, &i.token_hash, set, None),
            delete_marker(&self.table, i),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(Ok(codes)) if condition_failed(&codes, 0) => Ok(false),
            Err(Ok(codes)) => Err(cancelled("revoke invitation", codes)),
            Err(Err(e)) => Err(e),
        }
    }

    async fn accept_invitation(
        &self,
        i: &Invitation,
        acceptor: &Acceptor,
        now: OffsetDateTime,
    ) -> Result<(), AcceptWriteError> {
        let user_id = match acceptor {
            Acceptor::New(user) => user.id.clone(),
            Acceptor::Existing(id) => id.clone(),
        };
        let set = vec![
            ("state".to_owned(), s("accepted")),
            ("accepted_by".to_owned(), s(user_id.as_str())),
            ("updated_at".to_owned(), time(now)),
        ];
        let membership = Membership {
            org: i.org.clone(),
            role: i.role,
            customer_ids: i.customer_ids.clone(),
        };
        let unexpired = Some(("#expires > :now", n(now.unix_timestamp())));
        let mut items = vec![
            update_pending(&self.table, i, &i.token_hash, set, unexpired),
            delete_marker(&self.table, i),
            put_if_absent(&self.table, member_item(&user_id, &membership, now)),
        ];
        if let Acceptor::New(user) = acceptor {
            items.push(put_if_absent(&self.table, user_item(user)));
            items.push(put_if_absent(&self.table, email_marker(user)));
        }
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(Ok(codes)) if condition_failed(&codes, 0) => Err(AcceptWriteError::Spent),
            Err(Ok(codes)) if condition_failed(&codes, 2) => Err(AcceptWriteError::AlreadyMember),
            Err(Ok(codes)) if condition_failed(&codes, 4) => Err(AcceptWriteError::EmailTaken),
            Err(Ok(codes)) => Err(cancelled("accept invitation", codes).into()),
            Err(Err(e)) => Err(e.into()),
        }
    }
}
