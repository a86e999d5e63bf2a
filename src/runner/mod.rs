//! Where trials run. So far: [`local`], one trial as a process group on
//! this machine.

pub mod local;
pub mod replicas;
