//! A payment's life as a forward-only state machine.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Recorded before the gateway is called; the gateway has not answered yet (or a bank debit is in flight).
    Pending,
    Succeeded,
    Failed,
    Settled,
    Returned,
    Refunded,
    Disputed,
    DisputeWon,
    DisputeLost,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 9] = [
        Self::Pending,
        Self::Succeeded,
        Self::Failed,
        Self::Settled,
        Self::Returned,
        Self::Refunded,
        Self::Disputed,
        Self::DisputeWon,
        Self::DisputeLost,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Settled => "settled",
            Self::Returned => "returned",
            Self::Refunded => "refunded",
            Self::Disputed => "disputed",
            Self::DisputeWon => "dispute_won",
            Self::DisputeLost => "dispute_lost",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The direct steps from here: the state machine's table. A bank debit is approved but
    /// pending while it settles, so `pending -> settled` is its normal path; a card payment goes
    /// `pending -> succeeded -> settled`.
    pub const fn next(self) -> &'static [PaymentStatus] {
        use PaymentStatus::*;
        match self {
            Pending => &[Succeeded, Failed, Settled],
            Succeeded => &[Settled, Returned, Refunded, Disputed],
            Settled => &[Returned, Refunded, Disputed],
            Disputed => &[DisputeWon, DisputeLost],
            Failed | Returned | Refunded | DisputeWon | DisputeLost => &[],
        }
    }

    /// Whether `next` is one step forward from here. Nothing ever moves backwards.
    pub fn can_move_to(self, next: PaymentStatus) -> bool {
        self.next().contains(&next)
    }

    /// Whether `later` lies ahead of here on some forward path, one step or more.
    pub fn leads_to(self, later: PaymentStatus) -> bool {
        self.next()
            .iter()
            .any(|&step| step == later || step.leads_to(later))
    }

    /// How a gateway's report that a payment is now `reported` bears on one that we hold as
    /// `self`. Gateways deliver out of order: a report from further ahead moves the payment
    /// there at once (the steps in between happened at the gateway; their own reports will come
    /// late and be passed), and a report from behind never moves it back.
    pub fn on_report(self, reported: PaymentStatus) -> Report {
        if self == reported {
            Report::AlreadyThere
        } else if self.leads_to(reported) {
            Report::Forward
        } else if reported.leads_to(self) {
            Report::Passed
        } else {
            Report::Contradicts
        }
    }

    /// Whether moving from here to `to` means the money came back to the payer, so that the
    /// invoice's balance must be restored: a returned bank debit, a lost dispute, or a bank debit
    /// that failed while settling (its amount was taken off the balance when it was approved).
    /// A refund is the merchant's own act and leaves the balance to them.
    pub fn returns_money(self, to: PaymentStatus) -> bool {
        use PaymentStatus::*;
        self.leads_to(to) && matches!((self, to), (_, Returned | DisputeLost) | (Pending, Failed))
    }
}

/// What a gateway's report means for a payment (see `PaymentStatus::on_report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Ahead of the payment: move it there.
    Forward,
    /// The payment is there already.
    AlreadyThere,
    /// The payment is past it already: a late report.
    Passed,
    /// On another branch (a refunded payment reported returned, a failed one reported
    /// succeeded): nothing moves, and someone should look.
    Contradicts,
}

#[cfg(test)]
mod tests {
    use super::PaymentStatus::{self, *};

    #[test]
    fn moves_only_forward() {
        assert!(Pending.can_move_to(Succeeded));
        assert!(Pending.can_move_to(Failed));
        assert!(Succeeded.can_move_to(Settled));
        assert!(Disputed.can_move_to(DisputeLost));
        assert!(!Succeeded.can_move_to(Pending));
        assert!(!Failed.can_move_to(Succeeded));
        assert!(!Settled.can_move_to(Succeeded));
        assert!(!Refunded.can_move_to(Settled));
        for s in PaymentStatus::ALL {
            assert!(!s.can_move_to(s), "{s:?} to itself is not a move");
            assert_eq!(PaymentStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn no_cycles() {
        // Following moves from any state always ends: the graph is acyclic.
        fn depth(s: PaymentStatus, n: usize) -> usize {
            assert!(n < 10, "cycle through {s:?}");
            PaymentStatus::ALL
                .into_iter()
                .filter(|t| s.can_move_to(*t))
                .map(|t| depth(t, n + 1))
                .max()
                .unwrap_or(n)
        }
        assert_eq!(depth(Pending, 0), 4);
    }

    #[test]
    fn the_table_of_steps() {
        let table: Vec<(PaymentStatus, Vec<PaymentStatus>)> = PaymentStatus::ALL
            .into_iter()
            .map(|s| (s, s.next().to_vec()))
            .filter(|(_, next)| !next.is_empty())
            .collect();
        assert_eq!(
            table,
            vec![
                (Pending, vec![Succeeded, Failed, Settled]),
                (Succeeded, vec![Settled, Returned, Refunded, Disputed]),
                (Settled, vec![Returned, Refunded, Disputed]),
                (Disputed, vec![DisputeWon, DisputeLost]),
            ]
        );
    }

    #[test]
    fn reports_from_ahead_move_and_reports_from_behind_are_passed() {
        use super::Report::*;
        // Settled before succeeded: the payment ends settled.
        assert_eq!(Pending.on_report(Settled), Forward);
        assert_eq!(Settled.on_report(Succeeded), Passed);
        // Succeeded after refunded: it stays refunded.
        assert_eq!(Refunded.on_report(Succeeded), Passed);
        // Settled after returned: it stays returned.
        assert_eq!(Returned.on_report(Settled), Passed);
        // A lost dispute reported before the dispute itself.
        assert_eq!(Settled.on_report(DisputeLost), Forward);
        assert_eq!(DisputeLost.on_report(Disputed), Passed);
        assert_eq!(Settled.on_report(Settled), AlreadyThere);
        // Other branches contradict each other.
        assert_eq!(Failed.on_report(Succeeded), Contradicts);
        assert_eq!(Refunded.on_report(Returned), Contradicts);
        assert_eq!(DisputeWon.on_report(DisputeLost), Contradicts);
    }

    #[test]
    fn nothing_is_both_ahead_and_behind() {
        for a in PaymentStatus::ALL {
            assert!(!a.leads_to(a), "{a:?} leads to itself");
            for b in PaymentStatus::ALL {
                assert!(!(a.leads_to(b) && b.leads_to(a)), "{a:?} and {b:?}");
                if a.can_move_to(b) {
                    assert!(a.leads_to(b));
                }
            }
        }
    }

    #[test]
    fn money_comes_back_on_returns_lost_disputes_and_failed_settling_debits() {
        assert!(Settled.returns_money(Returned));
        assert!(
            Pending.returns_money(Returned),
            "a debit returned before we saw it settle"
        );
        assert!(Disputed.returns_money(DisputeLost));
        assert!(Settled.returns_money(DisputeLost));
        assert!(Pending.returns_money(Failed));
        assert!(!Disputed.returns_money(DisputeWon));
        assert!(!Settled.returns_money(Refunded));
        assert!(!Pending.returns_money(Settled));
        assert!(
            !Returned.returns_money(Returned),
            "only a move gives money back"
        );
    }
}
