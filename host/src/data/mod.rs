//! Dataset readers: CIFAR-10/100 (binary version), N-MNIST and DVS128 Gesture (event data,
//! framed into `T` count frames, docs/design.md, "Event data"), the CIFAR training augmentation
//! (docs/design.md, "Training") and a seeded train/validation split.
//!
//! Samples are kept compact in memory (raw `u8` images; sparse `u16` event-count frames) and
//! turned into normalised `f32` batches by [`Dataset::fill_batch`].

mod augment;
mod cifar;
mod dvs;
mod error;
mod frames;
mod kind;
mod nmnist;
pub mod sample;
#[cfg(test)]
mod tests;

use std::path::Path;

use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};

pub use augment::{CIFAR100_MEAN, CIFAR100_STD, CIFAR10_MEAN, CIFAR10_STD, CROP_PADDING};
pub use dvs::parse_aedat;
pub use error::DataError;
pub use frames::Event;
pub use kind::{DatasetKind, Split};
pub use nmnist::parse_events as parse_nmnist_events;

use augment::{CropFlip, Normalizer};
use frames::EventFrames;

/// The samples themselves.
#[derive(Debug, Clone)]
enum Samples {
    /// Raw CIFAR images, `3*32*32` bytes each (channel planes, row-major).
    Images(Vec<u8>),
    /// Event-count frames.
    Events(EventFrames),
}

/// In-memory labelled samples of one dataset split.
#[derive(Debug, Clone)]
pub struct Dataset {
    kind: DatasetKind,
    labels: Vec<u16>,
    /// CIFAR-100 coarse labels; empty for the other datasets.
    coarse: Vec<u16>,
    samples: Samples,
}

impl Dataset {
    /// Loads a split from a folder in the official layout. `timesteps` = number of frames `T`
    /// for event data (must be at least 1; ignored for static data).
    ///
    /// Folders: CIFAR-10 `cifar-10-batches-bin` (or its parent), CIFAR-100 `cifar-100-binary`
    /// (or its parent), N-MNIST the folder with `train1K.txt`/`test100.txt` and `<id>.bs2`
    /// files or with the official `Train/`, `Test/` folders, DVS128 Gesture `DvsGesture` (or its
    /// parent).
    pub fn load(
        kind: DatasetKind,
        dir: &Path,
        split: Split,
        timesteps: usize,
    ) -> Result<Dataset, DataError> {
        match kind {
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => {
                Ok(Dataset::from_records(kind, cifar::load(kind, dir, split)?))
            }
            DatasetKind::Nmnist => {
                check_timesteps(timesteps)?;
                let files = nmnist::split_files(dir, split)?;
                let (frames, labels) = frame_files(kind, &files, timesteps, |(path, label)| {
                    Ok(vec![(nmnist::read_events(path)?, *label)])
                })?;
                Ok(Dataset::from_frames(kind, labels, frames))
            }
            DatasetKind::Dvs128 => {
                check_timesteps(timesteps)?;
                let files = dvs::split_files(dir, split)?;
                let (frames, labels) = frame_files(kind, &files, timesteps, |path| {
                    let (events, gestures) = dvs::read_recording(path)?;
                    Ok(gestures
                        .iter()
                        .map(|g| {
                            let window = events
                                .iter()
                                .filter(|e| g.start <= e.t && e.t < g.end)
                                .copied()
                                .collect();
                            (window, g.label)
                        })
                        .collect())
                })?;
                Ok(Dataset::from_frames(kind, labels, frames))
            }
        }
    }

    /// Same as [`Dataset::load`] for CIFAR, from the in-memory bytes of CIFAR binary files
    /// (`(name for errors, bytes)`, concatenated in order), e.g. a sample embedded with
    /// `include_bytes!`.
    pub fn from_cifar_bytes(
        kind: DatasetKind,
        files: &[(&str, &[u8])],
    ) -> Result<Dataset, DataError> {
        let mut records = cifar::Records::default();
        for (name, bytes) in files {
            cifar::parse_into(kind, Path::new(name), bytes, &mut records)?;
        }
        if files.is_empty() {
            // Still reject a non-CIFAR kind.
            cifar::parse_into(kind, Path::new(""), &[], &mut records)?;
        }
        Ok(Dataset::from_records(kind, records))
    }

