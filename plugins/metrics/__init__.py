"""Metrics of translations (kind ``metric``) and feature extractors (kind ``feature_extractor``).

Each metric is a class: its constructor takes the recipe's ``args``, its instances are called on
an :class:`unpaired.metrics.TranslationSet` and return ``{key: float}``; ``needs`` names what the
set must provide and ``better`` which way each key improves.

- feature space (``distribution``): ``fid``, ``kid``, ``diversity``;
- classification (``classification``): ``classifier`` (the judge's verdict on translations),
  ``content_class`` (does a translation show its input's class),
  ``label_map`` and ``edges`` (per-pixel scores against aligned true label/edge maps);
- pixel similarity (``pixel``): ``cycle``, ``identity``, ``paired``.

Feature extractor: ``inception``, the standard FID Inception-v3 from a local weights file.
"""

from unpaired import Component, hookimpl

from .classification import ClassifierScore, ContentClass, EdgeScore, LabelMapScore
from .distribution import FID, KID, Diversity
from .inception import InceptionFeatures
from .pixel import CycleConsistency, IdentityPreservation, PairedSimilarity

METRICS = {
    "fid": FID,
    "kid": KID,
    "diversity": Diversity,
    "classifier": ClassifierScore,
    "content_class": ContentClass,
    "label_map": LabelMapScore,
    "edges": EdgeScore,
    "cycle": CycleConsistency,
    "identity": IdentityPreservation,
    "paired": PairedSimilarity,
}


@hookimpl
def unpaired_components():
    return [Component("metric", name, factory) for name, factory in METRICS.items()] + [
        Component("feature_extractor", "inception", InceptionFeatures)]
