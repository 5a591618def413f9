//! Canonical types of mediagate: task types, requests and results, the error catalog,
//! parameter paths and money. No I/O lives here; every other crate builds on these.

#![warn(missing_docs)]

pub mod dialect;
pub mod error;
pub mod fair;
pub mod model;
pub mod money;
pub mod param;
pub mod task;

pub use dialect::Dialect;
pub use error::{ApiError, ErrorCode};
pub use param::{ParamPath, ParamReader, Parameter};
