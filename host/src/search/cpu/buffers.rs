//! Recycled f32 buffers, per thread.
//!
//! A forward pass allocates and drops many maps of a few megabytes per layer and timestep.
//! Fresh allocations of that size come from `mmap`, costing page faults and zeroing each time;
//! recycling them keeps the memory mapped and warm. A buffer from [`take`] has unspecified
//! contents: every user overwrites it completely before reading it.

use std::cell::RefCell;

/// Most bytes kept per thread.
const MAX_BYTES: usize = 512 << 20;

thread_local! {
    static FREE: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` values whose contents are unspecified (the caller overwrites all of
/// them): a recycled one when this thread has one large enough, else a new one.
pub fn take(len: usize) -> Vec<f32> {
    let found = FREE.with(|f| {
        let mut f = f.borrow_mut();
        // Prefer a buffer that needs no zero-filling (length already >= len), the smallest.
        let fits = |v: &Vec<f32>| v.len() >= len;
        let best = f
            .iter()
            .enumerate()
            .filter(|(_, v)| fits(v))
            .min_by_key(|(_, v)| v.len())
            .or_else(|| {
                f.iter()
                    .enumerate()
                    .filter(|(_, v)| v.capacity() >= len)
                    .min_by_key(|(_, v)| v.capacity())
            })
            .map(|(i, _)| i);
        best.map(|i| f.swap_remove(i))
    });
    match found {
        Some(mut v) => {
            if v.len() >= len {
                v.truncate(len);
            } else {
                v.resize(len, 0.0);
            }
            v
        }
        None => vec![0.0; len],
    }
}

/// A copy of `src` in a recycled buffer.
pub fn take_copy(src: &[f32]) -> Vec<f32> {
    let mut v = take(src.len());
    v.copy_from_slice(src);
    v
}

/// Returns a buffer for reuse by this thread (its contents are kept, as garbage).
pub fn give(v: Vec<f32>) {
    if v.capacity() == 0 {
        return;
    }
    FREE.with(|f| {
        let mut f = f.borrow_mut();
        let held: usize = f.iter().map(|b| b.capacity() * 4).sum();
        if held + v.capacity() * 4 <= MAX_BYTES {
            f.push(v);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycles_by_capacity() {
        let a = take(1000);
        let p = a.as_ptr();
        give(a);
        let b = take(500);
        assert_eq!(b.len(), 500);
        assert_eq!(b.as_ptr(), p, "the recycled buffer is reused");
        let c = take(2000);
        assert_eq!(c.len(), 2000);
        give(b);
        give(c);
    }
}
