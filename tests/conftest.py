"""Test-session setup: 8 fake CPU devices, so multi-device tests run anywhere.

The flag must be set before JAX initialises its backend; tests that want one device build a
one-device mesh (``num_devices=1``).
"""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402

from ssl_jax.data import load_dataset  # noqa: E402
from tests.configs import REPO, tiny_config  # noqa: E402, F401


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def mnist():
    return load_dataset("mnist_subset")
