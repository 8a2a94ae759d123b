//! `tracecast publish`: reads NDJSON events from stdin and POSTs them to `/v1/events` in
//! batches, printing each acknowledgement (`{"accepted":N,"firstSeq":…,"lastSeq":…}`).
//!
//! A deliberately small blocking HTTP/1.1 client on `std::net::TcpStream`: one connection
//! per batch with `Connection: close`, `Content-Length` both ways. It needs no TLS and no
//! async runtime, and a batch is never sent twice (no retry), so nothing is stored twice.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use clap::Args;

use super::bearer::{self, BearerArgs};
use super::CliError;

#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// Base HTTP URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Events per POST.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
    /// The bearer token needs the publish permission.
    #[command(flatten)]
    pub bearer: BearerArgs,
}

/// Where to send: `host:port` to connect to and the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub authority: String,
    pub path: String,
}

/// `http://host[:port][/prefix]` → the target for `<prefix>/v1/events`.
pub fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: only http:// URLs are supported"))?;
    let (authority, prefix) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("{url:?}: expected http://host[:port]"));
    }
    let has_port = match authority.rfind(':') {
        Some(i) => authority.rfind(']').is_none_or(|j| i > j),
        None => false,
    };
    let authority = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok(Target {
        authority,
        path: format!("{}/v1/events", prefix.trim_end_matches('/')),
    })
}

/// The request bytes for one batch.
pub fn request(target: &Target, token: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-ndjson\r\n\
         Content-Length: {}\r\nConnection: close\r\nUser-Agent: tracecast/{}\r\n",
        target.path,
        target.authority,
        body.len(),
        env!("CARGO_PKG_VERSION")
    );
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A whole response, or `None` while more bytes are needed (`eof`: no more will come).
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Option<(u16, Vec<u8>)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if eof => {
            return Err("connection closed before a response".into())
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad HTTP response: {e}")),
    };
    let status = resp.code.unwrap_or(0);
    let length = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
        })
        .map(|v| v.ok_or("bad Content-Length in response"))
        .transpose()?;
    let body = buf.get(head_len..).unwrap_or_default();
    match length {
        Some(n) if body.len() >= n => {
            Ok(Some((status, body.get(..n).unwrap_or_default().to_vec())))
        }
        Some(_) if eof => Err("connection closed in the middle of the response body".into()),
        None if eof => Ok(Some((status, body.to_vec()))),
        _ => Ok(None),
    }
}

fn post(target: &Target, token: Option<&str>, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let mut stream = TcpStream::connect(&target.authority)
        .map_err(|e| format!("cannot connect to {}: {e}", target.authority))?;
    // Generous, but a stuck server must not hang a pipeline forever.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    stream
        .write_all(&request(target, token, body))
        .map_err(|e| format!("send to {}: {e}", target.authority))?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream
            .read(&mut chunk)
            .map_err(|e| format!("read from {}: {e}", target.authority))?;
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(done) = parse_response(&buf, n == 0)? {
            return Ok(done);
        }
    }
}

/// Runs the command: every batch acknowledged on stdout, or the first failure.
pub fn run(args: &PublishArgs) -> Result<(), CliError> {
    let target = parse_url(&args.url).map_err(|e| CliError::Usage(format!("--url {e}")))?;
    // Before stdin is read, so a bad token source costs the user no input.
    let token = bearer::token(&args.bearer)?;
    let batch = usize::try_from(args.batch).unwrap_or(usize::MAX).max(1);
    let stdin = std::io::stdin();
    let mut body = Vec::new();
    let (mut count, mut first_line, mut line_no) = (0usize, 1usize, 0usize);
    let send = |body: &mut Vec<u8>, count: &mut usize, first_line: usize| -> Result<(), CliError> {
        if *count == 0 {
            return Ok(());
        }
        let (status, reply) = post(&target, token.as_deref(), body)
            .map_err(|e| CliError::Runtime(format!("publish: {e}")))?;
        let reply = String::from_utf8_lossy(&reply);
        if !(200..300).contains(&status) {
            return Err(CliError::Runtime(format!(
                "publish: HTTP {status} for the batch starting at input line {first_line} \
                 (event indexes count from 0 in that batch): {}",
                reply.trim()
            )));
        }
        println!("{}", reply.trim());
        body.clear();
        *count = 0;
        Ok(())
    };
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| CliError::Runtime(format!("publish: reading stdin: {e}")))?;
        line_no += 1;
        if line.trim().is_empty() {
            continue;
        }
        if count == 0 {
            first_line = line_no;
        }
        body.extend_from_slice(line.trim().as_bytes());
        body.push(b'\n');
        count += 1;
        if count >= batch {
            send(&mut body, &mut count, first_line)?;
        }
    }
    send(&mut body, &mut count, first_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = |a: &str, p: &str| {
            Ok(Target {
                authority: a.into(),
                path: p.into(),
            })
        };
        assert_eq!(
            parse_url("http://127.0.0.1:8080"),
            t("127.0.0.1:8080", "/v1/events")
        );
        assert_eq!(parse_url("http://host/"), t("host:80", "/v1/events"));
        assert_eq!(parse_url("http://h:1/base/"), t("h:1", "/base/v1/events"));
        assert_eq!(parse_url("http://[::1]:9"), t("[::1]:9", "/v1/events"));
        assert_eq!(parse_url("http://[::1]"), t("[::1]:80", "/v1/events"));
        assert!(parse_url("https://h").is_err());
        assert!(parse_url("http://").is_err());
    }

    #[test]
    fn request_bytes() {
        let target = parse_url("http://h:1").expect("url");
        let req = String::from_utf8(request(&target, Some("tok"), b"{}\n")).expect("utf8");
        assert!(req.starts_with("POST /v1/events HTTP/1.1\r\nHost: h:1\r\n"));
        assert!(req.contains("Content-Length: 3\r\n"));
        assert!(req.contains("Authorization: Bearer tok\r\n"));
        assert!(req.ends_with("\r\n\r\n{}\n"));
    }

    #[test]
    fn responses() {
        let full = b"HTTP/1.1 202 Accepted\r\nContent-Length: 14\r\n\r\n{\"accepted\":1}";
        assert_eq!(parse_response(&full[..20], false), Ok(None));
        assert_eq!(parse_response(&full[..full.len() - 1], false), Ok(None));
        assert_eq!(
            parse_response(full, false),
            Ok(Some((202, b"{\"accepted\":1}".to_vec())))
        );
        let no_len = b"HTTP/1.1 400 Bad Request\r\n\r\n{\"error\":1}";
        assert_eq!(parse_response(no_len, false), Ok(None));
        assert_eq!(
            parse_response(no_len, true),
            Ok(Some((400, b"{\"error\":1}".to_vec())))
        );
        assert!(parse_response(b"HTTP/1.1 200", true).is_err());
        assert!(parse_response(b"garbage\r\n\r\n", false).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).is_err());
    }
}
