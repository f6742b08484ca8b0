//! Checkpoints: safetensors files holding every tensor of a network's
//! [`ParamStore`](crate::model::params::ParamStore) (trainable tensors and BatchNorm running
//! statistics, by name), with the network description in the file's metadata so that `eval`
//! and `export` rebuild the network from the checkpoint alone.
//!
//! Metadata key [`METADATA_KEY`] = JSON [`CheckpointMeta`]:
//! `{"format":"lightsnn-checkpoint/1","net":<NetConfig>,"genotype":"<op names>","epoch":k,
//! "dataset":"cifar10",...}`.

use crate::config::NetConfig;
use crate::fsutil::write_atomic;
use crate::limits::available_memory;
use crate::model::{Mixing, Network};
use crate::search::{Estimate, Pass};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use snn_nostd::genotype::Genotype;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Format tag of checkpoint metadata.
pub const CHECKPOINT_FORMAT: &str = "lightsnn-checkpoint/1";
/// The safetensors metadata key holding the [`CheckpointMeta`] JSON.
pub const METADATA_KEY: &str = "lightsnn";

/// What a checkpoint says about the network it holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Always [`CHECKPOINT_FORMAT`].
    pub format: String,
    /// The network shape (dataset, widths, T, cell type, op set, LIF constants).
    pub net: NetConfig,
    /// The genotype: op names in canonical edge order, comma-separated.
    pub genotype: String,
    /// Training epochs completed when the weights were saved.
    pub epoch: usize,
    /// Dataset name (`cifar10`, `nmnist`, ...).
    pub dataset: String,
    /// Where the training data came from (a folder or the built-in sample).
    #[serde(default)]
    pub data: String,
    /// Validation top-1 accuracy (0..1) of these weights, when known.
    #[serde(default)]
    pub val_top1: Option<f64>,
    /// lightsnn version that wrote the file.
    #[serde(default)]
    pub version: String,
}

