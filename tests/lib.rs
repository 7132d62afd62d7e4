//! Cross-crate integration tests live in `tests/tests/`. This crate links every plugin through
//! the facade, as a user's binary would.
