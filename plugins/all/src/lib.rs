pub use ganfold_dcgan as dcgan;
pub use ganfold_mmgan as mmgan;
