//! Batch containers of the CPU engine: real-valued feature maps and bit-packed spike codes, both
//! channels-last (`[N][H][W][C]`).

use snn_nostd::bits::words_for;

/// Feature maps of a whole batch, channels-last: element `(n, y, x, ch)` is at
/// `((n * h + y) * w + x) * c + ch`.
#[derive(Clone, Debug, PartialEq)]
pub struct Maps {
    /// Samples.
    pub n: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Channels.
    pub c: usize,
    /// The values.
    pub data: Vec<f32>,
}

impl Maps {
    /// All zeros.
    pub fn zeros(n: usize, h: usize, w: usize, c: usize) -> Maps {
        Maps {
            n,
            h,
            w,
            c,
            data: vec![0.0; n * h * w * c],
        }
    }

    /// Elements per sample (`h * w * c`).
    pub fn per_sample(&self) -> usize {
        self.h * self.w * self.c
    }

    /// Maps of the same shape holding `data`.
    pub fn like(&self, data: Vec<f32>) -> Maps {
        debug_assert_eq!(data.len(), self.data.len());
        Maps {
            n: self.n,
            h: self.h,
            w: self.w,
            c: self.c,
            data,
        }
    }

    /// Converts an NCHW buffer (Candle's layout) to channels-last.
    pub fn from_nchw(src: &[f32], n: usize, c: usize, h: usize, w: usize) -> Maps {
        let mut data = vec![0.0; src.len()];
        let hw = h * w;
        for i in 0..n {
            let s = &src[i * c * hw..(i + 1) * c * hw];
            let d = &mut data[i * c * hw..(i + 1) * c * hw];
            for ch in 0..c {
                for p in 0..hw {
                    d[p * c + ch] = s[ch * hw + p];
                }
            }
        }
        Maps { n, h, w, c, data }
    }
}

/// Spike codes of a whole batch in the `snn_nostd::bits` layout: row `i` (sample `i`) takes
/// `wpc` words, LSB first, and holds `h * w * c` bits; bit `(y * w + x) * c + ch` is the spike
/// of channel `ch` at pixel `(y, x)`.
///
/// This is the channels-last order, not Candle's `[C, H, W]` flattening. Popcounts and Hamming
/// distances (all the SAHD kernel reads) do not depend on the order of bit positions as long as
/// every sample uses the same one, so the kernel sees the same numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Codes {
    /// Samples.
    pub n: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Channels.
    pub c: usize,
    /// Words per sample row.
    pub wpc: usize,
    /// The rows, one after the other.
    pub words: Vec<u64>,
}

impl Codes {
    /// Empty codes (no spike).
    pub fn zeros(n: usize, h: usize, w: usize, c: usize) -> Codes {
        let wpc = words_for(h * w * c);
        Codes {
            n,
            h,
            w,
            c,
            wpc,
            words: vec![0; n * wpc],
        }
    }

    /// Bits per code.
    pub fn n_bits(&self) -> usize {
        self.h * self.w * self.c
    }

    /// Sample `i`'s code.
    pub fn row(&self, i: usize) -> &[u64] {
        &self.words[i * self.wpc..(i + 1) * self.wpc]
    }
}

/// Calls `f(k)` for every set bit `start + k` of `row` with `k < len`, in increasing order.
#[inline]
pub fn for_each_set_bit(row: &[u64], start: usize, len: usize, mut f: impl FnMut(usize)) {
    let end = start + len;
    let mut wi = start / 64;
    while wi * 64 < end {
        let lo = wi * 64;
        let mut word = row[wi];
        if lo < start {
            word &= !0u64 << (start - lo);
        }
        if end - lo < 64 {
            word &= (1u64 << (end - lo)) - 1;
        }
        while word != 0 {
            let t = word.trailing_zeros() as usize;
            f(lo + t - start);
            word &= word - 1;
        }
        wi += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_bits_in_ranges() {
        let row = [0b1011u64 | (1 << 63), 0b101];
        let mut got = Vec::new();
        for_each_set_bit(&row, 1, 66, |k| got.push(k));
        // set bits 0, 1, 3, 63, 64, 66; the range [1, 67) holds 1, 3, 63, 64, 66
        assert_eq!(got, vec![0, 2, 62, 63, 65]);
        got.clear();
        for_each_set_bit(&row, 3, 1, |k| got.push(k));
        assert_eq!(got, vec![0]);
        got.clear();
        for_each_set_bit(&row, 64, 64, |k| got.push(k));
        assert_eq!(got, vec![0, 2]);
    }

    #[test]
    fn nchw_round_trip() {
        let src: Vec<f32> = (0..2 * 3 * 2 * 2).map(|v| v as f32).collect();
        let m = Maps::from_nchw(&src, 2, 3, 2, 2);
        // sample 1, pixel (1, 0), channel 2: NCHW index 1*12 + 2*4 + 2 = 22
        assert_eq!(m.data[12 + 2 * 3 + 2], 22.0);
    }
}
