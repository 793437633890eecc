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

    /// Whether `next` is a step forward from here. Nothing ever moves backwards.
    pub fn can_move_to(self, next: PaymentStatus) -> bool {
        use PaymentStatus::*;
        matches!(
            (self, next),
            (Pending, Succeeded | Failed)
                | (Succeeded, Settled | Returned | Refunded | Disputed)
                | (Settled, Returned | Refunded | Disputed)
                | (Disputed, DisputeWon | DisputeLost)
        )
    }
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
}
