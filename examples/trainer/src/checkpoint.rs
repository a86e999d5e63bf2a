//! Checkpoints for population based training: the network's weights and
//! the epochs it has trained, as `model.json` in a folder. A run given a
//! folder with a checkpoint continues from it (its epochs are numbered on
//! from the checkpoint's) and writes its own there after every epoch, by
//! writing a new file and renaming it over the old one, so a killed run
//! leaves the last whole checkpoint behind.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use serde_json::{Value, json};

use crate::mlp::{Layer, Mlp};

/// The checkpoint file's name in its folder.
const FILE: &str = "model.json";

/// A saved network and how many epochs it has trained.
#[derive(Debug, Clone)]
pub struct Saved {
    pub model: Mlp,
    pub epochs: usize,
}

fn path(folder: &Path) -> PathBuf {
    folder.join(FILE)
}

/// Writes `model` after `epochs` epochs into `folder` (created).
pub fn save(folder: &Path, model: &Mlp, epochs: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(folder)?;
    let layers: Vec<Value> = model
        .layers
        .iter()
        .map(|l| {
            json!({
                "rows": l.w.nrows(),
                "cols": l.w.ncols(),
                "w": l.w.iter().copied().collect::<Vec<f64>>(),
                "b": l.b.to_vec(),
            })
        })
        .collect();
    let text = json!({"epochs": epochs, "layers": layers}).to_string();
    let partial = folder.join(format!("{FILE}.partial"));
    std::fs::write(&partial, text)?;
    std::fs::rename(partial, path(folder))
}

/// The checkpoint in `folder`, if there is one, for a network shaped like
/// `fresh` (same layer sizes; its activation is kept).
///
/// # Errors
/// A message naming the file when it cannot be read, is not a checkpoint,
/// or holds a network of another shape.
pub fn load(folder: &Path, fresh: &Mlp) -> Result<Option<Saved>, String> {
    let file = path(folder);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", file.display())),
    };
    let bad = |why: &str| format!("{}: {why}", file.display());
    let doc: Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let epochs = doc["epochs"]
        .as_u64()
        .and_then(|e| usize::try_from(e).ok())
        .ok_or_else(|| bad("no epoch count"))?;
    let saved = doc["layers"].as_array().ok_or_else(|| bad("no layers"))?;
    if saved.len() != fresh.layers.len() {
        return Err(bad(&format!(
            "{} layers saved, the network has {} (change --layers back, or start from an empty folder)",
            saved.len(),
            fresh.layers.len()
        )));
    }
    let mut layers = Vec::with_capacity(saved.len());
    for (i, (s, f)) in saved.iter().zip(&fresh.layers).enumerate() {
        let numbers = |key: &str| -> Option<Vec<f64>> {
            s[key].as_array()?.iter().map(Value::as_f64).collect()
        };
        let (rows, cols) = (s["rows"].as_u64(), s["cols"].as_u64());
        let shape = (f.w.nrows() as u64, f.w.ncols() as u64);
        if (rows, cols) != (Some(shape.0), Some(shape.1)) {
            return Err(bad(&format!(
                "layer {i} is {rows:?}×{cols:?}, the network's is {}×{} (change --hidden back)",
                shape.0, shape.1
            )));
        }
        let w = numbers("w")
            .and_then(|w| Array2::from_shape_vec(f.w.raw_dim(), w).ok())
            .ok_or_else(|| bad(&format!("layer {i}'s weights")))?;
        let b = numbers("b")
            .filter(|b| b.len() == f.b.len())
            .map(Array1::from_vec)
            .ok_or_else(|| bad(&format!("layer {i}'s biases")))?;
        layers.push(Layer { w, b });
    }
    Ok(Some(Saved {
        model: Mlp {
            layers,
            activation: fresh.activation,
        },
        epochs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::Activation;
    use crate::rng::Rng;

    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ktune-trainer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_saved_network_loads_back() {
        let dir = folder("roundtrip");
        let model = Mlp::new(4, &[8, 8], 3, Activation::Relu, &mut Rng::new(1));
        assert!(load(&dir, &model).unwrap().is_none(), "no checkpoint yet");
        save(&dir, &model, 12).unwrap();
        let fresh = Mlp::new(4, &[8, 8], 3, Activation::Relu, &mut Rng::new(2));
        let saved = load(&dir, &fresh).unwrap().unwrap();
        assert_eq!(saved.epochs, 12);
        // serde_json parses floats to within an ulp, not always bit for bit.
        for (a, b) in saved.model.layers.iter().zip(&model.layers) {
            let close = |x: &f64, y: &f64| (x - y).abs() <= 1e-15 * y.abs().max(1.0);
            assert!(a.w.iter().zip(&b.w).all(|(x, y)| close(x, y)));
            assert!(a.b.iter().zip(&b.b).all(|(x, y)| close(x, y)));
        }
    }

    #[test]
    fn another_shape_or_a_broken_file_is_refused_with_the_file_named() {
        let dir = folder("shape");
        save(
            &dir,
            &Mlp::new(4, &[8], 3, Activation::Relu, &mut Rng::new(1)),
            1,
        )
        .unwrap();
        let wider = Mlp::new(4, &[16], 3, Activation::Relu, &mut Rng::new(1));
        let err = load(&dir, &wider).unwrap_err();
        assert!(
            err.contains("model.json") && err.contains("--hidden"),
            "{err}"
        );
        std::fs::write(dir.join(FILE), "{not json").unwrap();
        assert!(load(&dir, &wider).unwrap_err().contains("model.json"));
    }
}
