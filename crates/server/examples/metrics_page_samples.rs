//! Prints what taking a node's samples for the Metrics page costs with a full day
//! kept (8,640 collections of 60 points), whole versus spread to the charts' 300
//! points: `cargo run --release -p server --example metrics_page_samples`.

use std::time::Instant;

use server::metrics::history::{History, NodeKey};

fn main() {
    let history = History::new(8640);
    for at in 0..8640 {
        let points = (0..60).map(|n| (format!("system.point{n}"), at * n)).collect();
        history.record(NodeKey { instance: "i".into(), node: 0 }, "ns".into(), at, points);
    }
    let time = |what: &str, f: &dyn Fn() -> usize| {
        let mut times: Vec<f64> = (0..50)
            .map(|_| {
                let started = Instant::now();
                std::hint::black_box(f());
                started.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!("{what}: {} samples, median {:.3} ms", f(), times[25]);
    };
    time("all kept (before)", &|| history.samples("i", 0, None).len());
    time("spread to 300 (after)", &|| history.sampled("i", 0, 300).len());
}
