//! The budget for answers in flight: an answer takes room for its cost before its body
//! is read (or as it arrives), holds it as long as the response lives, and a call that
//! finds none waits for it, then fails `server_busy`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use chatterfly_egress::answers::{Answers, PARSED_FACTOR, TEXT_FACTOR};
use chatterfly_egress::{AllowList, Egress, EgressError, Limits, OutboundRequest};
use http::Method;
use url::Url;

const MB: usize = 1 << 20;

async fn upstream() -> String {
    let json = format!("[{}0]", "12345,".repeat(MB / 6));
    let app = axum::Router::new()
        .route(
            "/json",
            get(move || {
                let json = json.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], json).into_response() }
            }),
        )
        .route(
            "/chunked",
            get(|| async {
                let parts = (0..8).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; MB / 8])));
                axum::body::Body::from_stream(futures_util::stream::iter(parts))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn get_req(url: &str) -> OutboundRequest {
    OutboundRequest::new(Method::GET, Url::parse(url).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_hold_room_for_their_cost_and_wait_for_it() {
    let base = upstream().await;
    // room for one 1 MB JSON answer (24 MB of cost) and a little more
    let answers = Answers::new(30 * MB);
    let egress = Egress::new(AllowList::parse("127.0.0.1").unwrap(), Limits::default())
        .unwrap()
        .with_answers(answers.clone());
    let first = egress.send(get_req(&format!("{base}/json")), None).await.unwrap();
    assert!(first.body.len() > MB - 16);
    assert!(first.room.bytes() >= first.body.len() * PARSED_FACTOR);
    let free = answers.available_kib();
    assert!(
        free * 1024 < first.body.len() * PARSED_FACTOR,
        "no room left for another"
    );

    // a second JSON answer waits while the first is held, and goes on once it is dropped
    let second = {
        let egress = egress.clone();
        let url = format!("{base}/json");
        tokio::spawn(async move { egress.send(get_req(&url), None).await.map(|r| r.body.len()) })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!second.is_finished(), "the second answer waits for room");
    drop(first);
    assert!(second.await.unwrap().unwrap() > MB - 16);
    assert_eq!(answers.available_kib() * 1024, 30 * MB, "all room given back");

    // a body without a declared length takes room as it arrives
    let chunked = egress.send(get_req(&format!("{base}/chunked")), None).await.unwrap();
    assert_eq!(chunked.body.len(), MB);
    assert_eq!(chunked.room.bytes(), MB * TEXT_FACTOR);
    drop(chunked);

    // held room that never frees: the call fails server_busy, not at its timeout
    let holder = egress.send(get_req(&format!("{base}/json")), None).await.unwrap();
    let started = std::time::Instant::now();
    let err = egress.send(get_req(&format!("{base}/json")), None).await.unwrap_err();
    assert!(matches!(err, EgressError::Busy), "{err}");
    assert_eq!(err.code(), "server_busy");
    assert!(started.elapsed() < Duration::from_secs(15));
    drop(holder);
}
