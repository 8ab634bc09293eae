//! Just enough HTTP/1.1 for the login service: one request per connection (`Connection: close`),
//! a body only with `Content-Length`, at most [`MAX_BODY`] bytes of it and [`MAX_HEAD`] of head.
//! Requests are read against one deadline for the whole request: the caller's reader sets the
//! socket's timeout to what is left before every read, and answers `TimedOut` once it has passed.

use std::io::{Read, Write};

/// The largest body accepted.
pub const MAX_BODY: usize = 4096;
/// The largest request line plus headers accepted.
pub const MAX_HEAD: usize = 8192;

/// Why a request could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    /// The head or the body is over its limit.
    #[error("request too large (body at most {MAX_BODY} bytes)")]
    TooLarge,
    /// Not a request this service reads.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// A body without `Content-Length` (chunked bodies are not accepted).
    #[error("a body needs Content-Length (chunked bodies are not accepted)")]
    LengthRequired,
    /// The whole request did not arrive before the deadline.
    #[error("the request took too long")]
    Slow,
    /// The peer closed the connection before the request was complete.
    #[error("the connection closed mid-request")]
    Closed,
    /// The connection failed.
    #[error("connection: {0}")]
    Io(String),
}

impl HttpError {
    /// The status to answer with (`None`: the connection is gone, answer nothing).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::TooLarge => Some(413),
            Self::Malformed(_) => Some(400),
            Self::LengthRequired => Some(411),
            Self::Slow => Some(408),
            Self::Closed | Self::Io(_) => None,
        }
    }
}

/// A request line and the headers this service reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, query included.
    pub path: String,
    /// `Content-Length` (0 when absent).
    pub content_length: usize,
}

/// A whole request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Its head.
    pub head: Head,
    /// Its body.
    pub body: Vec<u8>,
}

/// Parses the head at the start of `buf`: `Ok(None)` while it is incomplete, else the head and
/// where the body starts.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err(HttpError::TooLarge)
        } else {
            Ok(None)
        };
    };
    if end > MAX_HEAD {
        return Err(HttpError::TooLarge);
    }
    let text = std::str::from_utf8(&buf[..end])
        .map_err(|_| HttpError::Malformed("the head is not UTF-8".into()))?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Malformed("bad request line".into()));
    };
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Err(HttpError::Malformed(format!(
            "unsupported version {version:?}"
        )));
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HttpError::Malformed("bad method".into()));
    }
    if !path.starts_with('/') {
        return Err(HttpError::Malformed("bad path".into()));
    }
    let mut content_length = None;
    for header in lines {
        let Some((name, value)) = header.split_once(':') else {
            return Err(HttpError::Malformed("bad header line".into()));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| HttpError::Malformed("bad Content-Length".into()))?;
            if content_length.is_some_and(|m| m != n) {
                return Err(HttpError::Malformed("conflicting Content-Length".into()));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::LengthRequired);
        }
    }
    let content_length = content_length.unwrap_or(0);
    if content_length > MAX_BODY {
        return Err(HttpError::TooLarge);
    }
    Ok(Some((
        Head {
            method: method.to_string(),
            path: path.to_string(),
            content_length,
        },
        end + 4,
    )))
}

/// Reads one request from `stream` (a `TimedOut` or `WouldBlock` from it is [`HttpError::Slow`]).
pub fn read_request(stream: &mut impl Read) -> Result<Request, HttpError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let mut fill = |buf: &mut Vec<u8>| -> Result<(), HttpError> {
        match stream.read(&mut chunk) {
            Ok(0) => Err(HttpError::Closed),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Err(HttpError::Slow)
            }
            Err(e) => Err(HttpError::Io(e.to_string())),
        }
    };
    let (head, body_start) = loop {
        if let Some(found) = parse_head(&buf)? {
            break found;
        }
        fill(&mut buf)?;
    };
    while buf.len() < body_start + head.content_length {
        fill(&mut buf)?;
        if buf.len() > body_start + MAX_BODY {
            return Err(HttpError::TooLarge);
        }
    }
    if buf.len() > body_start + head.content_length {
        return Err(HttpError::Malformed(
            "bytes after the body (one request per connection)".into(),
        ));
    }
    let body = buf.split_off(body_start);
    Ok(Request { head, body })
}

