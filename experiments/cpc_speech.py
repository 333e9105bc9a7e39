"""CPC on the spoken digits (`speech`): raw 16 kHz waveforms, a 5-layer strided 1-D CNN
(160×, one 64-channel frame per 10 ms) and a GRU context, predicting K = 8 frames ahead.

python -m ssl_jax.train --config experiments/cpc_speech.py --workdir runs/cpc_speech

See docs/cpc.md for the readout (word and speaker, context and features, against a randomly
initialised encoder and MFCCs).
"""

import ml_collections

from ssl_jax.config import base_config


def get_config():
    c = base_config()
    c.dataset = "speech"
    c.batch_size = 32
    c.num_steps = 400
    c.log_every = 25
    c.checkpoint_every = 200

    c.model = ml_collections.ConfigDict(
        dict(
            name="conv1d_audio",
            widths=(32, 32, 64, 64, 64),  # narrow early layers: they see the most frames
            kernels=(10, 8, 4, 4, 4),
            strides=(5, 4, 2, 2, 2),
            norm="layer",
        )
    )
    c.objective = ml_collections.ConfigDict(
        dict(
            name="cpc",
            context="gru",  # or "transformer" (causal self-attention)
            context_dim=64,
            prediction_steps=8,  # K: offsets 1..K, one W_k each (80 ms ahead at 10 ms frames)
            num_times=16,  # anchor times per sequence and step; 0: every time step
            transformer_depth=2,
            transformer_heads=4,
        )
    )

    c.optim.name = "adamw"
    c.optim.lr = 2e-3
    c.optim.warmup_steps = 20
    c.optim.weight_decay = 0.0
    c.readout.l2_grid = (1.0, 0.1, 0.01, 0.001)
    return c
