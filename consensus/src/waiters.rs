//! [`Waiters`]: the submitters of proposed batches who wait for their commit.
//!
//! The executor files them under the batch's (view, first seqno) before
//! proposing it; the core answers them as it applies the committed batch, so a
//! commit is reported without a further hop through the protocol's task. A
//! view has one leader: (view, first seqno) names one batch in every log.
//! Whoever ends a proposal otherwise (an error from the protocol) answers what
//! is still filed.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::submission::{Reply, SubmitError, SubmitResult};
use crate::sync::lock;

type Filed = Vec<(SubmitResult, Reply)>;

/// Submitters waiting for the commit of their batch.
#[derive(Default)]
pub(crate) struct Waiters {
    by_batch: Mutex<HashMap<(u64, u64), Filed>>,
}

impl Waiters {
    /// Files the waiting submitters of the batch (view, first seqno).
    pub(crate) fn file(&self, view: u64, first_seqno: u64, waiting: Filed) {
        if !waiting.is_empty() {
            lock(&self.by_batch).insert((view, first_seqno), waiting);
        }
    }

    /// Tells the submitters of the batch that it committed.
    pub(crate) fn committed(&self, view: u64, first_seqno: u64) {
        for (mut answer, reply) in self.take(view, first_seqno) {
            answer.committed = true;
            reply(Ok(answer));
        }
    }

    /// Tells the submitters of the batch, if still waiting, that it failed.
    pub(crate) fn failed(&self, view: u64, first_seqno: u64, error: &SubmitError) {
        for (_, reply) in self.take(view, first_seqno) {
            reply(Err(error.clone()));
        }
    }

    fn take(&self, view: u64, first_seqno: u64) -> Filed {
        lock(&self.by_batch)
            .remove(&(view, first_seqno))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{channel, Sender};

    use stele_frontends::{AbortReason, Outcome};
    use stele_history::TransactionId;

    use super::*;

    fn waiter(seqno: u64, sender: &Sender<Result<SubmitResult, String>>) -> (SubmitResult, Reply) {
        let sender = sender.clone();
        let answer = SubmitResult {
            transaction_id: TransactionId { view: 2, seqno },
            committed: false,
            outcome: Outcome::Aborted(AbortReason::UnknownAccount { account: seqno }),
        };
        let reply: Reply = Box::new(move |result| {
            sender
                .send(result.map_err(|error| error.to_string()))
                .expect("the test holds the receiver");
        });
        (answer, reply)
    }

    #[test]
    fn each_batch_is_answered_once_by_whoever_ends_it_first() {
        let waiters = Waiters::default();
        let (sender, receiver) = channel();
        waiters.file(2, 1, vec![waiter(1, &sender), waiter(2, &sender)]);
        waiters.file(2, 3, vec![waiter(3, &sender)]);
        // Another term's batch at the same seqno is not this one.
        waiters.committed(3, 1);
        assert!(receiver.try_recv().is_err());
        waiters.committed(2, 1);
        let answers: Vec<_> = receiver.try_iter().collect();
        assert_eq!(answers.len(), 2);
        assert!(answers
            .iter()
            .all(|answer| answer.as_ref().is_ok_and(|result| result.committed)));
        // Already answered: a late failure tells nobody.
        waiters.failed(2, 1, &SubmitError::Stopped("late".to_owned()));
        assert!(receiver.try_recv().is_err());
        waiters.failed(2, 3, &SubmitError::Stopped("lost".to_owned()));
        let failed = receiver.try_recv().expect("the batch at 3 was answered");
        assert!(failed.is_err_and(|error| error.contains("lost")));
    }
}
