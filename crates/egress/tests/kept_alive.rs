//! An upstream that closes a kept-alive connection just as the next request goes out
//! (servers close idle connections after a few seconds: gunicorn after 2): a request that
//! may be repeated (GET, PUT, DELETE…) is sent once more on a new connection; a POST is
//! not, since the upstream may have acted on it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use chatterfly_egress::{AllowList, Egress, EgressError, Limits, OutboundRequest};
use http::Method;
use tokio::io::AsyncWriteExt;
use url::Url;

/// Answers the first request of each connection (keep-alive) and closes the connection
/// without a word when a second request arrives on it. Counts the requests it read.
async fn upstream(requests: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/thing", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let requests = requests.clone();
            tokio::spawn(async move {
                let mut seen = 0;
                let mut buf = Vec::new();
                loop {
                    if !common::read_request(&mut sock, &mut buf).await {
                        return;
                    }
                    requests.fetch_add(1, SeqCst);
                    seen += 1;
                    if seen > 1 {
                        return; // closed, unanswered
                    }
                    sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok")
                        .await
                        .unwrap();
                }
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_kept_alive_connection_is_retried_only_for_repeatable_requests() {
    let requests = Arc::new(AtomicUsize::new(0));
    let url = upstream(requests.clone()).await;
    // each method with a client of its own, so that its first request opens a connection
    let send = |egress: &Egress, method: Method| {
        let mut req = OutboundRequest::new(method, Url::parse(&url).unwrap());
        req.body = Some(bytes::Bytes::from_static(b"{}"));
        let egress = egress.clone();
        async move { egress.send(req, None).await }
    };
    let client = || Egress::new(AllowList::parse("127.0.0.1").unwrap(), Limits::default()).unwrap();

    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let egress = client();
        // the first request opens a connection that is kept; the second finds it closed
        let first = send(&egress, method.clone()).await.unwrap();
        assert_eq!(first.status.as_u16(), 200, "{method}");
        let before = requests.load(SeqCst);
        let second = send(&egress, method.clone()).await;
        assert!(second.is_ok(), "{method}: {second:?}");
        assert_eq!(second.unwrap().body.as_ref(), b"ok");
        assert_eq!(
            requests.load(SeqCst) - before,
            2,
            "{method}: sent twice, once on each connection"
        );
    }

    // a POST the upstream read but never answered is not sent again
    let egress = client();
    let first = send(&egress, Method::POST).await.unwrap();
    assert_eq!(first.status.as_u16(), 200);
    let before = requests.load(SeqCst);
    let second = send(&egress, Method::POST).await;
    assert!(
        matches!(second, Err(EgressError::Http(_))),
        "a POST is never repeated: {second:?}"
    );
    assert_eq!(requests.load(SeqCst) - before, 1, "the POST went out once");
}
