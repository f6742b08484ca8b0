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
    /// What the loader found suspicious but usable (samples without events), in words.
    warnings: Vec<String>,
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
        let d = Dataset::load_any(kind, dir, split, timesteps)?;
        if d.is_empty() {
            return Err(DataError::missing(
                dir,
                format!("no {kind} {split} samples (the split's files or label list are empty)"),
            ));
        }
        Ok(d)
    }

    /// [`Dataset::load`], also of a split without samples.
    fn load_any(
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
                let framing = Framing {
                    kind,
                    dir,
                    timesteps,
                    samples_per_file: 1,
                };
                let name = |(path, _): &nmnist::Labelled| path.display().to_string();
                framing.frame(&files, name, |(path, label)| {
                    Ok(vec![(nmnist::read_events(path)?, *label)])
                })
            }
            DatasetKind::Dvs128 => {
                check_timesteps(timesteps)?;
                let files = dvs::split_files(dir, split)?;
                let framing = Framing {
                    kind,
                    dir,
                    timesteps,
                    samples_per_file: dvs::GESTURES_PER_RECORDING,
                };
                let name = |path: &std::path::PathBuf| path.display().to_string();
                framing.frame(&files, name, |path| {
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
                })
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
            warnings: Vec::new(),
        }
    }

    fn from_frames(kind: DatasetKind, labels: Vec<u16>, frames: EventFrames) -> Dataset {
        Dataset {
            kind,
            labels,
            coarse: Vec::new(),
            samples: Samples::Events(frames),
            warnings: Vec::new(),
        }
    }

    /// What the loader found suspicious but usable, in words (e.g. samples without events,
    /// which are all-zero inputs); the commands print them as warnings.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
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

    /// Writes sample `i` as the raw `u8` input the device quantises
    /// (`snn_nostd::engine::quantize_input_u8`) into `out` (cleared first, [`Dataset::sample_len`]
    /// bytes): static data its pixel bytes as stored (R, G, B planes, not normalised: the model
    /// blob normalises); event data the per-pixel, per-polarity counts of [`Dataset::fill_batch`]
    /// (layout `[T, C, H, W]`), saturated at 255. Returns how many counts were above 255 (0 for
    /// static data). Panics if `i >= len()`.
    pub fn write_u8(&self, i: usize, out: &mut Vec<u8>) -> usize {
        assert!(i < self.len(), "sample {i} out of range ({})", self.len());
        out.clear();
        match &self.samples {
            Samples::Images(pixels) => {
                out.extend_from_slice(
                    &pixels[i * cifar::IMAGE_BYTES..(i + 1) * cifar::IMAGE_BYTES],
                );
                0
            }
            Samples::Events(frames) => {
                out.resize(self.sample_len(), 0);
                frames.write_sample_u8(i, out)
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
            warnings: self.warnings.clone(),
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

/// Event samples shown in a warning or error before "and N more".
const NAMED_SAMPLES: usize = 3;

/// How the event files of one split are framed.
struct Framing<'a> {
    kind: DatasetKind,
    /// The dataset folder (for messages).
    dir: &'a Path,
    timesteps: usize,
    /// Labelled samples a file holds at most (for the memory check before framing).
    samples_per_file: usize,
}

impl Framing<'_> {
    /// Checks that the frame index of the files' samples fits in memory: `T + 1` offsets per
    /// sample, before any is allocated (a huge `--timesteps` would otherwise abort here).
    fn check_memory(&self, files: usize) -> Result<(), DataError> {
        let samples = crate::limits::product(&[files, self.samples_per_file]);
        let needed = samples * (self.timesteps as f64 + 1.0) * 8.0;
        crate::limits::check_free(
            needed,
            &format!(
                "framing {} into {} frames per sample",
                self.dir.display(),
                self.timesteps
            ),
            format!("{samples} samples"),
            "lower --timesteps",
        )?;
        Ok(())
    }

    /// Reads and frames event files in parallel (order preserved) into a dataset. `read` turns
    /// one file into its labelled samples (events in time order, label); `name` names a file.
    /// Samples without events become warnings; a split whose samples all lack events is an
    /// error.
    fn frame<T: Sync>(
        &self,
        files: &[T],
        name: impl Fn(&T) -> String + Sync,
        read: impl Fn(&T) -> Result<Vec<(Vec<Event>, u16)>, DataError> + Sync,
    ) -> Result<Dataset, DataError> {
        self.check_memory(files.len())?;
        let kind = self.kind;
        let (h, w) = (kind.height(), kind.width());
        let cells_per_frame = kind.channels() * h * w;
        let timesteps = self.timesteps;
        type Part = (EventFrames, Vec<u16>, Vec<String>);
        let frame_chunk = |chunk: &[T]| -> Result<Part, DataError> {
            let mut frames = EventFrames::new(timesteps, cells_per_frame);
            let mut labels = Vec::new();
            let mut empty = Vec::new();
            let mut scratch = Vec::new();
            let mut cells = Vec::new();
            for file in chunk {
                let samples = read(file)?;
                let several = samples.len() > 1;
                for (k, (events, label)) in samples.into_iter().enumerate() {
                    if events.is_empty() {
                        empty.push(if several {
                            format!("{} (sample {})", name(file), k + 1)
                        } else {
                            name(file)
                        });
                    }
                    cells.clear();
                    cells.extend(events.iter().map(|e| e.cell(h, w)));
                    frames.push_sample(&cells, &mut scratch);
                    labels.push(label);
                }
            }
            Ok((frames, labels, empty))
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(files.len().div_ceil(16))
            .max(1);
        let chunk_len = files.len().div_ceil(threads).max(1);
        let parts: Vec<Result<Part, DataError>> = std::thread::scope(|s| {
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
        let mut empty = Vec::new();
        for part in parts {
            let (f, l, e) = part?;
            frames.append(&f);
            labels.extend(l);
            empty.extend(e);
        }
        let mut d = Dataset::from_frames(kind, labels, frames);
        if !empty.is_empty() {
            let named = empty[..empty.len().min(NAMED_SAMPLES)].join(", ");
            let more = empty.len().saturating_sub(NAMED_SAMPLES);
            let named = if more > 0 {
                format!("{named} and {more} more")
            } else {
                named
            };
            if empty.len() == d.len() {
                return Err(DataError::NoEvents {
                    dir: self.dir.to_path_buf(),
                    samples: d.len(),
                    named,
                });
            }
            d.warnings.push(format!(
                "{} of the {} samples in {} have no events ({named}): they are all-zero inputs; \
                 check those files or leave them out of the split",
                empty.len(),
                d.len(),
                self.dir.display()
            ));
        }
        Ok(d)
    }
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
