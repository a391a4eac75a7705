//! What a JSON answer costs in memory once parsed, by its shape, against the text it came
//! as: the measurements behind `density::VALUE_COST`, `OBJECT_COST` and
//! `MAX_ANSWER_COST_PER_BYTE`. Heap bytes are counted by dhat around each parse.
//!
//! `cargo run --release -p chatterfly-domain --example answer_cost`

use chatterfly_domain::density::too_dense;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const SHAPES: [(&str, &str); 10] = [
    ("numbers", "0,"),
    ("pairs of numbers", "[1.5,2.3],"),
    ("empty objects", "{},"),
    ("empty arrays", "[],"),
    ("short strings", r#""abcd","#),
    ("one tiny field", r#"{"abcd":0},"#),
    ("two tiny fields", r#"{"a":1,"b":2},"#),
    ("one longer field", r#"{"abcdefghijklmn":1234567},"#),
    ("small items", r#"{"id":10,"name":"item 10","tags":["a","b"]},"#),
    (
        "airy items",
        r#"{"name": "a real looking value", "login": "octocat", "id": 12345},"#,
    ),
];

/// Each shape is measured in a process of its own, so that one's peak is not another's.
fn main() {
    if let Some(Ok(i)) = std::env::args().nth(1).map(|a| a.parse::<usize>()) {
        measure(i);
        return;
    }
    println!("| shape | held / text | handed on as |");
    println!("|---|---|---|");
    let Ok(me) = std::env::current_exe() else { return };
    for i in 0..SHAPES.len() {
        match std::process::Command::new(&me).arg(i.to_string()).output() {
            Ok(out) => print!("{}", String::from_utf8_lossy(&out.stdout)),
            Err(e) => eprintln!("{e}"),
        }
    }
}

fn measure(i: usize) {
    let Some(&(name, item)) = SHAPES.get(i) else { return };
    let _profiler = dhat::Profiler::builder().testing().build();
    {
        let text = format!("[{}0]", item.repeat(10_000_000 / item.len()));
        let before = dhat::HeapStats::get();
        let parsed: serde_json::Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("{name}: {e}");
                return;
            }
        };
        let after = dhat::HeapStats::get();
        let held = after.curr_bytes.saturating_sub(before.curr_bytes);
        drop(parsed);
        let len = text.len() as f64;
        let verdict = if too_dense(text.as_bytes()) { "text" } else { "parsed" };
        println!("| {name} (`{item}`) | {:.1}× | {verdict} |", held as f64 / len);
    }
}
