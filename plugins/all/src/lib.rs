//! Links every ganfold plugin so that their `inventory` registrations are seen:
//! `use ganfold_plugins as _;` in a binary, test or notebook.

pub use ganfold_dcgan as dcgan;
pub use ganfold_improved_gan as improved_gan;
pub use ganfold_lccgan as lccgan;
pub use ganfold_lgan as lgan;
pub use ganfold_lsal as lsal;
pub use ganfold_mmgan as mmgan;
