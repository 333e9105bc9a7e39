"""XLA settings ssl_jax applies before JAX starts its backends.

On CPU, XLA (jaxlib 0.10) hands convolutions to YNNPACK fusions by default. For the small
convolutional encoders trained on CPU here, their weight gradients run several times slower
than XLA's own convolution path. Disabling the fusions, with the pooling written as a reshape
and a max, took the SimCLR main job on MNIST from 0.49 to about 1.4 steps/s on a 2-core CPU;
on a faster 2-core CPU it runs at about 2.1 steps/s (the README's measurements). The flag only
concerns the CPU backend; GPUs and TPUs are unaffected.

XLA reads ``XLA_FLAGS`` once, when the first computation starts a backend, so this must run
before any JAX computation: importing ``ssl_jax`` does it. A user's own setting of the flag
in ``XLA_FLAGS`` is kept; ``SSL_JAX_XLA_DEFAULTS=0`` leaves ``XLA_FLAGS`` untouched.
"""

import os

CPU_FLAGS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def apply_default_xla_flags(environ=os.environ) -> None:
    """Appends each flag of `CPU_FLAGS` to ``XLA_FLAGS`` unless it is set there already."""
    if environ.get("SSL_JAX_XLA_DEFAULTS", "1") == "0":
        return
    flags = environ.get("XLA_FLAGS", "")
    extra = [f"--{name}={value}" for name, value in CPU_FLAGS.items() if name not in flags]
    if extra:
        environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()
