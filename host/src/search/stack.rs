//! How many candidates one Candle pass scores at once when the setup leaves it to the machine
//! (`candidates_per_pass` 0): the activation memory of one candidate's forward pass, and the
//! count that fits.

use crate::config::NetConfig;
use crate::limits::product;
use candle_core::Device;

/// Live f32 maps of the first cell's size (`N x C1 x H1 x W1`) that one candidate's forward
/// pass holds at its peak. Counted on the CPU engine (`cpu::forward`) for the backward cell:
/// cell 1 holds its 4 node values, 4 membranes, 3 (+3 new) back states, 12 conv outputs and 3
/// merged conv buffers; cell 2's maps are half that size; SNASNet's pools add 8. 48 bounds
/// that with room for temporaries, and serves for Candle's live tensors too.
pub const LIVE_MAPS: f64 = 48.0;

/// Bytes of the activations of one candidate's forward pass on a batch of `batch`.
pub fn activation_bytes(net: &NetConfig, batch: usize) -> f64 {
    let (h, w) = net.shape.cell1_hw();
    LIVE_MAPS * 4.0 * product(&[batch, net.shape.c1, h, w])
}

/// Candidates per Candle pass when the setup says "auto" (0).
///
/// On a GPU: as many as fit 32 GiB of activations ([`activation_bytes`] per candidate, at least
/// 1). On the CPU: 1, because Candle's CPU backend runs a stacked pass slower than the same
/// candidates one by one (`lightsnn bench search` measures it: 0.6x on the demo config), and the
/// CPU's default engine is the event-driven one anyway.
pub fn auto_stack(net: &NetConfig, batch: usize, device: &Device) -> usize {
    if device.is_cpu() {
        return 1;
    }
    let budget = 32.0 * (1u64 << 30) as f64;
    let per_candidate = activation_bytes(net, batch);
    ((budget / per_candidate) as usize).max(1)
}
