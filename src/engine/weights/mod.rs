//! Weights files: reading `.bpk`, `.safetensors` and PyTorch state dicts, transferring them
//! into a model with a report.

mod read;
mod resample;
mod source;
mod transfer;

pub use read::{
    FileTensor, Format, LAYOUT_KEY, PYTORCH_LAYOUT, WeightsError, WeightsFile, format_of,
};
pub use resample::{resample_positions, square_grid};
pub use source::WeightsSource;
pub use transfer::{GroupTransfer, Mismatch, TransferReport, TransferRules, transfer, transpose};
