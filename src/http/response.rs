//! Response bytes for the plain-HTTP answers (health, metrics, ingest, errors, the 101).
//!
//! Every response carries `Content-Length` so keep-alive framing never depends on closing
//! the socket. Header values pass through a CR/LF filter: some of them (request ids,
//! messages) echo client input, and must not be able to start a new header line.

/// The reason phrase for a status code tracecast sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A response under construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    close: bool,
    // 1xx, 204 and 304 never carry a body or Content-Length (RFC 9110 §8.6).
    bodyless: bool,
}

impl Response {
    /// A response with this status and an empty body.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            close: false,
            bodyless: status < 200 || status == 204 || status == 304,
        }
    }

    /// Adds a header (CR and LF in name or value are replaced by spaces).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((sanitize(name), sanitize(value)));
        self
    }

    /// Sets the body and its `Content-Type`.
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.headers
            .push(("Content-Type".to_owned(), sanitize(content_type)));
        self.body = body.into();
        self
    }

    /// Adds `Connection: close`: the server closes after writing this response.
    pub fn close(mut self) -> Self {
        self.close = true;
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether the connection is to be closed after this response.
    pub fn closes(&self) -> bool {
        self.close
    }

    /// The JSON error answer: `{"error":{"code":"not_found","message":"…"}}`.
    pub fn error(status: u16, message: &str) -> Self {
        let code: String = reason(status)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        Response::new(status).body("application/json", body.to_string())
    }

    /// The whole response: status line, headers, `Content-Length`, blank line, body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.head_bytes();
        if !self.bodyless {
            out.extend_from_slice(&self.body);
        }
        out
    }

    /// The head only, with the `Content-Length` the body would have (answers to HEAD).
    pub fn head_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.headers.len() * 32 + self.body.len());
        out.extend_from_slice(
            format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status)).as_bytes(),
        );
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !self.bodyless {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_with_content_length() {
        let r = Response::new(200)
            .header("X-A", "1")
            .body("text/plain", "hi")
            .close();
        assert_eq!(
            String::from_utf8(r.to_bytes()).unwrap(),
            "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        );
        assert_eq!(
            String::from_utf8(Response::new(404).to_bytes()).unwrap(),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        );
        let head = Response::new(200).body("text/plain", "hello").head_bytes();
        assert!(String::from_utf8(head)
            .unwrap()
            .ends_with("Content-Length: 5\r\n\r\n"));
        let none = Response::new(204).to_bytes();
        assert_eq!(none, b"HTTP/1.1 204 No Content\r\n\r\n");
    }

    #[test]
    fn error_body_and_header_injection() {
        let r = Response::error(431, "too \"big\"");
        let bytes = String::from_utf8(r.to_bytes()).unwrap();
        let body = bytes.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "request_header_fields_too_large");
        assert_eq!(v["error"]["message"], "too \"big\"");
        let r = Response::new(200)
            .header("X-Id", "a\r\nSet-Cookie: x")
            .to_bytes();
        assert!(!String::from_utf8(r).unwrap().contains("\r\nSet-Cookie"));
        for s in [
            200, 202, 204, 400, 401, 403, 404, 405, 408, 411, 413, 426, 429, 431, 500, 501, 503,
        ] {
            assert_ne!(reason(s), "Unknown", "{s}");
        }
        assert_eq!(
            crate::http::HttpError::HeadTooLarge.to_response().status(),
            431
        );
    }
}
