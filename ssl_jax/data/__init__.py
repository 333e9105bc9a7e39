"""Data: datasets by name (`load_dataset`) and the host-to-mesh batch pipeline."""

from ssl_jax.data.datasets import Dataset, load_dataset, validate_images

__all__ = ["Dataset", "load_dataset", "validate_images"]
