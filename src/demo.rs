//! The workload `perfunc demo` records: a few functions compiled into
//! perfunc itself, run in a child process (`perfunc __workload`), so the
//! demo needs nothing but perfunc.
//!
//! `handle_request` parses a request, builds a table from it (fresh memory,
//! so page faults) and checksums a buffer larger than most last-level
//! caches; the three are its probed children.

use std::hint::black_box;

/// Bytes walked by [`checksum`]: larger than most last-level caches.
const BIG: usize = 64 << 20;

/// Parses comma-separated numbers.
#[inline(never)]
pub fn parse_request(text: &str) -> Vec<u64> {
    text.split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// Builds a table of `n` entries in freshly allocated memory.
#[inline(never)]
pub fn build_table(n: usize) -> Vec<u64> {
    let mut table = vec![0u64; n];
    for (i, slot) in table.iter_mut().enumerate() {
        *slot = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    table
}

/// Sums every 64th byte of `buf`: one load per cache line.
#[inline(never)]
pub fn checksum(buf: &[u8], seed: u64) -> u64 {
    buf.iter()
        .step_by(64)
        .fold(seed, |acc, &b| acc.rotate_left(5) ^ u64::from(b))
}

/// One request: parse, build, checksum.
#[inline(never)]
pub fn handle_request(text: &str, buf: &[u8]) -> u64 {
    let numbers = parse_request(text);
    let table = build_table(numbers.iter().sum::<u64>() as usize);
    let sum = checksum(buf, table.iter().fold(0, |a, &b| a ^ b));
    black_box(sum)
}

/// Runs the demo workload: `iterations` requests.
pub fn workload(iterations: u32) {
    let buf: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    let mut total = 0u64;
    for i in 0..iterations {
        let text = format!("{}, 4096, {}", i % 7, 8192 + (i % 3) * 4096);
        total ^= handle_request(black_box(&text), &buf);
    }
    black_box(total);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers() {
        assert_eq!(parse_request("1, 2,x,3"), vec![1, 2, 3]);
    }

    #[test]
    fn table_has_n_entries() {
        assert_eq!(build_table(5).len(), 5);
        assert_eq!(build_table(2)[1], 0x9e37_79b9_7f4a_7c15);
    }

    #[test]
    fn checksum_reads_one_byte_per_line() {
        let mut buf = vec![0u8; 128];
        buf[64] = 1;
        assert_eq!(checksum(&buf, 0), 1);
        buf[65] = 1;
        assert_eq!(checksum(&buf, 0), 1);
    }
}
