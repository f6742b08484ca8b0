//! Event framing (docs/design.md, "Event data"; SpikingJelly `split_by='number'`) and compact
//! frame storage.
//!
//! An event is reduced to its *cell*: `polarity * H * W + y * W + x`, i.e. its position in one
//! `[C=2, H, W]` frame. With `N` events and `T` frames, `di = N / T`; frame `i` takes events
//! `[i*di, (i+1)*di)`, except the last, which ends at `N` (so it also takes the remainder; with
//! `N < T` all events land in the last frame).
//!
//! Frames are stored sparsely: per frame, the list of non-zero cells with their counts (`u16`,
//! saturating at 65535, which real recordings do not reach).

/// One event of an event camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Event {
    /// Timestamp in microseconds.
    pub t: u64,
    /// Column.
    pub x: u16,
    /// Row.
    pub y: u16,
    /// Polarity: 0 or 1 (the frame channel it counts in).
    pub p: u8,
}

impl Event {
    /// The event's cell in a `[2, height, width]` frame.
    pub(crate) fn cell(&self, height: usize, width: usize) -> u16 {
        (self.p as usize * height * width + self.y as usize * width + self.x as usize) as u16
    }
}

/// Event-count frames of many samples, stored sparsely.
#[derive(Debug, Clone)]
pub(crate) struct EventFrames {
    /// Frames per sample (`T`).
    frames: usize,
    /// Cells per frame (`C * H * W`, at most 65536).
    cells: usize,
    /// `offsets[s * frames + f] .. offsets[s * frames + f + 1]` are the entries of frame `f` of
    /// sample `s`. Always starts with 0.
    offsets: Vec<usize>,
    /// Cell of each non-zero entry.
    cell: Vec<u16>,
    /// Count of each non-zero entry.
    count: Vec<u16>,
}

impl EventFrames {
    /// Empty storage for samples of `frames` frames of `cells` cells.
    pub fn new(frames: usize, cells: usize) -> Self {
        assert!(frames > 0 && cells <= 1 << 16);
        EventFrames {
            frames,
            cells,
            offsets: vec![0],
            cell: Vec::new(),
            count: Vec::new(),
        }
    }

    /// Frames per sample.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Frames one sample given as the cells of its events, in time order. `scratch` is a
    /// reusable buffer (any content).
    pub fn push_sample(&mut self, events: &[u16], scratch: &mut Vec<u32>) {
        scratch.clear();
        scratch.resize(self.cells, 0);
        let n = events.len();
        let di = n / self.frames;
        for f in 0..self.frames {
            let start = f * di;
            let end = if f + 1 == self.frames { n } else { start + di };
            let first = self.cell.len();
            for &e in &events[start..end] {
                let slot = &mut scratch[e as usize];
                if *slot == 0 {
                    self.cell.push(e);
                }
                *slot += 1;
            }
            for k in first..self.cell.len() {
                let slot = &mut scratch[self.cell[k] as usize];
                self.count.push((*slot).min(u16::MAX as u32) as u16);
                *slot = 0;
            }
            self.offsets.push(self.cell.len());
        }
    }

    /// The non-zero counts of sample `s`: `(index, count)` with `index = frame * cells + cell`,
    /// its position in the sample's `[T, C, H, W]` layout; each index at most once (a cell
    /// appears once per frame, `push_sample`).
    fn sample_counts(&self, s: usize) -> impl Iterator<Item = (usize, u16)> + '_ {
        (0..self.frames).flat_map(move |f| {
            let k = s * self.frames + f;
            let range = self.offsets[k]..self.offsets[k + 1];
            let base = f * self.cells;
            self.cell[range.clone()]
                .iter()
                .zip(&self.count[range])
                .map(move |(&c, &n)| (base + c as usize, n))
        })
    }

    /// Adds `count` to `out[cell]` for every entry of sample `s`; `out` holds `frames * cells`
    /// floats (layout `[T, C, H, W]`) and is expected zeroed.
    pub fn write_sample(&self, s: usize, out: &mut [f32]) {
        for (i, n) in self.sample_counts(s) {
            out[i] += n as f32;
        }
    }

    /// Writes sample `s` as `u8` counts into `out` (`frames * cells` bytes, layout
    /// `[T, C, H, W]`, overwritten): the counts of [`EventFrames::write_sample`], saturated at
    /// 255. Returns how many counts were above 255.
    pub fn write_sample_u8(&self, s: usize, out: &mut [u8]) -> usize {
        out.fill(0);
        let mut saturated = 0;
        for (i, n) in self.sample_counts(s) {
            out[i] = n.min(255) as u8;
            saturated += usize::from(n > 255);
        }
        saturated
    }

    /// Total event count of sample `s` (sum over all its frames).
    pub fn event_count(&self, s: usize) -> u64 {
        let range = self.offsets[s * self.frames]..self.offsets[(s + 1) * self.frames];
        self.count[range].iter().map(|&n| n as u64).sum()
    }

    /// Appends all samples of `other` (same frame count and size).
    pub fn append(&mut self, other: &EventFrames) {
        assert_eq!((self.frames, self.cells), (other.frames, other.cells));
        let base = self.cell.len();
        self.cell.extend_from_slice(&other.cell);
        self.count.extend_from_slice(&other.count);
        self.offsets
            .extend(other.offsets[1..].iter().map(|&o| base + o));
    }

    /// A copy holding only the samples `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Self {
        let mut out = EventFrames::new(self.frames, self.cells);
        for &s in indices {
            for f in 0..self.frames {
                let k = s * self.frames + f;
                let range = self.offsets[k]..self.offsets[k + 1];
                out.cell.extend_from_slice(&self.cell[range.clone()]);
                out.count.extend_from_slice(&self.count[range]);
                out.offsets.push(out.cell.len());
            }
        }
        out
    }
}
