//! The mutation engine both fuzzers share: a seedable generator and byte-level mutations.

/// JSON's structural tokens, spliced into inputs by both fuzzers (each adds its own).
pub const JSON_TOKENS: &[&[u8]] = &[b"{", b"}", b"[", b"]", b"\"", b":", b",", b"null"];

/// xorshift64*: a small, seedable generator, so a failing run can be replayed.
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number below `n` (0 for `n` = 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Mutates `input` one to five times: bit flips, byte insertions and deletions, truncation,
/// a token of `tokens`, a slice of another seed, deep nesting, an extra member; at most 300 KB.
/// (`tokens` and [`JSON_TOKENS`] are both spliced in.)
pub fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], tokens: &[&[u8]], input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        match rng.below(8) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(input.len() + 1);
                input.insert(i, rng.next_u64() as u8);
            }
            2 if !input.is_empty() => {
                let i = rng.below(input.len());
                input.remove(i);
            }
            3 => input.truncate(rng.below(input.len() + 1)),
            4 => {
                let i = rng.below(input.len() + 1);
                let pick = rng.below(tokens.len() + JSON_TOKENS.len());
                let token = tokens.get(pick).copied().unwrap_or_else(|| {
                    JSON_TOKENS[(pick - tokens.len()).min(JSON_TOKENS.len() - 1)]
                });
                input.splice(i..i, token.iter().copied());
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let to = from + rng.below(other.len() - from + 1);
                let at = rng.below(input.len() + 1);
                input.splice(at..at, other[from..to].iter().copied());
            }
            6 => {
                let depth = rng.below(2000);
                let at = rng.below(input.len() + 1);
                input.splice(at..at, std::iter::repeat_n(b'[', depth));
            }
            _ => {
                let i = rng.below(input.len() + 1);
                input.splice(i..i, b"\"x\":1,".iter().copied());
            }
        }
    }
    input.truncate(300_000);
}
