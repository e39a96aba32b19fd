//! Hostile clients, over real sockets: who may do what (an authorization
//! matrix over every route), bad input of every kind, floods of requests
//! and connections, and the served OpenAPI document.

// The API tests' server and clients.
#[allow(dead_code)]
#[path = "../api/common.rs"]
mod common;

mod authz;
mod input;
mod limits;
mod openapi;
