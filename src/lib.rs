//! Holds the examples, integration tests and ui-tests of the lahja workspace.
