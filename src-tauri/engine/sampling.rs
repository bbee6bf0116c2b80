//! Token sampling: plain functions over a logits slice, on the host.
//!
//! Why on the host and not in the MLX graph: the logits of one position are a few
//! hundred KB, copying them is noise next to a forward pass, and plain Rust makes every
//! rule here testable with exact tables and seeded draws.
//!
//! Order of operations (the Hugging Face convention, which is what API users expect):
//! repetition penalty on the raw logits → temperature 0 ⇒ argmax (ties go to the lowest
//! id, like `mx.argmax`, so greedy output equals mlx-lm's) → otherwise divide by the
//! temperature → top-k → top-p → min-p → renormalise → one draw from the seeded RNG.

use serde::{Deserialize, Serialize};

/// Sampling settings of one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// 0 = greedy (exact argmax).
    pub temperature: f32,
    /// Nucleus: keep the smallest set of tokens whose probability sums to ≥ `top_p` (1 = off).
    pub top_p: f32,
    /// Keep the `top_k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Drop tokens less likely than `min_p` × the most likely one (0 = off).
    pub min_p: f32,
    /// > 1 discourages tokens seen in the last `repetition_context` tokens (1 = off).
    pub repetition_penalty: f32,
    pub repetition_context: usize,
    /// Same seed, same prompt, same settings ⇒ same tokens.
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            repetition_context: 64,
            seed: None,
        }
    }
}

impl SamplingParams {
    /// Reject values that have no meaning, with a message naming the field.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: String| Err(crate::Error::new(crate::Code::InvalidArgument, m));
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad(format!("temperature must be ≥ 0, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad(format!("min_p must be in [0, 1], got {}", self.min_p));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return bad(format!(
                "repetition_penalty must be > 0, got {}",
                self.repetition_penalty
            ));
        }
        Ok(())
    }
}

/// xoshiro256** seeded through SplitMix64: small, fast, and its output for a seed never
/// changes with a dependency upgrade (reproducibility is part of the API).
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// A seed from the clock and the address space, for requests without one.
    pub fn from_entropy() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let local = 0u8;
        Rng::new(t ^ ((&local as *const u8 as u64).rotate_left(32)))
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Index of the largest value; the lowest index wins ties; NaN never wins.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best_v = v;
            best = i;
        }
    }
    best as u32
}

/// CTRL-style penalty: positive logits are divided by `penalty`, negative multiplied,
/// once per distinct token among `recent`.
pub fn apply_repetition_penalty(logits: &mut [f32], recent: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = std::collections::HashSet::with_capacity(recent.len());
    for &t in recent {
        if !seen.insert(t) {
            continue;
        }
        if let Some(l) = logits.get_mut(t as usize) {
            *l = if *l < 0.0 { *l * penalty } else { *l / penalty };
        }
    }
}

/// A candidate token with its (unnormalised, then normalised) probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub id: u32,
    pub p: f64,
}

/// Softmax of `logits / temperature` as candidates sorted by probability, most likely
/// first (ties by lower id). With `top_k > 0` only the `top_k` best are kept (found with
/// a partial selection, so a small k does not pay for sorting the whole vocabulary).
pub fn candidates(logits: &[f32], temperature: f32, top_k: usize) -> Vec<Candidate> {
    let inv_t = 1.0 / temperature as f64;
    let max = logits
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut c: Vec<Candidate> = logits
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_nan())
        .map(|(i, &v)| Candidate {
            id: i as u32,
            p: ((v as f64 - max) * inv_t).exp(),
        })
        .collect();
    let order = |a: &Candidate, b: &Candidate| b.p.total_cmp(&a.p).then(a.id.cmp(&b.id));
    if top_k > 0 && top_k < c.len() {
        c.select_nth_unstable_by(top_k - 1, order);
        c.truncate(top_k);
    }
    c.sort_unstable_by(order);
    normalise(&mut c);
    c
}

fn normalise(c: &mut [Candidate]) {
    let sum: f64 = c.iter().map(|x| x.p).sum();
    if sum > 0.0 {
        for x in c.iter_mut() {
            x.p /= sum;
        }
    }
}

/// Keep the smallest prefix (of candidates sorted most likely first) whose mass is
/// ≥ `top_p`; always at least one.
pub fn top_p_filter(c: &mut Vec<Candidate>, top_p: f32) {
    if top_p >= 1.0 {
        return;
    }
    let mut acc = 0.0;
    let mut keep = c.len();
    for (i, x) in c.iter().enumerate() {
        acc += x.p;
        if acc >= top_p as f64 {
            keep = i + 1;
            break;
        }
    }
    c.truncate(keep.max(1));
    normalise(c);
}

/// Drop candidates with probability < `min_p` × the top probability; always keeps one.
pub fn min_p_filter(c: &mut Vec<Candidate>, min_p: f32) {
    if min_p <= 0.0 || c.is_empty() {
        return;
    }
    let threshold = c[0].p * min_p as f64;
    let keep = c.iter().take_while(|x| x.p >= threshold).count().max(1);
    c.truncate(keep);
    normalise(c);
}

