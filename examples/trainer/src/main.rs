//! `ktune-trainer`: an example trial program for ktune. Trains a small MLP
//! (written on `ndarray`) to predict red-wine quality from the data set that
//! ships inside `linfa-datasets` — nothing is downloaded — and prints one line
//! of metrics per epoch in Katib's default text format:
//!
//! ```text
//! epoch=5 loss=0.93113 val_loss=0.95202 val_accuracy=0.5906
//! ```
//!
//! With `--checkpoint DIR` it continues from the network saved there and
//! saves its own after every epoch (population based training).
//!
//! Exit status: 0 trained (also when training diverged after at least one
//! reported epoch), 2 bad flags, 3 diverged before the first epoch ended,
//! 4 an unusable checkpoint, 1 standard output closed or the checkpoint
//! not writable.

mod checkpoint;
mod data;
mod mlp;
mod optim;
mod rng;
mod train;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::mlp::Activation;
use crate::optim::Kind;
use crate::train::{Config, Outcome};

/// Trains a small neural network on the red wine-quality data set (bundled,
/// no download) and prints `epoch=N loss=… val_loss=… val_accuracy=…` after
/// every epoch.
#[derive(Debug, Parser)]
#[command(name = "ktune-trainer", version)]
struct Args {
    /// Learning rate (> 0).
    #[arg(long, default_value = "0.003", value_parser = positive)]
    lr: f64,
    /// Optimiser.
    #[arg(long, value_enum, default_value_t = Kind::Adam)]
    optimizer: Kind,
    /// SGD momentum, in [0, 1) (Adam ignores it).
    #[arg(long, default_value = "0.9", value_parser = unit_interval)]
    momentum: f64,
    /// Units per hidden layer (1–1024).
    #[arg(long, default_value = "32", value_parser = count(1, 1024))]
    hidden: usize,
    /// Hidden layers (0–4; 0 is multinomial logistic regression).
    #[arg(long, default_value = "1", value_parser = count(0, 4))]
    layers: usize,
    /// Hidden-layer activation.
    #[arg(long, value_enum, default_value_t = Activation::Relu)]
    activation: Activation,
    /// Wines per mini-batch (1–100000).
    #[arg(long, default_value = "32", value_parser = count(1, 100_000))]
    batch_size: usize,
    /// L2 penalty on the weights (≥ 0).
    #[arg(long, default_value = "0", value_parser = non_negative)]
    weight_decay: f64,
    /// Dropout probability of hidden units, in [0, 1).
    #[arg(long, default_value = "0", value_parser = unit_interval)]
    dropout: f64,
    /// Passes over the training wines (1–10000).
    #[arg(long, default_value = "30", value_parser = count(1, 10_000))]
    epochs: usize,
    /// Seed of the initial weights, the batch order and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A folder to continue from and save to (population based training):
    /// the network in its `model.json` trains `--epochs` more epochs,
    /// numbered on from the checkpoint's, and is saved after every epoch.
    #[arg(long)]
    checkpoint: Option<std::path::PathBuf>,
}

fn number(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("`{text}` is not a finite number"))
    }
}

fn positive(text: &str) -> Result<f64, String> {
    let v = number(text)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not greater than 0"))
    }
}

fn non_negative(text: &str) -> Result<f64, String> {
    let v = number(text)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} is negative"))
    }
}

fn unit_interval(text: &str) -> Result<f64, String> {
    let v = number(text)?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not in [0, 1)"))
    }
}

/// A whole number in `min..=max`; `64.0` is accepted as 64, as search
/// algorithms sometimes render integers that way.
fn count(min: usize, max: usize) -> impl Fn(&str) -> Result<usize, String> + Clone {
    move |text: &str| {
        let t = text.trim();
        let v = match t.parse::<usize>() {
            Ok(v) => v,
            Err(_) => {
                let f = number(t).map_err(|_| format!("`{text}` is not a whole number"))?;
                if f.fract() != 0.0 || !(0.0..=1e9).contains(&f) {
                    return Err(format!("`{text}` is not a whole number"));
                }
                f as usize
            }
        };
        if (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{v} is not in {min}..={max}"))
        }
    }
}

