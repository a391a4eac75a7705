//! What the raw-socket upstreams of these tests share.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Reads until `buf` holds one whole request (its head and the body its Content-Length
/// says), and takes it out of `buf`; false when the client closed first.
pub async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let body_len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + body_len {
                buf.drain(..end + 4 + body_len);
                return true;
            }
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
