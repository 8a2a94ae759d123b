//! Hot-path costs of the security cores: verifying a typical JWT at connect / in-band
//! `auth` (target < 2 µs), the per-message rate-limit check (target < 20 ns), and a
//! session-scope test per subscription or history request.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use tracecast::auth::{jwt, Claims, JwtKey, Permissions, SessionScope, Validation};
use tracecast::config::RateLimitConfig;
use tracecast::limits::{RateLimiter, TokenBucket};

const SECRET: &[u8] = b"bench-secret-bench-secret-bench!";
const NOW: i64 = 1_700_000_000;

fn jwt_verify(c: &mut Criterion) {
    let claims = Claims {
        sub: Some("user-1234".into()),
        exp: Some(NOW + 3600),
        permissions: Permissions::READ | Permissions::PUBLISH,
        sessions: Some(vec!["prod-*".into(), "staging-42".into()]),
        ..Claims::default()
    };
    let token = jwt::mint(SECRET, &claims);
    let key = JwtKey::new(SECRET);
    let validation = Validation::default();
    c.bench_function("jwt_verify", |b| {
        b.iter(|| jwt::verify(black_box(&token), &key, &validation, black_box(NOW)))
    });
}

fn rate_limit_check(c: &mut Criterion) {
    let mut limiter = RateLimiter::new(&RateLimitConfig::default(), 0);
    let mut now = 0u64;
    c.bench_function("rate_limit_check", |b| {
        b.iter(|| {
            // Advance time so the check stays on the allow path, as in steady traffic.
            now += 60;
            limiter.check(black_box(now), black_box(200))
        })
    });
    let mut bucket = TokenBucket::new(1000, 1000, 60_000, 0);
    let mut t = 0u64;
    c.bench_function("token_bucket_try_take", |b| {
        b.iter(|| {
            t += 60;
            bucket.try_take(black_box(t), 1)
        })
    });
}

fn scope_allows(c: &mut Criterion) {
    let scope = SessionScope::from_patterns(["prod-*", "staging-*-eu", "exact-session"]);
    c.bench_function("scope_allows", |b| {
        b.iter(|| {
            (
                scope.allows(black_box("staging-7-eu")),
                scope.allows(black_box("other-session")),
            )
        })
    });
}

criterion_group!(benches, jwt_verify, rate_limit_check, scope_allows);
criterion_main!(benches);
