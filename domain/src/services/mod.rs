//! The services: every business rule of templates, sessions and executions.
