"""Content vs style on 3D Shapes through TFDS (prepared under $TFDS_DATA_DIR; notes 004, 003):
experiments/content_style_colour_digits_categorical.py where the content is the object's shape
(4: cube, cylinder, sphere, capsule) and the style its hue (10), read from the dataset's
``label_shape`` and ``label_object_hue`` ClassLabel features (``data.label_features``). The
images are resized from 64×64 to 32×32 on the host. 3D Shapes has one split of 480,000
renders; the last 10 % is held out for the readout, which probes both codes on the shape
(``labels``) and the hue (``hue``). The floor's and wall's hues, the object's scale and the
camera angle vary too and belong to neither code.

python -m ssl_jax.train --config experiments/content_style_shapes3d_tfds.py \
    --workdir runs/content_style_shapes3d
"""

import os

from ssl_jax.config import load_config


def get_config():
    c = load_config(
        os.path.join(os.path.dirname(__file__), "content_style_colour_digits_categorical.py")
    )
    c.dataset = "tfds:shapes3d:train[:90%]"
    c.data.heldout_split = "train[90%:]"
    c.data.image_size = 32
    c.data.label_features = ("labels=label_shape", "hue=label_object_hue")
    c.objective.style_label = "hue"
    c.num_steps = 10_000  # 3 passes over the 432,000 training renders at batch 128
    c.log_every = 200
    c.checkpoint_every = 2000
    return c