impl CheckpointMeta {
    /// Metadata for `net` running `genotype` after `epoch` epochs.
    pub fn new(net: &NetConfig, genotype: &Genotype, epoch: usize, data: &str) -> CheckpointMeta {
        CheckpointMeta {
            format: CHECKPOINT_FORMAT.into(),
            net: net.clone(),
            genotype: genotype.to_string(),
            epoch,
            dataset: net.dataset.to_string(),
            data: data.to_string(),
            val_top1: None,
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    /// The parsed genotype, checked against the network's cell type and op set.
    pub fn genotype(&self) -> Result<Genotype> {
        parse_genotype(&self.genotype, &self.net)
    }
}

/// Parses `s` as a genotype for `net`: the op count must match the cell type and every op must
/// be in the op set.
pub fn parse_genotype(s: &str, net: &NetConfig) -> Result<Genotype> {
    let g: Genotype = s.parse().with_context(|| format!("genotype {s:?}"))?;
    if g.cell() != net.cell {
        bail!(
            "genotype {s:?} has {} ops, a {} cell needs {}",
            g.ops().len(),
            net.cell,
            net.cell.num_edges()
        );
    }
    g.check_op_set(&net.ops)
        .with_context(|| format!("genotype {g} (op set {{{}}})", net.ops))?;
    Ok(g)
}

/// Serialises `tensors` (converted to f32) with `metadata` into safetensors bytes.
pub fn tensors_to_bytes(
    tensors: &BTreeMap<String, Tensor>,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let mut raw: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let v: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        raw.push((name.clone(), t.dims().to_vec(), bytes));
    }
    let views = raw
        .iter()
        .map(|(n, shape, b)| Ok((n.as_str(), TensorView::new(Dtype::F32, shape.clone(), b)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(safetensors::serialize(views, Some(metadata))?)
}

/// Refuses a tensor of `st` holding a NaN or infinite value: weights that would make every
/// output NaN (a corrupt file or a diverged run). Errors name the file, tensor and element.
fn check_finite(st: &safetensors::SafeTensors<'_>, path: &Path) -> Result<()> {
    for (name, view) in st.tensors() {
        let bad = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .position(|v| !v.is_finite())
                .map(|i| (i, view.data()[4 * i..4 * i + 4].to_vec())),
            _ => None,
        };
        if let Some((i, b)) = bad {
            let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            bail!(
                "{}: tensor {name} holds {v} at element {i}: the weights are corrupt or the \
                 training diverged; use another checkpoint",
                path.display()
            );
        }
    }
    Ok(())
}

/// Reads a safetensors file: its tensors on `device` and its metadata. Errors name the file;
/// a tensor holding NaN or infinity is refused.
pub fn read_tensors(
    path: &Path,
    device: &Device,
) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let bytes = crate::fsutil::read_input(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    tensors_from_bytes(&bytes, path, device)
}

/// [`read_tensors`] of a file's bytes (`path` names it in errors).
pub fn tensors_from_bytes(
    bytes: &[u8],
    path: &Path,
    device: &Device,
) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    check_finite(&st, path)?;
    let tensors = candle_core::safetensors::load_buffer(bytes, device)
        .with_context(|| format!("{}: cannot read the tensors", path.display()))?;
    Ok((tensors, meta))
}

/// Writes `net`'s tensors and `meta` to `path` atomically.
pub fn save_checkpoint(path: &Path, net: &Network, meta: &CheckpointMeta) -> Result<()> {
    let mut md = HashMap::new();
    md.insert(METADATA_KEY.to_string(), serde_json::to_string(meta)?);
    let bytes = tensors_to_bytes(&net.params.all_tensors(), md)?;
    write_atomic(path, &bytes)
}

/// Parses the [`CheckpointMeta`] of a checkpoint's metadata map; `origin` names the file.
pub fn parse_meta(md: &HashMap<String, String>, origin: &str) -> Result<CheckpointMeta> {
    let Some(json) = md.get(METADATA_KEY) else {
        bail!(
            "{origin}: not a lightsnn checkpoint (no `{METADATA_KEY}` metadata; keys: {:?})",
            md.keys().collect::<Vec<_>>()
        );
    };
    let v: serde_json::Value = serde_json::from_str(json)
        .with_context(|| format!("{origin}: the `{METADATA_KEY}` metadata is not JSON"))?;
    let format = v.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if format != CHECKPOINT_FORMAT {
        bail!("{origin}: checkpoint format {format:?}, this lightsnn reads {CHECKPOINT_FORMAT:?}");
    }
    let meta: CheckpointMeta = serde_json::from_value(v)
        .with_context(|| format!("{origin}: malformed `{METADATA_KEY}` metadata"))?;
    meta.net.validate().with_context(|| {
        format!("{origin}: the `{METADATA_KEY}` metadata describes an impossible network")
    })?;
    Ok(meta)
}

/// Reads only a checkpoint's metadata (checked: a network that can exist).
pub fn read_checkpoint_meta(path: &Path) -> Result<CheckpointMeta> {
    let bytes = crate::fsutil::read_input(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    checkpoint_meta_from_bytes(&bytes, &path.display().to_string())
}

/// [`read_checkpoint_meta`] of a file's bytes (`origin` names it in errors).
pub fn checkpoint_meta_from_bytes(bytes: &[u8], origin: &str) -> Result<CheckpointMeta> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .with_context(|| format!("{origin}: not a safetensors file"))?;
    parse_meta(&header.metadata().clone().unwrap_or_default(), origin)
}

/// Rebuilds the single-path network saved in `path` on `device`, with its weights and BatchNorm
/// statistics. Errors name the file: not a checkpoint, another format, a genotype that does not
/// fit the op set, tensors whose names or shapes do not match the described network.
pub fn load_checkpoint(path: &Path, device: &Device) -> Result<(Network, CheckpointMeta)> {
    let origin = path.display().to_string();
    let (tensors, md) = read_tensors(path, device)?;
    let meta = parse_meta(&md, &origin)?;
    let g = meta.genotype().with_context(|| origin.clone())?;
    let alive: Vec<Vec<_>> = Mixing::single_path(&g).alive();
    // the weights alone, before they are allocated (the command checks its batches)
    Estimate::for_network(&meta.net, &alive, (0, 1), Pass::Eval, device)
        .check_memory_hint(
            available_memory(),
            "the checkpoint's metadata describes a network too large for this machine",
        )
        .with_context(|| origin.clone())?;
    let net = Network::new(&meta.net, &alive, 0, device)
        .with_context(|| format!("{origin}: cannot build the network it describes"))?;
    net.params.load_from(&tensors, &origin)?;
    Ok((net, meta))
}