    /// An event dataset from samples given as events (in time order) and labels, framed into
    /// `timesteps` frames. Errors on an event outside the sensor, a polarity above 1 or a label
    /// out of range.
    pub fn from_events(
        kind: DatasetKind,
        samples: &[(Vec<Event>, usize)],
        timesteps: usize,
    ) -> Result<Dataset, DataError> {
        if !kind.is_event() {
            return Err(DataError::InvalidArgument(format!(
                "{kind} is not an event dataset"
            )));
        }
        check_timesteps(timesteps)?;
        let (h, w) = (kind.height(), kind.width());
        for (i, (events, label)) in samples.iter().enumerate() {
            if *label >= kind.num_classes() {
                return Err(DataError::InvalidArgument(format!(
                    "sample {i}: label {label} is not below {}",
                    kind.num_classes()
                )));
            }
            if let Some(e) = events
                .iter()
                .find(|e| e.x as usize >= w || e.y as usize >= h || e.p > 1)
            {
                return Err(DataError::InvalidArgument(format!(
                    "sample {i}: event {e:?} outside the {w}x{h}x2 sensor"
                )));
            }
        }
        let mut frames = EventFrames::new(timesteps, kind.channels() * h * w);
        let mut labels = Vec::with_capacity(samples.len());
        let mut scratch = Vec::new();
        let mut cells = Vec::new();
        for (events, label) in samples {
            cells.clear();
            cells.extend(events.iter().map(|e| e.cell(h, w)));
            frames.push_sample(&cells, &mut scratch);
            labels.push(*label as u16);
        }
        Ok(Dataset::from_frames(kind, labels, frames))
    }

    fn from_records(kind: DatasetKind, r: cifar::Records) -> Dataset {
        Dataset {
            kind,
            labels: r.labels,
            coarse: r.coarse,
            samples: Samples::Images(r.pixels),
        }
    }

    fn from_frames(kind: DatasetKind, labels: Vec<u16>, frames: EventFrames) -> Dataset {
        Dataset {
            kind,
            labels,
            coarse: Vec::new(),
            samples: Samples::Events(frames),
        }
    }

    /// Which dataset this is.
    pub fn kind(&self) -> DatasetKind {
        self.kind
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Label of sample `i` (CIFAR-100: the fine label). Panics if `i >= len()`.
    pub fn label(&self, i: usize) -> usize {
        self.labels[i] as usize
    }

    /// All labels, in sample order (CIFAR-100: the fine labels).
    pub fn labels(&self) -> &[u16] {
        &self.labels
    }

    /// CIFAR-100 coarse labels (20 superclasses), in sample order; `None` for other datasets.
    pub fn coarse_labels(&self) -> Option<&[u16]> {
        (self.kind == DatasetKind::Cifar100).then_some(&self.coarse[..])
    }

    /// Number of samples of each class (index = label).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.kind.num_classes()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// Frames per sample: 1 for static images (direct encoding: the network repeats it over
    /// time), `T` for event data.
    pub fn frames(&self) -> usize {
        match &self.samples {
            Samples::Images(_) => 1,
            Samples::Events(f) => f.frames(),
        }
    }

    /// `[channels, height, width]` of one frame.
    pub fn frame_shape(&self) -> [usize; 3] {
        [self.kind.channels(), self.kind.height(), self.kind.width()]
    }

    /// Floats per sample in a batch: `frames * channels * height * width`.
    pub fn sample_len(&self) -> usize {
        self.frames() * self.frame_shape().iter().product::<usize>()
    }

    /// Total number of events of sample `i` (the sum of its frames); `None` for static data.
    /// Panics if `i >= len()`.
    pub fn event_count(&self, i: usize) -> Option<u64> {
        assert!(i < self.len(), "sample {i} out of range ({})", self.len());
        match &self.samples {
            Samples::Images(_) => None,
            Samples::Events(f) => Some(f.event_count(i)),
        }
    }

    /// Writes the samples `indices` into `out` (cleared first), layout `[N, frames, C, H, W]`
    /// `f32`.
    ///
    /// Static data is normalised with the per-dataset mean/std (docs/design.md, "Training"); with
    /// `augment = Some(rng)` each image first gets the training augmentation: random crop 32
    /// from the image zero-padded by 4, then a random horizontal flip. Event data: values are
    /// per-pixel, per-polarity event counts (channel = polarity), never augmented.
    ///
    /// Panics if an index is out of range.
    pub fn fill_batch(
        &self,
        indices: &[usize],
        mut augment: Option<&mut dyn RngCore>,
        out: &mut Vec<f32>,
    ) {
        let per = self.sample_len();
        out.clear();
        out.resize(indices.len() * per, 0.0);
        match &self.samples {
            Samples::Images(pixels) => {
                let (mean, std) = self.kind.mean_std();
                let norm = Normalizer::new(mean, std);
                for (&i, dst) in indices.iter().zip(out.chunks_exact_mut(per)) {
                    assert!(i < self.len(), "sample {i} out of range ({})", self.len());
                    let cf = match augment.as_deref_mut() {
                        Some(rng) => CropFlip::sample(rng),
                        None => CropFlip::IDENTITY,
                    };
                    let raw = &pixels[i * cifar::IMAGE_BYTES..(i + 1) * cifar::IMAGE_BYTES];
                    augment::write_image(raw, &norm, cf, dst);
                }
            }
            Samples::Events(frames) => {
                for (&i, dst) in indices.iter().zip(out.chunks_exact_mut(per)) {
                    assert!(i < self.len(), "sample {i} out of range ({})", self.len());
                    frames.write_sample(i, dst);
                }
            }
        }
    }

    /// A new dataset holding only the samples `indices`, in that order (used to carve a
    /// validation split). Panics if an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let samples = match &self.samples {
            Samples::Images(pixels) => Samples::Images(
                indices
                    .iter()
                    .flat_map(|&i| &pixels[i * cifar::IMAGE_BYTES..(i + 1) * cifar::IMAGE_BYTES])
                    .copied()
                    .collect(),
            ),
            Samples::Events(frames) => Samples::Events(frames.subset(indices)),
        };
        Dataset {
            kind: self.kind,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            coarse: if self.coarse.is_empty() {
                Vec::new()
            } else {
                indices.iter().map(|&i| self.coarse[i]).collect()
            },
            samples,
        }
    }
}

