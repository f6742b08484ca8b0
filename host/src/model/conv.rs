//! A stride-1, same-padding 2-D convolution for training on the CPU: explicit im2col and GEMM in
//! forward and backward.
//!
//! Candle's CPU `conv2d` is a tiled direct convolution whose backward pass is slow for the
//! shapes of this network: the input gradient goes through a direct `conv_transpose2d`, and the
//! kernel gradient through a `conv2d` with an `H x W` kernel. Here, with the patch matrix
//! `cols = im2col(x)` of shape `[C*k*k, N*H*W]`:
//! - forward: `Y = W cols` (`W` as `[O, C*k*k]`);
//! - kernel gradient: `dW = dY cols^T`;
//! - input gradient: `dx = col2im(W^T dY)`.
//!
//! The batch is processed in chunks so that `cols` stays below [`COLS_BUDGET`] floats.
//! [`conv2d_same_train`] uses this op on the CPU and Candle's `conv2d` on other devices.

use anyhow::Result;
use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor};

/// Most floats of one im2col chunk (16 MiB: below glibc's largest mmap threshold, so chunks are
/// recycled on the heap instead of being mapped and zeroed by the kernel each time).
pub const COLS_BUDGET: usize = 4 << 20;

/// Convolution of `x` `[N, C, H, W]` with `w` `[O, C, k, k]`, stride 1, padding `padding`
/// (`k = 2 * padding + 1`), differentiable in both arguments.
pub fn conv2d_same_train(x: &Tensor, w: &Tensor, padding: usize) -> Result<Tensor> {
    let k = w.dim(2)?;
    if !x.device().is_cpu()
        || x.dtype() != DType::F32
        || w.dtype() != DType::F32
        || k != 2 * padding + 1
        || w.dim(3)? != k
    {
        return Ok(x.conv2d(w, padding, 1, 1, 1)?);
    }
    Ok(x.contiguous()?
        .apply_op2(&w.contiguous()?, SameConv2d { k })?)
}

/// Geometry of one convolution.
#[derive(Clone, Copy, Debug)]
struct Geom {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    o: usize,
}

impl Geom {
    fn hw(&self) -> usize {
        self.h * self.w
    }
    fn rows(&self) -> usize {
        self.c * self.k * self.k
    }
    /// Samples per chunk.
    fn chunk(&self) -> usize {
        (COLS_BUDGET / (self.rows() * self.hw()).max(1)).clamp(1, self.n.max(1))
    }
}

/// im2col of samples `n0..n0+nb` of `x` (`[N, C, H, W]`): `[C*k*k, nb*H*W]`, row `(c, dy, dx)`,
/// column `(sample, y, x)`, zeros outside the image.
fn im2col(x: &[f32], g: &Geom, n0: usize, nb: usize) -> Vec<f32> {
    let (h, w, k, hw) = (g.h, g.w, g.k, g.hw());
    let p = k / 2;
    let cols_n = nb * hw;
    let mut cols = vec![0f32; g.rows() * cols_n];
    for c in 0..g.c {
        for dy in 0..k {
            for dx in 0..k {
                let row = (c * k + dy) * k + dx;
                let dst_row = &mut cols[row * cols_n..(row + 1) * cols_n];
                // Output x range whose source x + dx - p is inside the image.
                let x_lo = p.saturating_sub(dx);
                let x_hi = (w + p).saturating_sub(dx).min(w);
                if x_lo >= x_hi {
                    continue;
                }
                for s in 0..nb {
                    let src_img = &x[((n0 + s) * g.c + c) * hw..((n0 + s) * g.c + c + 1) * hw];
                    for y in 0..h {
                        let sy = y + dy;
                        if sy < p || sy - p >= h {
                            continue;
                        }
                        let sy = sy - p;
                        let d = &mut dst_row[s * hw + y * w + x_lo..s * hw + y * w + x_hi];
                        let sx0 = x_lo + dx - p;
                        d.copy_from_slice(&src_img[sy * w + sx0..sy * w + sx0 + (x_hi - x_lo)]);
                    }
                }
            }
        }
    }
    cols
}

/// The adjoint of [`im2col`]: adds `dcols` (`[C*k*k, nb*H*W]`) into `dx` (`[N, C, H, W]`).
fn col2im_add(dcols: &[f32], g: &Geom, n0: usize, nb: usize, dx_out: &mut [f32]) {
    let (h, w, k, hw) = (g.h, g.w, g.k, g.hw());
    let p = k / 2;
    let cols_n = nb * hw;
    for c in 0..g.c {
        for dy in 0..k {
            for dx in 0..k {
                let row = (c * k + dy) * k + dx;
                let src_row = &dcols[row * cols_n..(row + 1) * cols_n];
                let x_lo = p.saturating_sub(dx);
                let x_hi = (w + p).saturating_sub(dx).min(w);
                if x_lo >= x_hi {
                    continue;
                }
                for s in 0..nb {
                    let base = ((n0 + s) * g.c + c) * hw;
                    for y in 0..h {
                        let sy = y + dy;
                        if sy < p || sy - p >= h {
                            continue;
                        }
                        let sy = sy - p;
                        let sx0 = x_lo + dx - p;
                        let dst =
                            &mut dx_out[base + sy * w + sx0..base + sy * w + sx0 + (x_hi - x_lo)];
                        let src = &src_row[s * hw + y * w + x_lo..s * hw + y * w + x_hi];
                        for (a, b) in dst.iter_mut().zip(src) {
                            *a += *b;
                        }
                    }
                }
            }
        }
    }
}

