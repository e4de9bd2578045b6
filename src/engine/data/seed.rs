//! Random streams derived from the run seed, so every random choice can be replayed.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Which random choice a stream serves; keeps streams for different purposes apart.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stream {
    /// The per-class train/val split of a folder.
    Split = 1,
    /// The order of training samples in an epoch.
    Shuffle = 2,
    /// The crop and flip of one training sample.
    Augment = 3,
    /// The drawing of one demo image.
    Demo = 4,
}

/// A generator determined by the seed, the purpose and two more coordinates only.
///
/// The parts are laid out as the ChaCha key directly: distinct inputs give distinct keys, so no
/// two (seed, purpose, a, b) share a stream.
pub(super) fn rng_for(seed: u64, stream: Stream, a: u64, b: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (chunk, part) in key.chunks_exact_mut(8).zip([seed, stream as u64, a, b]) {
        chunk.copy_from_slice(&part.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}
