//! Reused buffers for the CPU training path.
//!
//! A training step allocates the same large maps at every step (node values, membranes, conv
//! outputs and their gradients, for T timesteps). Allocated fresh, each one comes from the
//! kernel as new pages (a page fault and a zeroed page per 4 KiB), which showed up as a tenth of
//! the step's time. A [`Buf`] instead returns its memory to a free list when dropped, and the
//! next request of at most its size takes it back (the smallest that fits).

use rayon::prelude::*;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Buffers shorter than this go back to the allocator (small ones are cheap there).
const MIN_KEPT: usize = 1 << 12;
/// At most this many values are kept on the free list (1 GiB).
const MAX_KEPT: usize = 1 << 28;

/// The free list and the number of values it holds.
static FREE: Mutex<(Vec<Vec<f32>>, usize)> = Mutex::new((Vec::new(), 0));

/// Takes the smallest free buffer with room for `len` values.
fn take(len: usize) -> Option<Vec<f32>> {
    if len < MIN_KEPT {
        return None;
    }
    let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
    let best = free
        .0
        .iter()
        .enumerate()
        .filter(|(_, v)| v.capacity() >= len)
        .min_by_key(|(_, v)| v.capacity())
        .map(|(i, _)| i)?;
    let v = free.0.swap_remove(best);
    free.1 -= v.capacity();
    Some(v)
}

/// Empties the free list (its memory goes back to the allocator).
pub fn release() {
    let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
    *free = (Vec::new(), 0);
}

/// A vector of f32 whose memory is reused after it is dropped.
#[derive(Debug, Default)]
pub struct Buf(Vec<f32>);

impl Buf {
    /// `len` zeros.
    pub fn zeros(len: usize) -> Buf {
        match take(len) {
            Some(mut v) => {
                v.truncate(len);
                v.par_chunks_mut(1 << 14).for_each(|c| c.fill(0.0));
                v.resize(len, 0.0);
                Buf(v)
            }
            None => Buf(vec![0.0; len]),
        }
    }

    /// `len` values left from an earlier use: for an output the caller writes in full.
    pub fn scratch(len: usize) -> Buf {
        match take(len) {
            Some(mut v) => {
                v.truncate(len);
                v.resize(len, 0.0);
                Buf(v)
            }
            None => Buf(vec![0.0; len]),
        }
    }

    /// A copy of `src`.
    pub fn copy_of(src: &[f32]) -> Buf {
        let mut b = Buf::scratch(src.len());
        b.par_chunks_mut(1 << 14)
            .zip(src.par_chunks(1 << 14))
            .for_each(|(d, s)| d.copy_from_slice(s));
        b
    }
}

impl Clone for Buf {
    fn clone(&self) -> Buf {
        Buf::copy_of(self)
    }
}

impl Deref for Buf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        let cap = v.capacity();
        if cap < MIN_KEPT {
            return;
        }
        let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
        if free.1 + cap <= MAX_KEPT {
            free.1 += cap;
            free.0.push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reused buffer comes back zeroed from `zeros` and with the requested length.
    #[test]
    fn reused_buffers_are_zeroed_and_sized() {
        let mut a = Buf::zeros(MIN_KEPT * 3);
        a.fill(7.0);
        drop(a);
        let b = Buf::zeros(MIN_KEPT * 2);
        assert_eq!(b.len(), MIN_KEPT * 2);
        assert!(b.iter().all(|&v| v == 0.0));
        let c = Buf::scratch(MIN_KEPT * 4);
        assert_eq!(c.len(), MIN_KEPT * 4);
    }
}
