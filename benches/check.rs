//! Check latency on a synthetic national population (criterion).
//!
//! `CLAIMGATE_BENCH_PRACTITIONERS` sets the population (default 1,000,000;
//! `benches/run.sh` runs 1M and 20M). Claims use random keys over the whole
//! population, so lookups miss the CPU caches as real traffic does. The
//! baseline in the same run is the obvious design: std `HashMap`s of compact
//! records, judged by the same `decide`.

use claimgate::domain::{CivilDate, InstitutionCode, PractitionerCode};
use claimgate::event::Event;
use claimgate::index::compact::{CompactInstitution, CompactPractitioner};
use claimgate::population::{Population, PopulationSpec};
use claimgate::rules::{decide, Claim, Decision};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::collections::HashMap;
use std::time::Duration;

/// Distinct claims the benches cycle through (random over the population).
const CLAIMS: usize = 1 << 20;
/// Lines per batch in the batched bench.
const BATCH: usize = 1_000;
/// Largest population for which the std-HashMap baseline is built.
const MAX_BASELINE_PRACTITIONERS: u64 = 5_000_000;
const SEED: u64 = 20_261_124;

fn practitioners() -> u64 {
    std::env::var("CLAIMGATE_BENCH_PRACTITIONERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

/// Random claims: a random practitioner at one of their institutions (or,
/// one in ten, a random institution), on a random day of 2024-2026.
fn claims(population: &Population) -> Vec<Claim> {
    let mut rng = claimgate::population::Rng::new(SEED);
    let n = population.spec().practitioners;
    let institutions = population.spec().institutions();
    let first = CivilDate::parse("2024-01-01").unwrap().day_number();
    (0..CLAIMS)
        .map(|_| {
            let i = rng.next_u64() % n;
            let institution = match population.practitioner_events(i).iter().find_map(|e| match e {
                Event::PractitionerRegistered { institution, .. } => Some(*institution),
                _ => None,
            }) {
                Some(inst) if !rng.next_u64().is_multiple_of(10) => inst,
                _ => population.institution_code(rng.next_u64() % institutions),
            };
            Claim {
                practitioner: population.practitioner_code(i),
                institution,
                service_date: CivilDate::from_day_number(first + (rng.next_u64() % 1096) as i32).unwrap(),
                emergency: rng.next_u64().is_multiple_of(20),
            }
        })
        .collect()
}

type Baseline = (HashMap<PractitionerCode, CompactPractitioner>, HashMap<InstitutionCode, CompactInstitution>);

fn baseline(population: &Population) -> Baseline {
    let index = population.index();
    let base = index.base();
    (base.practitioners().collect(), base.institutions().collect())
}

fn bench(c: &mut Criterion) {
    let n = practitioners();
    let population = Population::new(PopulationSpec::new(n, SEED));
    let index = population.index();
    let claims = claims(&population);
    let label = format!("{}M", n as f64 / 1e6);
    eprintln!(
        "population {n}: index {} bytes = {:.1} bytes/practitioner",
        index.base().bytes().len(),
        index.base().bytes().len() as f64 / n as f64
    );

    let mut group = c.benchmark_group(format!("check/{label}"));
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    let mut k = 0;
    group.bench_function("single_random", |b| {
        b.iter(|| {
            k = (k + 1) & (CLAIMS - 1);
            black_box(index.check(black_box(&claims[k])))
        })
    });
    if n <= MAX_BASELINE_PRACTITIONERS {
        let (practitioners, institutions) = baseline(&population);
        let mut k = 0;
        group.bench_function("single_random_std_hashmap_baseline", |b| {
            b.iter(|| {
                k = (k + 1) & (CLAIMS - 1);
                let claim = black_box(&claims[k]);
                black_box(decide(institutions.get(&claim.institution), practitioners.get(&claim.practitioner), claim))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group(format!("check_batch/{label}"));
    group.throughput(Throughput::Elements(BATCH as u64));
    group.measurement_time(Duration::from_secs(5));
    let mut start = 0;
    let mut out: Vec<Decision> = Vec::with_capacity(BATCH);
    group.bench_function("batch_1000_prefetch", |b| {
        b.iter(|| {
            start = (start + BATCH) % (CLAIMS - BATCH);
            out.clear();
            index.check_batch(black_box(&claims[start..start + BATCH]), &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