/// One inverse-CDF draw from normalised candidates.
pub fn draw(c: &[Candidate], rng: &mut Rng) -> u32 {
    let u = rng.next_f64();
    let mut acc = 0.0;
    for x in c {
        acc += x.p;
        if u < acc {
            return x.id;
        }
    }
    c.last().map(|x| x.id).unwrap_or(0)
}

/// A request's sampler: the settings and its RNG.
#[derive(Debug, Clone)]
pub struct Sampler {
    pub params: SamplingParams,
    rng: Rng,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = params.seed.map(Rng::new).unwrap_or_else(Rng::from_entropy);
        Sampler { params, rng }
    }

    /// Choose the next token. `logits` is modified (penalty); `history` is every token so
    /// far (prompt and generated).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let p = &self.params;
        let recent = &history[history.len().saturating_sub(p.repetition_context)..];
        apply_repetition_penalty(logits, recent, p.repetition_penalty);
        if p.temperature <= 0.0 {
            return argmax(logits);
        }
        let mut c = candidates(logits, p.temperature, p.top_k);
        top_p_filter(&mut c, p.top_p);
        min_p_filter(&mut c, p.min_p);
        draw(&c, &mut self.rng)
    }
}

/// Log-softmax of the raw logits at `ids`, plus the `top_n` most likely tokens (id,
/// logprob), best first. Logprobs describe the model's own distribution (temperature 1,
/// no penalty), which is what OpenAI-style `logprobs` report.
pub fn logprobs(logits: &[f32], id: u32, top_n: usize) -> (f32, Vec<(u32, f32)>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = max
        + logits
            .iter()
            .map(|&v| (v as f64 - max).exp())
            .sum::<f64>()
            .ln();
    let lp = |v: f32| (v as f64 - lse) as f32;
    let chosen = logits
        .get(id as usize)
        .map(|&v| lp(v))
        .unwrap_or(f32::NEG_INFINITY);
    let top = if top_n == 0 {
        Vec::new()
    } else {
        let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
        let order = |a: &u32, b: &u32| {
            logits[*b as usize]
                .total_cmp(&logits[*a as usize])
                .then(a.cmp(b))
        };
        let n = top_n.min(idx.len());
        if n < idx.len() {
            idx.select_nth_unstable_by(n - 1, order);
            idx.truncate(n);
        }
        idx.sort_unstable_by(order);
        idx.into_iter()
            .map(|i| (i, lp(logits[i as usize])))
            .collect()
    };
    (chosen, top)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(c: &[Candidate]) -> Vec<u32> {
        c.iter().map(|x| x.id).collect()
    }

    #[test]
    fn argmax_breaks_ties_toward_the_lowest_id_and_ignores_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5, 0.7]), 2);
        assert_eq!(argmax(&[-5.0]), 0);
    }

    #[test]
    fn temperature_zero_is_argmax_regardless_of_seed() {
        for seed in 0..20 {
            let mut s = Sampler::new(SamplingParams {
                seed: Some(seed),
                top_k: 2,
                top_p: 0.5,
                ..Default::default()
            });
            assert_eq!(s.sample(&mut [0.1, 2.0, 1.9, -1.0], &[]), 1);
        }
    }

    #[test]
    fn candidates_are_a_sorted_softmax() {
        let c = candidates(
            &[0.0, (2.0f32).ln(), (4.0f32).ln(), f32::NEG_INFINITY],
            1.0,
            0,
        );
        assert_eq!(ids(&c), vec![2, 1, 0, 3]);
        let p: Vec<f64> = c.iter().map(|x| x.p).collect();
        for (got, want) in p.iter().zip([4.0 / 7.0, 2.0 / 7.0, 1.0 / 7.0, 0.0]) {
            assert!((got - want).abs() < 1e-9, "{p:?}");
        }
        // Temperature 2 flattens: probabilities ∝ sqrt of the above.
        let c = candidates(&[0.0, (4.0f32).ln()], 2.0, 0);
        assert!((c[0].p - 2.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn top_k_keeps_exactly_the_k_best() {
        let logits = [0.5, 3.0, -1.0, 2.0, 2.5, 0.0];
        assert_eq!(ids(&candidates(&logits, 1.0, 3)), vec![1, 4, 3]);
        assert_eq!(ids(&candidates(&logits, 1.0, 1)), vec![1]);
        assert_eq!(candidates(&logits, 1.0, 100).len(), 6);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_the_mass() {
        // probabilities 0.5, 0.25, 0.125, 0.125
        let table: [(f32, Vec<u32>); 5] = [
            (0.4, vec![0]),
            (0.5, vec![0]),
            (0.6, vec![0, 1]),
            (0.8, vec![0, 1, 2]),
            (1.0, vec![0, 1, 2, 3]),
        ];
        for (p, want) in table {
            let mut c = vec![
                Candidate { id: 0, p: 0.5 },
                Candidate { id: 1, p: 0.25 },
                Candidate { id: 2, p: 0.125 },
                Candidate { id: 3, p: 0.125 },
            ];
            top_p_filter(&mut c, p);
            assert_eq!(ids(&c), want, "top_p {p}");
            assert!((c.iter().map(|x| x.p).sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn min_p_drops_tokens_below_the_scaled_maximum() {
        for (min_p, want) in [(0.0, 4), (0.2, 4), (0.25, 4), (0.26, 2), (0.6, 1), (1.0, 1)] {
            let mut c = vec![
                Candidate { id: 7, p: 0.5 },
                Candidate { id: 1, p: 0.25 },
                Candidate { id: 2, p: 0.125 },
                Candidate { id: 3, p: 0.125 },
            ];
            min_p_filter(&mut c, min_p);
            assert_eq!(c.len(), want, "min_p {min_p}");
            assert_eq!(c[0].id, 7);
        }
    }

    #[test]
    fn repetition_penalty_pushes_seen_tokens_down_once_each() {
        let mut l = [2.0, -2.0, 1.0];
        apply_repetition_penalty(&mut l, &[0, 1, 0, 0], 2.0);
        assert_eq!(l, [1.0, -4.0, 1.0]);
        // A penalty that makes greedy pick another token.
        let mut s = Sampler::new(SamplingParams {
            repetition_penalty: 1.5,
            ..Default::default()
        });
        assert_eq!(s.sample(&mut [3.0, 2.5], &[0]), 1);
        // Only the recent window counts.
        let mut s = Sampler::new(SamplingParams {
            repetition_penalty: 1.5,
            repetition_context: 1,
            ..Default::default()
        });
        assert_eq!(s.sample(&mut [3.0, 2.5], &[0, 1]), 0);
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_follows_the_distribution() {
        let logits = [0.0, (2.0f32).ln(), (4.0f32).ln(), (1.0f32).ln()];
        let params = SamplingParams {
            temperature: 1.0,
            seed: Some(42),
            ..Default::default()
        };
        let run = |params: &SamplingParams| {
            let mut s = Sampler::new(params.clone());
            (0..8000)
                .map(|_| s.sample(&mut logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        let a = run(&params);
        assert_eq!(a, run(&params), "same seed, same draws");
        let b = run(&SamplingParams {
            seed: Some(43),
            ..params.clone()
        });
        assert_ne!(a, b, "another seed, other draws");
        // Expected probabilities 1/8, 2/8, 4/8, 1/8; allow 4 standard deviations.
        let n = a.len() as f64;
        for (id, p) in [(0u32, 0.125), (1, 0.25), (2, 0.5), (3, 0.125)] {
            let k = a.iter().filter(|&&t| t == id).count() as f64;
            let sd = (n * p * (1.0 - p)).sqrt();
            assert!((k - n * p).abs() < 4.0 * sd, "token {id}: {k} of {n}");
        }
        // With top_k = 2 only the two best can come out, in ratio 2:1.
        let mut s = Sampler::new(SamplingParams {
            top_k: 2,
            ..params.clone()
        });
        let draws: Vec<u32> = (0..3000)
            .map(|_| s.sample(&mut logits.clone(), &[]))
            .collect();
        assert!(draws.iter().all(|&t| t == 1 || t == 2));
        let twos = draws.iter().filter(|&&t| t == 2).count() as f64 / 3000.0;
        assert!((twos - 2.0 / 3.0).abs() < 0.04, "{twos}");
        // min_p = 0.6 leaves only the best token.
        let mut s = Sampler::new(SamplingParams {
            min_p: 0.6,
            ..params
        });
        assert!((0..200).all(|_| s.sample(&mut logits.clone(), &[]) == 2));
    }

    #[test]
    fn logprobs_are_log_softmax_with_sorted_alternatives() {
        let logits = [0.0, (3.0f32).ln(), 0.0];
        let (lp, top) = logprobs(&logits, 1, 2);
        assert!((lp - (0.6f32).ln()).abs() < 1e-6);
        assert_eq!(top[0].0, 1);
        assert_eq!(top[1].0, 0, "ties go to the lower id");
        assert!((top[1].1 - (0.2f32).ln()).abs() < 1e-6);
        assert!(logprobs(&logits, 0, 0).1.is_empty());
    }

    #[test]
    fn invalid_settings_are_refused_by_name() {
        for (p, field) in [
            (
                SamplingParams {
                    temperature: -1.0,
                    ..Default::default()
                },
                "temperature",
            ),
            (
                SamplingParams {
                    top_p: 0.0,
                    ..Default::default()
                },
                "top_p",
            ),
            (
                SamplingParams {
                    min_p: 2.0,
                    ..Default::default()
                },
                "min_p",
            ),
            (
                SamplingParams {
                    repetition_penalty: 0.0,
                    ..Default::default()
                },
                "repetition_penalty",
            ),
        ] {
            let e = p.validate().unwrap_err();
            assert_eq!(e.code, crate::Code::InvalidArgument);
            assert!(e.message.contains(field));
        }
        SamplingParams::default().validate().unwrap();
    }
}