impl DatasetKind {
    /// Per-channel `(mean, std)` used to normalise static images (docs/design.md, "Training");
    /// event data is not normalised and gets `([0; 3], [1; 3])`.
    pub fn mean_std(self) -> ([f32; 3], [f32; 3]) {
        match self {
            DatasetKind::Cifar10 => (CIFAR10_MEAN, CIFAR10_STD),
            DatasetKind::Cifar100 => (CIFAR100_MEAN, CIFAR100_STD),
            DatasetKind::Dvs128 | DatasetKind::Nmnist => ([0.0; 3], [1.0; 3]),
        }
    }
}

fn check_timesteps(timesteps: usize) -> Result<(), DataError> {
    if timesteps == 0 {
        return Err(DataError::InvalidArgument(
            "event data needs at least 1 timestep (frame)".into(),
        ));
    }
    Ok(())
}

/// Reads and frames event files in parallel (order preserved). `read` turns one file into its
/// labelled samples (events in time order, label).
fn frame_files<T: Sync>(
    kind: DatasetKind,
    files: &[T],
    timesteps: usize,
    read: impl Fn(&T) -> Result<Vec<(Vec<Event>, u16)>, DataError> + Sync,
) -> Result<(EventFrames, Vec<u16>), DataError> {
    let (h, w) = (kind.height(), kind.width());
    let cells_per_frame = kind.channels() * h * w;
    let frame_chunk = |chunk: &[T]| -> Result<(EventFrames, Vec<u16>), DataError> {
        let mut frames = EventFrames::new(timesteps, cells_per_frame);
        let mut labels = Vec::new();
        let mut scratch = Vec::new();
        let mut cells = Vec::new();
        for file in chunk {
            for (events, label) in read(file)? {
                cells.clear();
                cells.extend(events.iter().map(|e| e.cell(h, w)));
                frames.push_sample(&cells, &mut scratch);
                labels.push(label);
            }
        }
        Ok((frames, labels))
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().div_ceil(16))
        .max(1);
    let chunk_len = files.len().div_ceil(threads).max(1);
    let parts: Vec<Result<(EventFrames, Vec<u16>), DataError>> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk_len)
            .map(|chunk| s.spawn(move || frame_chunk(chunk)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("event reader thread panicked"))
            .collect()
    });
    let mut frames = EventFrames::new(timesteps, cells_per_frame);
    let mut labels = Vec::new();
    for part in parts {
        let (f, l) = part?;
        frames.append(&f);
        labels.extend(l);
    }
    Ok((frames, labels))
}

/// Seeded, reproducible split of `0..n` into `(train, val)` index lists: `val` has
/// `round(n * val_fraction)` indices (fraction clamped to `[0, 1]`), chosen by shuffling `0..n`
/// with `ChaCha8Rng::seed_from_u64(seed)` and taking the first ones; both lists are returned
/// sorted ascending, and together they cover `0..n` exactly once.
pub fn train_val_split(n: usize, val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let fraction = if val_fraction.is_nan() {
        0.0
    } else {
        val_fraction.clamp(0.0, 1.0)
    };
    let n_val = ((n as f64 * fraction).round() as usize).min(n);
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let mut val = perm[..n_val].to_vec();
    let mut train = perm[n_val..].to_vec();
    val.sort_unstable();
    train.sort_unstable();
    (train, val)
}