/// `[N, O, HW]` samples `n0..n0+nb` as `[O, nb*HW]`.
fn gather_oc(y: &[f32], g: &Geom, n0: usize, nb: usize) -> Vec<f32> {
    let hw = g.hw();
    let mut out = vec![0f32; g.o * nb * hw];
    for o in 0..g.o {
        for s in 0..nb {
            let src = &y[((n0 + s) * g.o + o) * hw..((n0 + s) * g.o + o + 1) * hw];
            out[(o * nb + s) * hw..(o * nb + s + 1) * hw].copy_from_slice(src);
        }
    }
    out
}

/// The custom op behind [`conv2d_same_train`].
struct SameConv2d {
    k: usize,
}

/// The f32 values of a contiguous CPU storage.
fn cpu_slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let v = match s {
        CpuStorage::F32(v) => v,
        _ => candle_core::bail!("same-conv2d: only f32 is supported"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("same-conv2d: non-contiguous input"),
    }
}

impl SameConv2d {
    fn geom(&self, xs: &[usize], ws: &[usize]) -> candle_core::Result<Geom> {
        let (&[n, c, h, w], &[o, ci, kh, kw]) = (xs, ws) else {
            candle_core::bail!("same-conv2d: expected 4-d input and kernel");
        };
        if ci != c || kh != self.k || kw != self.k {
            candle_core::bail!("same-conv2d: input {xs:?} and kernel {ws:?} do not match");
        }
        Ok(Geom {
            n,
            c,
            h,
            w,
            k: self.k,
            o,
        })
    }
}

impl CustomOp2 for SameConv2d {
    fn name(&self) -> &'static str {
        "same-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.geom(l1.dims(), l2.dims())?;
        let x = cpu_slice(s1, l1)?;
        let wm = Tensor::from_slice(cpu_slice(s2, l2)?, (g.o, g.rows()), &Device::Cpu)?;
        let hw = g.hw();
        let mut out = vec![0f32; g.n * g.o * hw];
        let chunk = g.chunk();
        let mut n0 = 0;
        while n0 < g.n {
            let nb = chunk.min(g.n - n0);
            // Y = W cols ([O, R] x [R, nb*HW]).
            let cols_t =
                Tensor::from_vec(im2col(x, &g, n0, nb), (g.rows(), nb * hw), &Device::Cpu)?;
            let y = wm.matmul(&cols_t)?.flatten_all()?.to_vec1::<f32>()?;
            for o in 0..g.o {
                for s in 0..nb {
                    out[((n0 + s) * g.o + o) * hw..((n0 + s) * g.o + o + 1) * hw]
                        .copy_from_slice(&y[(o * nb + s) * hw..(o * nb + s + 1) * hw]);
                }
            }
            n0 += nb;
        }
        Ok((CpuStorage::F32(out), Shape::from((g.n, g.o, g.h, g.w))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = self.geom(x.dims(), w.dims())?;
        let dev = x.device().clone();
        let xv: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let gv: Vec<f32> = grad.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let wm = w.to_device(&Device::Cpu)?.reshape((g.o, g.rows()))?;
        let wt = wm.t()?.contiguous()?;
        let hw = g.hw();
        let mut dx = vec![0f32; xv.len()];
        let mut dw: Option<Tensor> = None;
        let chunk = g.chunk();
        let mut n0 = 0;
        while n0 < g.n {
            let nb = chunk.min(g.n - n0);
            let cols =
                Tensor::from_vec(im2col(&xv, &g, n0, nb), (g.rows(), nb * hw), &Device::Cpu)?;
            let gy = Tensor::from_vec(gather_oc(&gv, &g, n0, nb), (g.o, nb * hw), &Device::Cpu)?;
            // dW += dY cols^T  ([O, nb*HW] x [nb*HW, R]).
            let part = gy.matmul(&cols.t()?)?;
            dw = Some(match dw {
                None => part,
                Some(a) => (a + part)?,
            });
            drop(cols);
            // dcols = W^T dY ([R, O] x [O, nb*HW]).
            let dcols: Vec<f32> = wt.matmul(&gy)?.flatten_all()?.to_vec1()?;
            col2im_add(&dcols, &g, n0, nb, &mut dx);
            n0 += nb;
        }
        let dx = Tensor::from_vec(dx, (g.n, g.c, g.h, g.w), &dev)?.to_dtype(x.dtype())?;
        let dw = match dw {
            Some(d) => d.reshape(w.dims())?.to_device(&dev)?.to_dtype(w.dtype())?,
            None => w.zeros_like()?,
        };
        Ok((Some(dx), Some(dw)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;
    use rand::{Rng, SeedableRng};

    #[test]
    fn train_conv_values_and_gradients_match_conv2d() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for k in [1usize, 3] {
            let mut rand =
                |n: usize| -> Vec<f32> { (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect() };
            let x = Var::from_vec(rand(3 * 3 * 5 * 6), (3, 3, 5, 6), &dev)?;
            let w = Var::from_vec(rand(4 * 3 * k * k), (4, 3, k, k), &dev)?;
            let g = Tensor::from_vec(rand(3 * 4 * 5 * 6), (3, 4, 5, 6), &dev)?;
            let p = k / 2;
            let a = x.as_tensor().conv2d(w.as_tensor(), p, 1, 1, 1)?;
            let b = conv2d_same_train(x.as_tensor(), w.as_tensor(), p)?;
            let d = (&a - &b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(d < 1e-5, "k={k}: forward differs by {d}");
            let ga = (a * &g)?.sum_all()?.backward()?;
            let gb = (b * &g)?.sum_all()?.backward()?;
            for v in [&x, &w] {
                let d = (ga.get(v.as_tensor()).unwrap() - gb.get(v.as_tensor()).unwrap())?
                    .abs()?
                    .max_all()?
                    .to_scalar::<f32>()?;
                assert!(d < 1e-4, "k={k}: gradient differs by {d}");
            }
        }
        Ok(())
    }
}
