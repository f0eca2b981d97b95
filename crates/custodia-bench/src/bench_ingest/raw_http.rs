//! A minimal HTTP/1.1 keep-alive client for the load generator: one blocking connection per
//! client thread, requests encoded once and written as they are, responses read by
//! `Content-Length`. A general client (ureq) parses and allocates far more per request; on a
//! 2-core machine that CPU is taken from the server under test, so at 64 and 256 connections the
//! generator would measure itself. `GET /healthz` through this client is the ceiling it reaches.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use anyhow::{Context, bail};

/// One request, encoded once and sent as often as needed.
pub(crate) struct Request(Vec<u8>);

impl Request {
    /// `method path` with a bearer token and, when given, a JSON body.
    pub(crate) fn new(method: &str, path: &str, bearer: Option<&str>, body: Option<&[u8]>) -> Self {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        if let Some(token) = bearer {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        Request(bytes)
    }
}

/// One keep-alive connection.
pub(crate) struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Connection {
    pub(crate) fn open(addr: SocketAddr) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Sends `request` and reads its answer; an answer other than 2xx is an error naming the
    /// status (the body, a problem+json without personal data, is not kept).
    pub(crate) fn send(&mut self, request: &Request) -> anyhow::Result<()> {
        self.stream.write_all(&request.0)?;
        self.buf.clear();
        let (head_len, status, body_len) = loop {
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
            self.fill()?;
        };
        while self.buf.len() < head_len + body_len {
            self.fill()?;
        }
        if self.buf.len() > head_len + body_len {
            bail!("the server sent more than one answer");
        }
        if !(200..300).contains(&status) {
            bail!("answered {status}");
        }
        Ok(())
    }

    fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 8192];
        let read = self.stream.read(&mut chunk)?;
        if read == 0 {
            bail!("the server closed the connection");
        }
        self.buf.extend_from_slice(&chunk[..read]);
        Ok(())
    }
}

/// `(head length, status, body length)` once `buf` holds a whole head.
fn parse_head(buf: &[u8]) -> anyhow::Result<Option<(usize, u16, usize)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).context("answer head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .context("no status line")?;
    let mut body_len = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            body_len = Some(value.trim().parse::<usize>()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("chunked answers are not supported by the load generator");
        }
    }
    Ok(Some((end + 4, status, body_len.unwrap_or(0))))
}
