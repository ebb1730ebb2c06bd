"""The model stage (torch): the autoencoder, its checkpoint format, model space, inference, training,
and the ``Scorer`` that runs it on mask volumes.

- ``autoencoder``: the convolutional autoencoder of Galati & Zuluaga and its checkpoint format;
- ``preprocess``: the model-space transform of a label volume and its exact inverse (torch tensors);
- ``inference``: the inference form of the network (folded BatchNorm, channels-last, precision);
- ``training``: datasets, loss and the training loop;
- ``scorer``: ``Scorer`` (checkpoint loaded once, batches of volumes scored through
  ``monitor.qc.scores.score_volume``).

Example:
    >>> from monitor.model import Scorer
    >>> result = Scorer().score(load_mask("patient101_ED.nii.gz"))
"""

from monitor.model.autoencoder import (
    CheckpointMeta,
    ConvAutoencoder,
    default_checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from monitor.model.scorer import ScoredVolume, Scorer

__all__ = [
    "CheckpointMeta",
    "ConvAutoencoder",
    "ScoredVolume",
    "Scorer",
    "default_checkpoint_path",
    "load_checkpoint",
    "save_checkpoint",
]
