//! End-to-end tests: each starts the real `custodia` binary on a fresh data directory and speaks
//! HTTP to it, or runs its CLI, the way an operator would.

mod browser;
mod harness;

mod analytics;
mod backup;
mod cli;
mod console;
mod console_operations;
mod console_requests;
mod disk_full;
mod docs_page;
mod idempotency;
mod input;
mod invariants;
mod openapi;
mod p1_no_plaintext;
mod p2_dsr;
mod p2_erasure;
mod p3_consent;
mod p4_access;
mod p5_durability;
mod privacy_branding;
mod privacy_center;
mod sdk;
mod search;
mod slow_clients;
mod store_engine;
