//! Typed identifiers: a `SessionId` can never be passed where a `TemplateId`
//! is expected. All are random (v4) UUIDs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DomainError;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random identifier.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            /// Parses the textual form; a bad UUID is a `VALIDATION_ERROR`
            /// naming `field`.
            pub fn parse(text: &str, field: &str) -> Result<Self, DomainError> {
                Uuid::parse_str(text.trim()).map(Self).map_err(|_| {
                    DomainError::validation(field, format!("{field} must be a UUID, got {text:?}"))
                })
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s, $what)
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

id_type!(/// Identifies a template.
    TemplateId, "template_id");
id_type!(/// Identifies a session.
    SessionId, "session_id");
id_type!(/// Identifies an execution.
    ExecutionId, "execution_id");
id_type!(/// Identifies a capability row of a template.
    CapabilityId, "capability_id");
id_type!(/// Identifies a startup file row of a template.
    StartupFileId, "startup_file_id");
id_type!(/// Identifies an API token.
    TokenId, "token_id");
id_type!(/// Identifies a node: one daemon process serving the database.
    NodeId, "node_id");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_uuid_is_a_validation_error_naming_the_field() {
        let err = SessionId::parse("not-a-uuid", "session_id").unwrap_err();
        assert_eq!(err.code(), "VALIDATION_ERROR");
        assert!(err.to_string().contains("session_id"));
    }

    #[test]
    fn ids_round_trip_through_text() {
        let id = TemplateId::new();
        assert_eq!(TemplateId::parse(&id.to_string(), "id").unwrap(), id);
    }
}
