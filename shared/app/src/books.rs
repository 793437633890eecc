//! The write-back: every payment of an invoice kept in Xero or ConnectWise is posted there once,
//! and reversed there when its money goes back. A posting is queued in the same transaction
//! that records the payment's success (card payments), or by the settlement's effects (bank
//! debits, which are only posted once the bank has paid); the queue rides on the webhooks'
//! follow-ups (lease, retry, due index). Failures are retried with backoff, a rate limit waits
//! for its `Retry-After`; what the accounting system refuses, or what keeps failing, waits in
//! the org's unprocessed-payments list for the admin: retry, or mark fixed by hand. The payment
//! itself is never touched by any of this.

use time::{Duration, OffsetDateTime};

use domain::{OrgSlug, PaymentId, PaymentStatus};

use crate::payments::Payment;

use crate::Services;
use crate::ports::{
    Books, FollowUpKey, Page, PaymentEffects, PaymentPosting, PaymentReversal, Posted, StoreError,
};
use crate::webhooks::FollowUpRun;

/// Tries before a posting waits for the admin: 1, 2, 4 ... 64 minutes, then 2 hours (about 4
/// hours in all, enough to ride out an accounting system's bad afternoon).
pub const MAX_ATTEMPTS: u32 = 8;

fn backoff(attempts: u32) -> Duration {
    Duration::minutes(2_i64.pow(attempts.min(7))).min(Duration::hours(2))
}

/// The posting of a payment that has just succeeded (or settled).
pub fn entry(payment: &Payment, now: OffsetDateTime) -> Books {
    let how = match &payment.method {
        Some(m) => format!(" {} {}", m.brand, m.last4),
        None => String::new(),
    };
    Books {
        posting: PaymentPosting {
            org: payment.org.clone(),
            payment: payment.id.clone(),
            invoice: payment.invoice_number.clone(),
            amount: payment.amount,
            allocations: payment.allocations.clone(),
            surcharge: payment.surcharge,
            paid_on: now.date(),
            reference: format!("Paybridge {}{how}", payment.id),
        },
        posted: None,
        want_reversed: false,
        reversed: false,
        unprocessed: None,
        last_error: None,
        attempts: 0,
        queued_at: now,
        updated_at: now,
    }
}

/// What a payment's transition asks of the books, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BooksStep {
    Post(Box<Books>),
    Reverse { org: OrgSlug, payment: PaymentId },
}

/// The books' part of a transition's effects: a bank debit that settled is posted; money that
/// went back (returned, lost dispute, refunded in full) is reversed. Nothing for the ledger,
/// whose balance moved in the transition's own transaction.
pub async fn step_for(
    s: &Services,
    payment: &Payment,
    effects: &PaymentEffects,
) -> Result<Option<BooksStep>, StoreError> {
    use PaymentStatus::*;
    let writes_back = s
        .accounting
        .writes_back(&effects.org)
        .await
        .map_err(|e| StoreError(e.0))?;
    if !writes_back {
        return Ok(None);
    }
    let step = match (effects.from, effects.to) {
        (Pending, Succeeded | Settled) => {
            Some(BooksStep::Post(Box::new(entry(payment, effects.at))))
        }
        (_, Returned | DisputeLost) => Some(BooksStep::Reverse {
            org: effects.org.clone(),
            payment: payment.id.clone(),
        }),
        (_, Refunded)
            if effects
                .refunded
                .is_some_and(|r| r.minor() >= payment.amount.minor()) =>
        {
            Some(BooksStep::Reverse {
                org: effects.org.clone(),
                payment: payment.id.clone(),
            })
        }
        (_, Refunded) => {
            // A partial refund changes what was paid, not whether: the posting stands, and
            // the bookkeeper records the refund (Paybridge does not guess the account).
            tracing::info!(payment = %payment.id, "partly refunded: the posted payment stands");
            None
        }
        _ => None,
    };
    Ok(step)
}

/// Carries out a transition's books step (idempotent: a second delivery changes nothing).
pub async fn apply(s: &Services, step: &BooksStep, now: OffsetDateTime) -> Result<(), StoreError> {
    match step {
        BooksStep::Post(books) => {
            s.books.queue_books(books, now).await?;
        }
        BooksStep::Reverse { org, payment } => {
            if !s.books.want_reversal(org, payment, now).await? {
                tracing::info!(payment = %payment, "nothing posted to reverse, or reversed already");
            }
        }
    }
    Ok(())
}

