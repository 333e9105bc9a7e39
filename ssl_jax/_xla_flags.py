"""XLA settings ssl_jax applies before JAX starts its backends.

On CPU, XLA (jaxlib 0.10) hands convolutions to YNNPACK fusions by default. For the small
convolutional encoders trained on CPU here, their weight gradients run several times slower
than XLA's own convolution path. Disabling the convolution fusions, with the pooling written
as a reshape and a max, took the SimCLR main job on MNIST from 0.49 to about 1.4 steps/s on a
2-core CPU. YNNPACK's reductions are kept (``ynn_fusion_type=reduce``): XLA's own path splits
each long reduction (batch norm's mean and variance, in the forward and the backward pass)
into a strided ``reduce-window`` loop, and YNNPACK's kernels replace those. On a 2-core Xeon
with AVX-512 that took the main job from 2.25 to 3.0 steps/s and the ResNet-18 SimCLR step
(batch 256) from 15.9 to 23.4 images/s (29.4 with the ResNet's ReLU of
``models/activations.py``; docs/performance.md). YNNPACK's element-wise fusions
stay off: they reject some of the transposed layouts of a training step. The flag only
concerns the CPU backend; GPUs and TPUs are unaffected.

XLA reads ``XLA_FLAGS`` once, when the first computation starts a backend, so this must run
before any JAX computation: importing ``ssl_jax`` does it. A user's own setting of the flag
in ``XLA_FLAGS`` is kept; ``SSL_JAX_XLA_DEFAULTS=0`` leaves ``XLA_FLAGS`` untouched.
"""

import os

CPU_FLAGS = {"xla_cpu_experimental_ynn_fusion_type": "reduce"}


def apply_default_xla_flags(environ=os.environ) -> None:
    """Appends each flag of `CPU_FLAGS` to ``XLA_FLAGS`` unless it is set there already."""
    if environ.get("SSL_JAX_XLA_DEFAULTS", "1") == "0":
        return
    flags = environ.get("XLA_FLAGS", "")
    extra = [f"--{name}={value}" for name, value in CPU_FLAGS.items() if name not in flags]
    if extra:
        environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()
