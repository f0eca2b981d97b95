//! Unit tests of the command line's own parsing.

use std::net::SocketAddr;

use super::{DEFAULT_PORT, parse_listen};

fn listen(text: &str) -> Vec<SocketAddr> {
    parse_listen(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .addrs
}

#[test]
fn listen_takes_addresses_host_names_and_bare_hosts() {
    assert_eq!(
        listen("127.0.0.1:9999"),
        ["127.0.0.1:9999".parse().unwrap()]
    );
    assert_eq!(listen("[::1]:9999"), ["[::1]:9999".parse().unwrap()]);
    let default: SocketAddr = format!("127.0.0.1:{DEFAULT_PORT}").parse().unwrap();
    assert_eq!(listen("127.0.0.1"), [default]);
    assert_eq!(
        listen("::1"),
        [format!("[::1]:{DEFAULT_PORT}").parse().unwrap()]
    );
    assert_eq!(
        listen("[::1]"),
        [format!("[::1]:{DEFAULT_PORT}").parse().unwrap()]
    );
    let named = listen("localhost:9999");
    assert!(!named.is_empty());
    assert!(
        named
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 9999),
        "{named:?}"
    );
    let bare = listen("localhost");
    assert!(
        bare.iter()
            .all(|a| a.ip().is_loopback() && a.port() == DEFAULT_PORT),
        "{bare:?}"
    );
}

#[test]
fn listen_refuses_what_is_no_address() {
    for bad in [
        "",
        ":8080",
        "127.0.0.1:99999",
        "localhost:http",
        "no-such-host.invalid",
    ] {
        assert!(parse_listen(bad).is_err(), "{bad:?} must be refused");
    }
}

#[test]
fn counts_agree_with_their_noun() {
    use crate::ledger::counted;
    assert_eq!(counted(0, "checkpoint", "checkpoints"), "0 checkpoints");
    assert_eq!(counted(1, "checkpoint", "checkpoints"), "1 checkpoint");
    assert_eq!(counted(2, "entry", "entries"), "2 entries");
}
