pub use ganfold_dcgan as dcgan;
