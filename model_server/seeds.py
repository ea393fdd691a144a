"""Noise seeds of partner queries, torch-free so the site and workers can compute them too."""

from __future__ import annotations

_MASK64 = (1 << 64) - 1


def splitmix64(value: int) -> int:
    """Mix a 64-bit integer into a well-spread 64-bit integer (Steele et al.'s SplitMix64)."""
    z = (value + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def noise_seed(round_id: int, query_index: int) -> int:
    """Return the noise seed of one partner query, the same on every process and machine."""
    # Pure integer arithmetic, not hash(): Python salts str hashes per process, and the live
    # query (web) and the authoritative replay (worker) must draw the same noise.
    mixed = splitmix64(splitmix64(round_id & _MASK64) ^ (query_index & _MASK64))
    return mixed >> 1  # 63 bits: fits torch's int64 tensors and Generator.manual_seed
