"""Data layer: corpus formats, tags ↔ BIO, encoding, batching and the datamodule."""
