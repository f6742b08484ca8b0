//! The shape of a feature map ([`Geom`]).

/// A `c x h x w` map (stored HWC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Geom {
    pub(super) c: usize,
    pub(super) h: usize,
    pub(super) w: usize,
}

impl Geom {
    pub(super) fn len(&self) -> usize {
        self.c * self.h * self.w
    }
}
