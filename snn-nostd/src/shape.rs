//! The network's shape ([`Shape`]) and how it is fed ([`InputKind`]), defined once for the host
//! and the device; the map sizes of each stage follow the rules of [`crate::skeleton`].

use serde::{Deserialize, Serialize};

/// How the network is fed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum InputKind {
    /// A static image, repeated every timestep (the stem runs once per sample).
    Static,
    /// One event frame per timestep.
    Events,
}

/// The network's shape: input, timesteps, cell widths, the classifier's pool, hidden units,
/// classes and votes. The host's configuration (`lightsnn::config::NetConfig`), its float
/// network, its random test networks and the model blob ([`crate::model::ModelParts`]) all hold
/// this one type.
///
/// In the blob (postcard) the fields are written in declaration order, `pool` as one byte and
/// every other count as a varint, exactly as format version 2 defines them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Shape {
    /// Static image or event frames.
    pub input: InputKind,
    /// Input channels (3 for CIFAR, 2 polarities for events).
    pub in_c: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// MaxPool2 after the stem (DVS128 Gesture).
    pub stem_pool: bool,
    /// Timesteps `T`.
    pub timesteps: usize,
    /// Channels of cell 1.
    pub c1: usize,
    /// Channels of cell 2.
    pub c2: usize,
    /// MaxPool size after cell 2.
    #[serde(with = "pool_byte")]
    pub pool: usize,
    /// Hidden units `H`.
    pub hidden: usize,
    /// Classes.
    pub classes: usize,
    /// Voting group size `V` (outputs per class).
    pub votes: usize,
}

impl Shape {
    /// Input channels, height and width, as one array (CHW).
    pub const fn in_chw(&self) -> [usize; 3] {
        [self.in_c, self.in_h, self.in_w]
    }

    /// Elements of one input frame (`in_c * in_h * in_w`, CHW).
    pub const fn frame_len(&self) -> usize {
        self.in_c
            .saturating_mul(self.in_h)
            .saturating_mul(self.in_w)
    }

    /// Elements of a whole input sample: one frame (static) or `T` frames (events).
    pub const fn input_len(&self) -> usize {
        match self.input {
            InputKind::Static => self.frame_len(),
            InputKind::Events => self.frame_len().saturating_mul(self.timesteps),
        }
    }

    /// Bytes of one test-input record of this network: a label byte, then the whole sample as
    /// raw `u8` input in the layout [`crate::engine::quantize_input_u8`] takes
    /// ([`Shape::input_len`] bytes: a CIFAR image's R, G, B planes, or `T` frames of
    /// `C x H x W` event counts). The firmware's embedded images and the host reference of
    /// `lightsnn-tools` are concatenations of such records; for a 3x32x32 static network a
    /// record is exactly a CIFAR-10 binary record.
    ///
    /// ```
    /// use snn_nostd::shape::{InputKind, Shape};
    ///
    /// let cifar = Shape {
    ///     input: InputKind::Static,
    ///     in_c: 3,
    ///     in_h: 32,
    ///     in_w: 32,
    ///     stem_pool: false,
    ///     timesteps: 5,
    ///     c1: 8,
    ///     c2: 16,
    ///     pool: 2,
    ///     hidden: 64,
    ///     classes: 10,
    ///     votes: 10,
    /// };
    /// assert_eq!(cifar.record_len(), 1 + 3072);
    /// // N-MNIST: T frames of 2 polarities x 34 x 34 counts.
    /// let nmnist = Shape { input: InputKind::Events, in_c: 2, in_h: 34, in_w: 34, timesteps: 4, ..cifar };
    /// assert_eq!(nmnist.record_len(), 1 + 4 * 2 * 34 * 34);
    /// assert_eq!(nmnist.record_count(3 * nmnist.record_len()), Some(3));
    /// assert_eq!(nmnist.record_count(3 * cifar.record_len()), None);
    /// assert_eq!(nmnist.record_count(0), None);
    /// ```
    pub const fn record_len(&self) -> usize {
        self.input_len().saturating_add(1)
    }

    /// Number of records ([`Shape::record_len`]) in `bytes` bytes of concatenated records;
    /// `None` unless it is a whole number of at least one.
    pub const fn record_count(&self, bytes: usize) -> Option<usize> {
        let r = self.record_len();
        if bytes == 0 || !bytes.is_multiple_of(r) {
            return None;
        }
        Some(bytes / r)
    }

    /// Height and width of cell 1 (after the optional stem pool).
    pub const fn cell1_hw(&self) -> (usize, usize) {
        crate::skeleton::cell1_hw(self.in_h, self.in_w, self.stem_pool)
    }

    /// Height and width of cell 2 (after the MaxPool2 following the down conv).
    pub const fn cell2_hw(&self) -> (usize, usize) {
        crate::skeleton::cell2_hw(self.cell1_hw())
    }

    /// Height and width of the pooled map feeding fc1 (`floor(cell2 / pool)`).
    pub const fn pooled_hw(&self) -> (usize, usize) {
        crate::skeleton::pooled_hw(self.cell2_hw(), self.pool)
    }

    /// Neurons of a cell-1 tensor (`c1 * h1 * w1`).
    pub const fn n1(&self) -> usize {
        let (h, w) = self.cell1_hw();
        self.c1.saturating_mul(h).saturating_mul(w)
    }

    /// Neurons of a cell-2 tensor (`c2 * h2 * w2`).
    pub const fn n2(&self) -> usize {
        let (h, w) = self.cell2_hw();
        self.c2.saturating_mul(h).saturating_mul(w)
    }

    /// Inputs of fc1 (`c2 * ph * pw`).
    pub const fn fc1_in(&self) -> usize {
        let (h, w) = self.pooled_hw();
        self.c2.saturating_mul(h).saturating_mul(w)
    }

    /// Outputs of fc2 (`classes * votes`).
    pub const fn outputs(&self) -> usize {
        self.classes.saturating_mul(self.votes)
    }
}

/// `Shape::pool` in the blob: one byte, as format version 2 has it (a pool of 256 or more is
/// refused when encoding).
mod pool_byte {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(pool: &usize, s: S) -> Result<S::Ok, S::Error> {
        match u8::try_from(*pool) {
            Ok(b) => b.serialize(s),
            Err(_) => Err(serde::ser::Error::custom("pool must be below 256")),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        u8::deserialize(d).map(usize::from)
    }
}
