//! `ktune crds` and `ktune rbac`: the install manifests generated from
//! ktune's code (the CRDs from the Rust types, the RBAC rules from the
//! controller's needs and the trial-kind table).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::api::{ApiGroup, crd};

/// Arguments of `ktune crds`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The API group: `ktune.dev`, or `kubeflow.org` for the Katib
    /// drop-in (CRDs that accept everything Katib's accept).
    #[arg(long, default_value = "ktune.dev", value_parser = super::controller::parse_group)]
    api_group: ApiGroup,
    /// Write one file per CRD into this folder instead of printing them
    /// (`kubeflow.org/` below it for Katib's group).
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Kubeflow Trainer's OptimizationJob CRD instead (for
    /// `ktune controller --optimization-jobs` on a cluster without
    /// Trainer's own; `trainer.kubeflow.org/` below `--out-dir`).
    #[arg(long, conflicts_with = "api_group")]
    optimization_job: bool,
}

pub(super) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut documents = Vec::new();
    let definitions = if args.optimization_job {
        vec![crd::optimization_job().context("the OptimizationJob CRD")?]
    } else {
        crd::all(args.api_group)
    };
    for (file, definition) in definitions {
        let yaml = crd::to_yaml(&definition).context("serialising a CRD")?;
        documents.push((file, yaml));
    }
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (file, yaml) in &documents {
            let path = dir.join(file);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    for (i, (_, yaml)) in documents.iter().enumerate() {
        if i > 0 {
            writeln!(out, "---")?;
        }
        out.write_all(yaml.as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `ktune rbac`.
#[derive(Debug, clap::Args)]
pub struct RbacArgs {
    /// The API group the controller serves (`kubeflow.org`: the RBAC of
    /// deploy/katib/).
    #[arg(long, default_value = "ktune.dev", value_parser = super::controller::parse_group)]
    api_group: ApiGroup,
}

/// `ktune rbac`: the controller's RBAC manifest, as `deploy/rbac.yaml`
/// (and `deploy/katib/rbac.yaml`) holds it.
pub(super) fn rbac(args: &RbacArgs) -> anyhow::Result<ExitCode> {
    std::io::stdout()
        .lock()
        .write_all(crate::controller::rbac::manifest(args.api_group).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
