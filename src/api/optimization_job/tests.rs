//! Tests of the OptimizationJob loader.
