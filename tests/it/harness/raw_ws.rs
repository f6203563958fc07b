//! A websocket client speaking raw bytes over TCP, to send what well-behaved clients cannot.
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server frame: opcode and payload.
#[derive(Debug)]
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// Opens `path` on `base` (http://host:port) with a websocket handshake.
pub async fn connect(base: &str, path: &str) -> TcpStream {
    connect_with_buffer(base, path, None).await
}

/// [`connect`] with the socket's receive buffer set to `recv_buffer` bytes (a small one makes
/// a client that does not read push back on the server quickly).
pub async fn connect_with_buffer(base: &str, path: &str, recv_buffer: Option<u32>) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let mut tcp = socket.connect(addr.parse().expect("host:port")).await.expect("tcp connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let answer = read_answer(&mut tcp).await;
    assert!(matches!(answer, Ok((101, _))), "handshake refused: {answer:?}");
    tcp
}

/// Reads one HTTP/1.1 answer from `tcp`: its status code and body (read up to its
/// `Content-Length`; none after a 101), or why the connection ended first.
pub async fn read_answer(tcp: &mut TcpStream) -> Result<(u16, String), String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tcp.read(&mut byte).await {
            Ok(0) => return Err(format!("closed without an answer after {} bytes", head.len())),
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(e.to_string()),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let code: u16 =
        head.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| format!("status line: {head}"))?;
    let length = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("content-length")))
        .map_or(0, |(_, v)| v.trim().parse::<usize>().unwrap_or(0));
    let mut body = vec![0; if code == 101 { 0 } else { length }];
    tcp.read_exact(&mut body).await.map_err(|e| e.to_string())?;
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

/// Sends a GET of `path` with exactly `headers` (and `Host`) over a fresh connection, and returns
/// the answer's status code and body (read up to its `Content-Length`; none after a 101). For
/// handshakes a client library would not send.
pub async fn raw_get(base: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr).await.expect("tcp connect");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    read_answer(&mut tcp).await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// A masked client frame (FIN set) with `opcode` and `payload`.
pub fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    }
    let mask = [0x12, 0x34, 0x56, 0x78];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads server frames as they come and hands each to `each` until it returns true.
pub async fn read_frames(tcp: &mut TcpStream, timeout: Duration, mut each: impl FnMut(Frame) -> bool) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 256 * 1024];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // Every complete frame in the buffer.
        loop {
            if buf.len() < 2 {
                break;
            }
            let (mut len, mut at) = ((buf[1] & 0x7f) as usize, 2);
            if len == 126 {
                if buf.len() < 4 {
                    break;
                }
                len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
                at = 4;
            } else if len == 127 {
                if buf.len() < 10 {
                    break;
                }
                len = u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize;
                at = 10;
            }
            if buf.len() < at + len {
                break;
            }
            let frame = Frame { opcode: buf[0] & 0x0f, payload: buf[at..at + len].to_vec() };
            buf.drain(..at + len);
            if each(frame) {
                return;
            }
        }
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut chunk)).await.expect("frames in time").expect("read");
        assert!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Every frame the server sends until it closes the connection (or 10 s pass).
pub async fn frames_until_closed(tcp: &mut TcpStream) -> Vec<Frame> {
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw)).await;
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 2 <= raw.len() {
        let opcode = raw[at] & 0x0f;
        let mut len = (raw[at + 1] & 0x7f) as usize;
        at += 2;
        if len == 126 {
            len = u16::from_be_bytes([raw[at], raw[at + 1]]) as usize;
            at += 2;
        } else if len == 127 {
            len = u64::from_be_bytes(raw[at..at + 8].try_into().unwrap()) as usize;
            at += 8;
        }
        frames.push(Frame { opcode, payload: raw[at..(at + len).min(raw.len())].to_vec() });
        at += len;
    }
    frames
}
