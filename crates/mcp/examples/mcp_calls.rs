//! `tools/call` latency of Chatterfly's own MCP client (`McpClient::call`, pooled session,
//! rmcp over the guarded client) calling a server directly, with no Chatterfly server in
//! between: the third figure of `bench/mcp.sh`, to tell the client's cost from the
//! server's.
//!
//!   cargo run --release -p chatterfly-mcp --example mcp_calls -- URL TOOL ARGS_JSON [CALLS]

use std::error::Error;
use std::time::{Duration, Instant};

use chatterfly_egress::{AllowList, Egress, Limits};
use chatterfly_mcp::{McpClient, PoolSettings, Target};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: mcp_calls URL TOOL ARGS_JSON [CALLS]";
    let url = args.next().ok_or(usage)?;
    let tool = args.next().ok_or(usage)?;
    let arguments: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&args.next().ok_or(usage)?)?;
    let calls: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(2000);

    // the benchmark's servers listen on loopback only
    let egress = Egress::new(AllowList::parse("127.0.0.1")?, Limits::default())?;
    let (client, _changes) = McpClient::new(egress, PoolSettings::default());
    let target = Target {
        url: url.parse()?,
        bearer: None,
        transport: chatterfly_domain::McpTransport::StreamableHttp,
        limits: Limits::default(),
        workspace: None,
    };
    for _ in 0..200 {
        client.call("bench", &target, &tool, arguments.clone()).await?;
    }
    let mut times: Vec<Duration> = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t0 = Instant::now();
        client.call("bench", &target, &tool, arguments.clone()).await?;
        times.push(t0.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p50 = times.get(calls / 2).copied().unwrap_or_default();
    let p99 = times.get(calls * 99 / 100).copied().unwrap_or_default();
    println!(
        "{{\"rmcp_direct\":{{\"calls\":{calls},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}}}",
        ms(p50),
        ms(p99)
    );
    Ok(())
}