impl Args {
    fn config(&self) -> Config {
        Config {
            lr: self.lr,
            optimizer: self.optimizer,
            momentum: self.momentum,
            hidden: self.hidden,
            layers: self.layers,
            activation: self.activation,
            batch_size: self.batch_size,
            weight_decay: self.weight_decay,
            dropout: self.dropout,
            epochs: self.epochs,
            seed: self.seed,
        }
    }
}

fn main() -> ExitCode {
    // Bad flags: clap prints the problem and exits with status 2.
    let args = Args::parse();
    let config = args.config();
    let data = data::wine_quality();
    eprintln!(
        "ktune-trainer: red wine quality, {} training / {} validation wines; {config:?}",
        data.train.x.nrows(),
        data.valid.x.nrows(),
    );
    let start = match &args.checkpoint {
        None => None,
        Some(folder) => {
            let fresh = train::fresh_model(&config, &data, &mut rng::Rng::new(config.seed));
            match checkpoint::load(folder, &fresh) {
                Ok(saved) => saved,
                Err(e) => {
                    eprintln!("ktune-trainer: checkpoint {e}");
                    return ExitCode::from(4);
                }
            }
        }
    };
    if let Some(saved) = &start {
        eprintln!(
            "ktune-trainer: continuing from a checkpoint after epoch {}",
            saved.epochs
        );
    }
    let mut stdout = std::io::stdout().lock();
    let mut reported = 0;
    let outcome = train::train(&config, &data, start, |epoch, model| {
        if let Some(folder) = &args.checkpoint {
            checkpoint::save(folder, model, epoch.epoch)?;
        }
        reported += 1;
        writeln!(stdout, "{epoch}")?;
        stdout.flush()
    });
    match outcome {
        Ok(Outcome::Finished) => ExitCode::SUCCESS,
        Ok(Outcome::Diverged { epoch }) => {
            eprintln!(
                "ktune-trainer: training diverged in epoch {epoch} (the loss or a weight is no longer finite); stopping"
            );
            if reported > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Err(e) => {
            eprintln!("ktune-trainer: cannot write the metrics or the checkpoint: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("ktune-trainer").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_and_every_flag_parse() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.optimizer, Kind::Adam);
        assert_eq!(a.epochs, 30);
        let a = parse(&[
            "--lr=1e-2",
            "--optimizer",
            "sgd",
            "--momentum=0.5",
            "--hidden=64",
            "--layers=2",
            "--activation=tanh",
            "--batch-size=16.0",
            "--weight-decay=0.0001",
            "--dropout=0.25",
            "--epochs=12",
            "--seed=9",
        ])
        .unwrap();
        let c = a.config();
        assert!((c.lr - 0.01).abs() < 1e-15);
        assert_eq!(c.optimizer, Kind::Sgd);
        assert_eq!(
            (c.hidden, c.layers, c.batch_size, c.epochs, c.seed),
            (64, 2, 16, 12, 9)
        );
        assert_eq!(c.activation, Activation::Tanh);
        assert!((c.dropout - 0.25).abs() < 1e-15);
    }

    #[test]
    fn bad_flags_are_usage_errors_with_exit_status_2() {
        for bad in [
            &["--lr=0"][..],
            &["--lr=-1"],
            &["--lr=abc"],
            &["--lr=inf"],
            &["--lr=NaN"],
            &["--hidden=0"],
            &["--hidden=1.5"],
            &["--hidden=99999"],
            &["--layers=9"],
            &["--batch-size=-3"],
            &["--dropout=1"],
            &["--momentum=1.2"],
            &["--weight-decay=-0.1"],
            &["--epochs=0"],
            &["--optimizer=rmsprop"],
            &["--seed=-1"],
            &["--unknown=1"],
            &["positional"],
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}: {err}");
        }
    }
}
