//! Helpers shared by the tests of this folder: running the `lightsnn` binary, and for the
//! hostile-input tests (`hostile.rs`, `fault_injection.rs`, `fuzz_readers.rs`) the shipped
//! N-MNIST sample, the tiny network and study every run uses, and edits of safetensors files.
#![allow(dead_code)] // each test crate uses a part

pub mod readers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `lightsnn` binary built for the tests with `args`.
pub fn lightsnn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lightsnn"))
        .args(args)
        .output()
        .expect("run lightsnn")
}

/// What a run wrote to stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A genotype with convs, skips and zeros (backward cell).
pub const GENOTYPE: &str = "conv3,skip,zero,conv3,conv3,zero,skip,conv3,zero,conv3,skip,conv3";

/// Owned arguments from words.
pub fn words(s: &[&str]) -> Vec<String> {
    s.iter().map(|w| w.to_string()).collect()
}

/// A copy of the shipped N-MNIST sample in `dir/nmnist`.
pub fn nmnist_copy(dir: &Path) -> PathBuf {
    let src = lightsnn_tests::shipped_data("nmnist-sample");
    let dst = dir.join("nmnist");
    std::fs::create_dir(&dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
    }
    dst
}

/// The tiny N-MNIST network on `data` (C1/C2 1/2, T 2, H 8, V 1): runs of it take well under a
/// second.
pub fn tiny(data: &Path) -> Vec<String> {
    let mut v = words(&["--dataset", "nmnist", "--data"]);
    v.push(data.display().to_string());
    v.extend(words(&[
        "--width",
        "0.015625",
        "--timesteps",
        "2",
        "--hidden",
        "8",
        "--votes",
        "1",
    ]));
    v
}

/// `train` of the tiny network on `data` into `out`: 2 epochs, of which 1 is run (the run
/// holds a best checkpoint and can be resumed).
pub fn tiny_train(data: &Path, out: &Path) -> Vec<String> {
    let mut v = words(&["train", "--genotype", GENOTYPE]);
    v.extend(tiny(data));
    v.extend(words(&[
        "--epochs",
        "2",
        "--stop-after",
        "1",
        "--batch",
        "8",
        "--out",
    ]));
    v.push(out.display().to_string());
    v
}

/// `export` of checkpoint `ck` (calibrated on 4 samples of `data`) to `out`.
pub fn tiny_export(ck: &Path, data: &Path, out: &Path) -> Vec<String> {
    let mut v = words(&["export", "--checkpoint"]);
    v.push(ck.display().to_string());
    v.push("--data".into());
    v.push(data.display().to_string());
    v.extend(words(&["--calib", "4", "--out"]));
    v.push(out.display().to_string());
    v
}

/// `study` of the tiny network on `data` into `out`: one random cell, one epoch, about a second.
pub fn tiny_study(data: &Path, out: &Path) -> Vec<String> {
    let mut v = words(&["study", "--dataset", "nmnist", "--data"]);
    v.push(data.display().to_string());
    v.push("--out".into());
    v.push(out.display().to_string());
    v.extend(words(&[
        "--cells",
        "1",
        "--noise-seeds",
        "0",
        "--epochs",
        "1",
        "--train-batch",
        "8",
        "--width",
        "0.015625",
        "--timesteps",
        "2",
        "--hidden",
        "8",
        "--search-batch",
        "4",
        "--search-repeats",
        "1",
        "--score-repeats",
        "1",
        "--random-samples",
        "2",
        "--random-batch",
        "4",
        "--bootstrap",
        "10",
    ]));
    v
}

/// A safetensors file's header JSON and data region.
pub fn split_safetensors(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, bytes[8 + n..].to_vec())
}

/// A safetensors file from a header and a data region.
pub fn join_safetensors(header: &serde_json::Value, data: &[u8]) -> Vec<u8> {
    let mut h = serde_json::to_vec(header).unwrap();
    h.resize(h.len().div_ceil(8) * 8, b' ');
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    out
}

/// The `lightsnn` metadata JSON of a checkpoint.
pub fn checkpoint_meta(bytes: &[u8]) -> serde_json::Value {
    let (header, _) = split_safetensors(bytes);
    serde_json::from_str(header["__metadata__"]["lightsnn"].as_str().unwrap()).unwrap()
}

/// The checkpoint `bytes` with `meta` (any text) as its `lightsnn` metadata.
pub fn with_meta(bytes: &[u8], meta: &str) -> Vec<u8> {
    let (mut header, data) = split_safetensors(bytes);
    header["__metadata__"]["lightsnn"] = serde_json::Value::String(meta.to_string());
    join_safetensors(&header, &data)
}

/// The checkpoint `bytes` with the metadata value at JSON `pointer` set to `value`.
pub fn with_meta_value(bytes: &[u8], pointer: &str, value: serde_json::Value) -> Vec<u8> {
    let mut meta = checkpoint_meta(bytes);
    *meta.pointer_mut(pointer).unwrap() = value;
    with_meta(bytes, &meta.to_string())
}

/// The checkpoint `bytes` with every f32 of its data region set to `v`.
pub fn with_weights(bytes: &[u8], v: f32) -> Vec<u8> {
    let (header, data) = split_safetensors(bytes);
    let w: Vec<u8> = (0..data.len()).map(|i| v.to_le_bytes()[i % 4]).collect();
    join_safetensors(&header, &w)
}
