//! Step kinds that hold a run for people: `approval` (`gate.approval`), a question the
//! run waits on until someone answers it from any process that reaches the state.

mod approval;

pub(super) use approval::GateApproval;
