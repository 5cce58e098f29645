//! Parsing cost of the image references irsa reads on every pod admission and credential request.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use irsa_core::registry::parse;

fn registry_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("registry_parse");
    let inputs = [
        (
            "ecr_full",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1.2.3",
        ),
        (
            "digest",
            "cgr.dev/chainguard/static@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
        ("docker_hub_short", "nginx"),
    ];
    for (name, input) in inputs {
        group.bench_function(name, |b| b.iter(|| parse(black_box(input))));
    }
    group.finish();
}

criterion_group!(benches, registry_parse);
criterion_main!(benches);
