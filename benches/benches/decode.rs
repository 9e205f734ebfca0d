//! Throughput of the user-space event pipeline on one core: decoding ring
//! buffer records, attributing them, filtering, and writing JSON Lines.
//! Target: more than 1M events/s for decode + attribution + filter.

use std::hint::black_box;

use boxtrace::{
    output::JsonLines,
    trace::{attribution::Attribution, event::Event, filter::Filter},
};
use boxtrace_benches::container_start_records;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn pipeline(c: &mut Criterion) {
    let records = container_start_records();
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(records.len() as u64));

    g.bench_function("decode", |b| {
        b.iter(|| {
            for r in &records {
                black_box(Event::decode(black_box(r)).unwrap());
            }
        })
    });

    // One attribution state across iterations: a stream's steady state,
    // where each container's /proc lookups were made once, long ago.
    g.bench_function("decode+attribute+filter", |b| {
        let filter = Filter::default();
        let mut attribution = Attribution::default();
        b.iter(|| {
            let mut shown = 0u64;
            for r in &records {
                let mut ev = Event::decode(r).unwrap();
                attribution.observe(&mut ev);
                shown += u64::from(filter.matches(&ev));
            }
            black_box(shown)
        })
    });

    g.bench_function("decode+attribute+jsonl", |b| {
        let mut buf = Vec::with_capacity(1 << 20);
        let mut attribution = Attribution::default();
        b.iter(|| {
            buf.clear();
            {
                let mut out = JsonLines::new(&mut buf);
                for r in &records {
                    let mut ev = Event::decode(r).unwrap();
                    attribution.observe(&mut ev);
                    out.write(&ev).unwrap();
                }
            }
            black_box(buf.len())
        })
    });
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
