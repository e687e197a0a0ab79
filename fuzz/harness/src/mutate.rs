//! Deterministic random and mutated inputs for the stable smoke test: a fixed
//! seed gives the same inputs on every run and machine, so a failure reproduces.

/// xorshift64* (Vigna): small, fast and good enough to pick mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced: xorshift never leaves 0).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..bound` (0 if `bound` is 0).
    pub fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            return 0;
        }
        (self.next_u64() % bound as u64) as usize
    }

    /// `count` random bytes.
    pub fn bytes(&mut self, count: usize) -> Vec<u8> {
        (0..count).map(|_| self.next_u64() as u8).collect()
    }
}

/// Values that decoders treat specially, written over length fields and counts.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    i64::MAX as u64,
    u64::MAX,
];

/// Most mutations stacked on one input.
const MUTATIONS_PER_INPUT_MAX: usize = 4;

/// Longest run of bytes one insertion adds.
const INSERTED_BYTES_MAX: usize = 32;

/// `seed` changed by one to [`MUTATIONS_PER_INPUT_MAX`] random mutations.
pub fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut input = seed.to_vec();
    for _ in 0..=rng.below(MUTATIONS_PER_INPUT_MAX) {
        mutate_once(rng, &mut input);
    }
    input
}

fn mutate_once(rng: &mut Rng, input: &mut Vec<u8>) {
    let len = input.len();
    match rng.below(7) {
        // Flip one bit.
        0 if len > 0 => {
            let at = rng.below(len);
            input[at] ^= 1 << rng.below(8);
        }
        // Truncate.
        1 => input.truncate(rng.below(len + 1)),
        // Insert random bytes.
        2 => {
            let at = rng.below(len + 1);
            let count = 1 + rng.below(INSERTED_BYTES_MAX);
            let bytes = rng.bytes(count);
            input.splice(at..at, bytes);
        }
        // Delete a range.
        3 if len > 0 => {
            let start = rng.below(len);
            let end = start + 1 + rng.below(len - start);
            input.drain(start..end);
        }
        // Overwrite a 1, 2, 4 or 8-byte big-endian field with an interesting
        // value: lengths, counts and CBOR headers all live in such fields.
        4 if len > 0 => {
            let width = 1 << rng.below(4);
            let value = INTERESTING[rng.below(INTERESTING.len())].to_be_bytes();
            let at = rng.below(len);
            let end = (at + width).min(len);
            input[at..end].copy_from_slice(&value[8 - width..][..end - at]);
        }
        // Set one byte to anything.
        5 if len > 0 => {
            let at = rng.below(len);
            input[at] = rng.next_u64() as u8;
        }
        // Repeat a range elsewhere (splice the input into itself).
        6 if len > 0 => {
            let start = rng.below(len);
            let end = start + 1 + rng.below((len - start).min(256));
            let copied = input[start..end].to_vec();
            let at = rng.below(len + 1);
            input.splice(at..at, copied);
        }
        _ => input.push(rng.next_u64() as u8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_inputs() {
        let seed = b"some valid encoding".to_vec();
        let run = |rng_seed| {
            let mut rng = Rng::new(rng_seed);
            (0..50).map(|_| mutate(&mut rng, &seed)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        assert!(run(7).iter().any(|input| *input != seed));
    }
}
