pub use ganfold_dcgan as dcgan;
pub use ganfold_lsal as lsal;
