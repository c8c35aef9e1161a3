//! Prints what one reading of the machine costs (the part of a metrics
//! collection shared by every node): `cargo run --release -p server --example
//! machine_read [ROUNDS]`.

use std::time::Instant;

use server::metrics::system::Machine;

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(200);
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(Machine::read());
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let processes = std::fs::read_dir("/proc").map_or(0, |d| {
        d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok()).count()
    });
    println!(
        "Machine::read over {rounds} rounds, {processes} processes: median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        times[rounds / 2],
        times[rounds * 9 / 10],
        times[rounds - 1]
    );
}