/// Runs one leased write-back: posts it, or reverses it, or sees that nothing is left to do.
pub(crate) async fn run(
    s: &Services,
    key: &FollowUpKey,
    lease: &str,
    mut books: Books,
    now: OffsetDateTime,
) -> Result<FollowUpRun, StoreError> {
    if books.is_settled() {
        return close(s, key, lease, &books, now).await;
    }
    let posting = &books.posting;
    let result = match &books.posted {
        Some(remote_id) if books.want_reversed => {
            s.accounting
                .reverse_payment(&PaymentReversal {
                    org: posting.org.clone(),
                    payment: posting.payment.clone(),
                    remote_id: remote_id.clone(),
                    id: format!("{}-reversal", posting.payment),
                    amount: posting.amount,
                    on: now.date(),
                })
                .await
        }
        _ => s.accounting.post_payment(posting).await,
    };
    books.updated_at = now;
    let wait = match result {
        Ok(Posted::Recorded { remote_id }) => {
            if books.posted.is_some() {
                books.reversed = true;
            } else {
                books.posted = Some(remote_id);
            }
            books.last_error = None;
            s.books.books_progress(&books, lease).await?;
            if books.is_settled() {
                return close(s, key, lease, &books, now).await;
            }
            // Posted, and reversed meanwhile: straight on to the reversal.
            Duration::ZERO
        }
        Ok(Posted::Refused(why)) => {
            tracing::warn!(payment = %books.posting.payment, why = %why, "the accounting system refused the write-back");
            books.last_error = Some(why.clone());
            s.books.books_progress(&books, lease).await?;
            s.books.park_books(&books, lease, &why, now).await?;
            return Ok(FollowUpRun::Waiting);
        }
        Ok(Posted::Later { after, why }) => {
            // A rate limit is not a failure: it waits its turn without using up a try, so
            // that a limit can delay a write but never park (or lose) it.
            books.last_error = Some(why);
            let wait = Duration::try_from(after).unwrap_or(Duration::hours(1));
            s.books.books_progress(&books, lease).await?;
            s.webhooks.reschedule(key, lease, &[], now + wait).await?;
            return Ok(FollowUpRun::Waiting);
        }
        Err(e) => {
            books.attempts += 1;
            tracing::warn!(payment = %books.posting.payment, error = %e, attempts = books.attempts, "write-back failed; it will be tried again");
            books.last_error = Some(e.0);
            backoff(books.attempts - 1)
        }
    };
    s.books.books_progress(&books, lease).await?;
    if books.attempts >= MAX_ATTEMPTS {
        let why = format!(
            "not written back after {MAX_ATTEMPTS} tries: {}",
            books.last_error.as_deref().unwrap_or("no answer")
        );
        s.books.park_books(&books, lease, &why, now).await?;
    } else {
        s.webhooks.reschedule(key, lease, &[], now + wait).await?;
    }
    Ok(FollowUpRun::Waiting)
}

/// Takes a settled write-back out of the queue, unless a reversal was asked for meanwhile:
/// then it is due again at once.
async fn close(
    s: &Services,
    key: &FollowUpKey,
    lease: &str,
    books: &Books,
    now: OffsetDateTime,
) -> Result<FollowUpRun, StoreError> {
    let outcome = settled_outcome(books);
    if s.books.books_done(books, Some(lease), outcome, now).await? {
        tracing::info!(payment = %books.posting.payment, outcome, "books settled");
        Ok(FollowUpRun::Done)
    } else {
        s.webhooks.reschedule(key, lease, &[], now).await?;
        Ok(FollowUpRun::Waiting)
    }
}

fn settled_outcome(books: &Books) -> &'static str {
    match (books.want_reversed, books.posted.is_some()) {
        (true, false) => "not_posted",
        (true, true) => "reversed",
        _ => "posted",
    }
}

/// The org's unprocessed payments (oldest first), for the admin.
pub async fn unprocessed(
    s: &Services,
    org: &OrgSlug,
    limit: Option<u16>,
    cursor: Option<&str>,
) -> Result<Page<Books>, StoreError> {
    s.books.unprocessed(org, limit.unwrap_or(50), cursor).await
}

/// What the admin's retry came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// Not on the list (never parked, or fixed or retried already).
    NotListed,
    /// Tried now: its books entry as it stands after the try.
    Tried(Box<Books>),
}

/// The admin's "retry": back into the queue and tried at once, its retries counted afresh.
pub async fn retry(
    s: &Services,
    org: &OrgSlug,
    payment: &PaymentId,
) -> Result<Retried, StoreError> {
    let now = s.clock.now();
    if !s.books.requeue_books(org, payment, now).await? {
        return Ok(Retried::NotListed);
    }
    let key = FollowUpKey::Books {
        org: org.clone(),
        payment: payment.clone(),
    };
    crate::webhooks::run_follow_up(s, &key).await?;
    let books = s
        .books
        .get_books(org, payment)
        .await?
        .ok_or_else(|| StoreError("a retried write-back vanished".into()))?;
    Ok(Retried::Tried(Box::new(books)))
}

/// The admin's "fixed": the payment was recorded in the accounting system by hand; it leaves the
/// list. False when it was not on it.
pub async fn mark_fixed(
    s: &Services,
    org: &OrgSlug,
    payment: &PaymentId,
) -> Result<bool, StoreError> {
    let Some(books) = s.books.get_books(org, payment).await? else {
        return Ok(false);
    };
    s.books
        .books_done(&books, None, "fixed_by_hand", s.clock.now())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_two_hours_and_end_after_about_four() {
        let waits: Vec<_> = (0..MAX_ATTEMPTS)
            .map(|a| backoff(a).whole_minutes())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 120]);
        let total: i64 = waits[..MAX_ATTEMPTS as usize - 1].iter().sum();
        assert!((120..=300).contains(&total), "{total} minutes");
    }
}