/// Writes a JSON response and asks the peer to close.
pub fn write_response(
    stream: &mut impl Write,
    status: u16,
    extra_headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n",
        reason(status),
        body.len()
    );
    for (name, value) in extra_headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes)?;
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// A response's status and body, as the client reads it (`Connection: close`, so the body runs
/// to the end, or for `Content-Length` bytes).
pub fn parse_response(bytes: &[u8]) -> Result<(u16, Vec<u8>), HttpError> {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| HttpError::Malformed("no end of head".into()))?;
    let head = std::str::from_utf8(&bytes[..end])
        .map_err(|_| HttpError::Malformed("the head is not UTF-8".into()))?;
    let status = head
        .split("\r\n")
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HttpError::Malformed("bad status line".into()))?;
    let mut body = bytes[end + 4..].to_vec();
    let length = head.split("\r\n").find_map(|h| {
        let (name, value) = h.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    if let Some(n) = length {
        if body.len() < n {
            return Err(HttpError::Closed);
        }
        body.truncate(n);
    }
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> Result<Request, HttpError> {
        read_request(&mut &bytes[..])
    }

    #[test]
    fn reads_a_post_with_its_body() {
        let r =
            read_all(b"POST /v1/login HTTP/1.1\r\nHost: x\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!(r.head.method, "POST");
        assert_eq!(r.head.path, "/v1/login");
        assert_eq!(r.body, b"{}");
    }

    #[test]
    fn refuses_what_it_does_not_read() {
        let cases: [(&[u8], HttpError); 7] = [
            (
                b"POST /v1/login HTTP/1.1\r\nContent-Length: 4097\r\n\r\n",
                HttpError::TooLarge,
            ),
            (
                b"POST /v1/login HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                HttpError::LengthRequired,
            ),
            (
                b"POST /v1/login HTTP/1.1\r\nContent-Length: 5\r\n\r\n{}",
                HttpError::Closed,
            ),
            (
                b"POST /v1/login HTTP/2\r\n\r\n",
                HttpError::Malformed("unsupported version \"HTTP/2\"".into()),
            ),
            (
                b"POST /v1/login HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                HttpError::Malformed("conflicting Content-Length".into()),
            ),
            (
                b"POST /v1/login HTTP/1.1\r\nContent-Length: 1\r\n\r\n{}",
                HttpError::Malformed("bytes after the body (one request per connection)".into()),
            ),
            (
                b"GET x HTTP/1.1\r\n\r\n",
                HttpError::Malformed("bad path".into()),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(read_all(bytes).unwrap_err(), want, "{bytes:?}");
        }
        let long_head = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; MAX_HEAD]].concat();
        assert_eq!(read_all(&long_head).unwrap_err(), HttpError::TooLarge);
    }

    #[test]
    fn a_reader_past_its_deadline_is_slow() {
        struct Trickle(usize);
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.0 += 1;
                if self.0 > 3 {
                    return Err(std::io::ErrorKind::TimedOut.into());
                }
                buf[0] = b'P';
                Ok(1)
            }
        }
        assert_eq!(read_request(&mut Trickle(0)).unwrap_err(), HttpError::Slow);
    }

    #[test]
    fn a_written_response_reads_back() {
        let mut out = Vec::new();
        write_response(&mut out, 429, &[("Retry-After", "2".into())], b"{\"a\":1}").unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{text}"
        );
        assert!(text.contains("Retry-After: 2\r\n"));
        assert_eq!(parse_response(&out).unwrap(), (429, b"{\"a\":1}".to_vec()));
    }
}
