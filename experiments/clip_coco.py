"""CLIP on COCO Captions (TFDS ``coco_captions``): the real-use config, in place of CIFAR-10
(CIFAR has no text). The TFDS reader (`ssl_jax.data.tfds`) gives the images and the captions.

Field mapping (TFDS ``coco_captions``, the 2014 images in Karpathy's splits: ``train`` 82,783
+ ``restval`` 30,504 images for training, ``val`` 5,000 held out; each image has ~5
captions):

- ``image`` (JPEG, variable size) → ``images``, resized to 224×224 on the host
  (``data.image_size``);
- ``captions/text`` (``data.text_feature``) → ``tokens``: one of the image's captions, drawn
  anew each epoch as a function of (seed, epoch, index), like the batch order (the ``val``
  images take their first caption), tokenized and encoded with a vocabulary of every caption
  of ``train+restval`` (`ssl_jax.data.captions.tokenize`, `build_vocabulary`, `encode`; id 0
  pads), cut or padded to ``data.text_length`` = the text model's ``max_length``, 77 ids. The
  first start builds the vocabulary (a pass over the training captions, images left
  undecoded) and caches it in the prepared data's version directory
  (``coco_captions/<version>/ssl_jax_vocabulary-captions_text-train+restval-<hash>.json``);
  later runs read it;
- no ``labels``: COCO's ``objects/label`` are several per image, so the readout is skipped;
  evaluate by zero-shot transfer (`ssl_jax.objectives.clip.zero_shot_classify` on CIFAR-10
  with prompts encoded in this run's vocabulary) or by probing ``encoder`` on another
  dataset (``python -m ssl_jax.evaluate``).

Hyperparameters: Radford et al. 2021's smallest setting scaled to one machine: ResNet-50
image tower at 224 px; a 12-layer, 512-wide, 8-head text Transformer with a 77-token context;
a 512-d joint space; τ learnt from 0.07, the logit scale clipped at 100; AdamW lr 5e-4,
β₂ = 0.98, weight decay 0.2, 2,000 warmup steps then cosine, 32 epochs; the only augmentation
a random square crop. The paper's batch of 32,768 is 512 here (in-batch negatives: 511).

Prepare the data once: ``tfds build coco_captions --file_format=array_record`` (with the
``prepare`` extra installed), then

python -m ssl_jax.train --config experiments/clip_coco.py --workdir runs/clip_coco
"""

import ml_collections

from ssl_jax import augment
from ssl_jax.config import base_config, objective_defaults

TRAIN_IMAGES = 82_783 + 30_504


def get_config():
    c = base_config()
    c.dataset = "tfds:coco_captions:train+restval"
    c.data.image_size = 224
    c.data.heldout_split = "val"
    c.data.text_feature = "captions/text"
    c.batch_size = 512
    c.num_steps = 32 * TRAIN_IMAGES // c.batch_size
    c.log_every = 100
    c.checkpoint_every = 2000
    c.model = ml_collections.ConfigDict(dict(name="resnet50", stem="imagenet"))
    c.objective = ml_collections.ConfigDict(
        dict(
            name="clip",
            **{
                **objective_defaults("clip"),
                "embed_dim": 512,
                "text_model": dict(
                    name="token_transformer",
                    dim=512,
                    depth=12,
                    num_heads=8,
                    pool="mean",
                    max_length=77,
                ),
            },
        )
    )
    # The reader pads and cuts the captions to the text model's context; a reference, so the
    # two stay equal when the command line sets either.
    c.data.text_length = c.objective.text_model.get_ref("max_length")
    c.aug = augment.default_config()
    c.aug.num_global = 1
    c.aug.global_scale = (0.5, 1.0)
    c.aug.ratio = (1.0, 1.0)
    c.aug.flip_prob = 0.0
    c.aug.jitter_prob = 0.0
    c.aug.grayscale_prob = 0.0
    c.aug.blur_prob = 0.0
    c.optim.name = "adamw"
    c.optim.lr = 5e-4
    c.optim.b2 = 0.98
    c.optim.weight_decay = 0.2
    c.optim.warmup_steps = 2000
    return c
