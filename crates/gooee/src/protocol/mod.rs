//! Gooee's protocol as data, shared by the device agent and the platform side: the topic table,
//! payload types (meta list and single value, actions, fault alarms, head counts, rejections)
//! with their encoders and decoders side by side, and the validation rules. No I/O, no clock
//! (time is an argument), no panics on any input.

pub mod action;
pub mod alarm;
pub mod error;
pub mod headcount;
pub mod meta;
pub mod meta_types;
pub mod publication;
pub mod rejected;
pub mod topics;

pub use action::{Action, RelayedAction};
pub use alarm::FaultAlarm;
pub use error::{NameProblem, PayloadError, format_timestamp};
pub use headcount::HeadCount;
pub use meta::{MetaEntry, MetaList, MetaValue, check_name};
pub use publication::{Check, Publication, PublicationError};
pub use rejected::{Rejection, RejectionError};
pub use topics::{Access, Entity, HeadCountKind, Route, TopicError, TopicRefused};

/// The MQTT username Gooee's broker expects (the password is the user API token).
pub const USERNAME: &str = "authorization";
