"""Model loading backends and the built-in tiny model."""
