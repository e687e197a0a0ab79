//! `stele-api`: the wire types and HTTPS routes of Stele.
//!
//! Will hold (issue P4): the JSON commands and responses, transaction ids as
//! text, receipts as JSON, the `{"error":{"code","message"}}` error body, and
//! the axum routes (`/app/...`, `/node/...`, `/metrics`). No business logic
//! lives here: handlers turn JSON into typed commands and hand them on.
