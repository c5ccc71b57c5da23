//! What requests do, once the pipeline ([`crate::pipeline`]) let them through: the handlers of
//! each method, the relays of what backends send clients, and a session's life.

pub mod answer;
pub mod checks;
pub mod dispatch;
pub mod lifecycle;
pub mod lists;
pub mod modern;
pub mod mrtr;
pub mod relay;
pub mod sessionless;
