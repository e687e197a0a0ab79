//! `stele-frontends`: executing one transaction.
//!
//! Will hold (issue P2): the generic JSON transaction language (`get`, `put`,
//! `delete`, `check`) and the built-in apps (logging, SmallBank). Every command
//! declares its key set before it runs; execution yields a response, a write
//! set and its digest, or a deterministic abort reason.
