//! Slow and idle clients: a connection that sends half its headers, trickles its body or sits idle
//! is closed after its timeout, the number of connections is bounded, and a stop waits at most
//! `--shutdown-timeout` for connections before dropping them, with the data intact.
//!
//! The waits below are generous upper bounds on "the server closed it", never speed checks.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Server, Site};

/// A raw connection to the server.
fn connect(server: &Server) -> TcpStream {
    let addr = server.base.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// Reads until the server closes the connection; fails if it is still open after the read
/// timeout. Returns what was read.
fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

const HALF_A_HEADER: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: custodia\r\nX-Slow: ";

#[test]
fn a_half_header_is_closed_after_the_header_timeout() {
    let site = Site::new();
    let key = site.create_key("app");
    let server = site.serve(&["--header-read-timeout", "1", "--idle-timeout", "3600"]);
    let mut slow = connect(&server);
    slow.write_all(HALF_A_HEADER).unwrap();
    let answer = read_until_closed(&mut slow);
    assert!(!answer.contains("200 OK"), "{answer}");
    // The server itself is fine.
    assert_eq!(server.get(&key, "/v1/purposes").status, 200);
    assert!(server.stop().success());
}

#[test]
fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let site = Site::new();
    let server = site.serve(&["--idle-timeout", "1", "--header-read-timeout", "3600"]);
    let mut idle = connect(&server);
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: custodia\r\n\r\n")
        .unwrap();
    let answer = read_until_closed(&mut idle);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "answered first: {answer}"
    );
    assert!(server.stop().success());
}

#[test]
fn a_trickled_body_gets_408_after_the_body_timeout() {
    let site = Site::new();
    let key = site.create_key("app");
    let server = site.serve(&["--body-read-timeout", "1"]);
    let mut slow = connect(&server);
    let body = json!({"userId": "slow-1", "traits": {"plan": "basic"}}).to_string();
    let head = format!(
        "POST /v1/identify HTTP/1.1\r\nHost: custodia\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).unwrap();
    slow.write_all(&body.as_bytes()[..5]).unwrap();
    let mut answer = String::new();
    let mut buf = [0u8; 4096];
    while !answer.contains("request_timeout") {
        let n = slow
            .read(&mut buf)
            .expect("an answer before the read timeout");
        assert!(n > 0, "closed without an answer: {answer}");
        answer.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    // Nothing was stored.
    let found = server.get(&key, "/v1/subjects?user_id=slow-1&purpose=customer_support");
    assert!(
        found.status == 404
            || found.body["subjects"]
                .as_array()
                .is_some_and(|subjects| subjects.is_empty()),
        "{:?}",
        found.body
    );
    assert!(server.stop().success());
}

#[test]
fn connections_past_the_limit_wait_for_a_free_one() {
    let site = Site::new();
    let key = site.create_key("app");
    let server = site.serve(&[
        "--max-connections",
        "2",
        "--header-read-timeout",
        "3600",
        "--idle-timeout",
        "3600",
    ]);
    let first = connect(&server);
    let second = connect(&server);
    let (tx, rx) = std::sync::mpsc::channel();
    let base = server.base.clone();
    let waiting = std::thread::spawn(move || {
        let attached = Server::attach(&base);
        tx.send(attached.get(&key, "/v1/purposes").status).unwrap();
    });
    // While both slots are held, the third client gets no answer (a wrong answer here would only
    // come early, so the wait cannot make the test fail spuriously).
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "a third connection was served past the limit"
    );
    drop(first);
    assert_eq!(rx.recv_timeout(Duration::from_secs(20)).unwrap(), 200);
    waiting.join().unwrap();
    drop(second);
    assert!(server.stop().success());
}

#[test]
fn sigterm_drops_a_half_header_connection_after_the_shutdown_timeout_and_keeps_the_data() {
    let site = Site::new();
    let key = site.create_key("app");
    let server = site.serve(&[
        "--shutdown-timeout",
        "2",
        "--header-read-timeout",
        "3600",
        "--idle-timeout",
        "3600",
    ]);
    let stored = server.post(
        &key,
        "/v1/identify",
        &json!({"userId": "kept-1", "traits": {"plan": "gold"}}),
    );
    assert_eq!(stored.status, 200, "{:?}", stored.body);
    let mut slow = connect(&server);
    slow.write_all(HALF_A_HEADER).unwrap();
    // The half header is in before the stop.
    std::thread::sleep(Duration::from_millis(200));
    let stopping = Instant::now();
    let status = server.stop();
    assert!(
        stopping.elapsed() < Duration::from_secs(20),
        "stopped in {:?}",
        stopping.elapsed()
    );
    assert!(status.success(), "a clean stop: {status:?}");
    let log = std::fs::read_to_string(site.log_path()).unwrap();
    assert!(log.contains("shutdown timeout"), "{log}");
    drop(slow);
    // Everything acknowledged is there after a restart, and the ledger verifies.
    let server = site.serve(&[]);
    let found = server.get(&key, "/v1/subjects?user_id=kept-1&purpose=customer_support");
    assert_eq!(found.status, 200, "{:?}", found.body);
    assert!(server.stop().success());
    let verified = site.verify_ledger(&[]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
}
