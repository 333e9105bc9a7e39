"""Test-session setup: 8 fake CPU devices, so multi-device tests run anywhere.

The flag must be set before JAX initialises its backend; tests that want one device build a
one-device mesh (``num_devices=1``).

Compilation dominates the tiny runs of the suite. Programs are compiled at LLVM level 1
(`tests.configs.TEST_XLA_FLAGS`), and many tests (and the training subprocesses they start,
which inherit the environment) compile the same programs: one persistent compilation cache
for the whole session, shared by the xdist workers, compiles each program once. A cached
executable is the very program compiled fresh, so bitwise comparisons are unaffected. It keeps
programs of any compile time (JAX's default skips those under a second): the dozens of
training subprocesses each compile the same small programs otherwise.
"""

import os
import tempfile

# One BLAS thread per process: the two xdist workers already use both cores, and OpenBLAS's
# own threads on top of them make each small SVD or QR hundreds of times slower (measured:
# a 12544×40 QR 0.3-0.9 s instead of 3-6 ms). The variables reach the subprocesses the tests
# start; threadpoolctl limits the BLAS already loaded in this one (a plugin may import NumPy
# before this file).
for _blas in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_blas, "1")

from tests.configs import xla_flags  # noqa: E402

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + xla_flags(8)).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
_SESSION = os.environ.get("PYTEST_XDIST_TESTRUNUID", str(os.getpid()))
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"ssl_jax_jit_{_SESSION}")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import pytest  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

threadpool_limits(1)

from ssl_jax.data import load_dataset  # noqa: E402
from tests.configs import REPO, tiny_config  # noqa: E402, F401


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def mnist():
    return load_dataset("mnist_subset")


# The longest tests (a minute or more each on 2 cores), handed to the workers first: started
# last, one of them would keep a worker busy after the other has run out of tests.
LONGEST_FIRST = (
    "tests/test_exactness.py",
    "tests/test_notebook.py",
    "tests/test_learning.py",
    "tests/test_multiprocess.py",
    "tests/test_evaluation_protocols.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
