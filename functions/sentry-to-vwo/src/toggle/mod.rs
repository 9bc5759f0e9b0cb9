//! The toggle the fast path and the queue worker share: an accepted decision as a job
//! ([`job`]), applied to VWO in order ([`apply`], over the replay records and per-flag
//! generations of [`kill_state`]), or put on the durable queue ([`queue`]) that the
//! [`worker`] drains.

pub mod apply;
pub mod job;
pub mod kill_state;
pub mod queue;
pub mod worker;
