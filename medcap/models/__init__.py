"""One module per paper: a subclassed functional keras.Model, its presets and its task."""
