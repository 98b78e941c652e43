"""Data plumbing of multi-domain datasets (StarGAN v2's): N named domains, labels, references.

A multi-domain dataset plugin subclasses :class:`MultiDomainData`: it says which domains it has
(``domain_names``) and gives each domain's images (``domain(k, split)``, items ``(image, name)``
as a two-domain plugin's); this class gives the rest — what a training sample provides to the
recipe's graph, the training samples, the labels by name, the sample grids' inputs.

Each training sample is what StarGAN v2's two loaders give an iteration (clovaai/stargan-v2,
``core/data_loader.py``): a source image ``real`` with its domain ``domain``, and a reference
domain ``ref_domain`` with two independent images of it, ``ref`` and ``ref2``. Domains are
balanced: the source image is drawn domain by domain in turn, the reference domain uniformly (the
authors balance both loaders with a sampler weighted by the inverse domain frequency). Labels are
int64 positions in ``domain_names``. Every draw of sample i in epoch e is seeded by (seed, e, i),
as the two-domain pairs are: the same after a resume, whatever the number of workers.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from unpaired.data.pairs import _seed
from unpaired.errors import DataError


class DomainSamples(Dataset):
    """Training samples ``{real, domain, ref, ref2, ref_domain, name}`` from N domain datasets.

    Item i of epoch e: source domain ``i mod N``, a random image of it; a random reference domain
    and two random images of it; draws seeded by (seed, e, i). An epoch has N x the largest
    domain's size samples. The index is ``i`` or ``(e, i)`` (:class:`unpaired.data.pairs.EpochSampler`).
    """

    def __init__(self, domains: list[Dataset], seed: int = 0):
        self.domains, self.seed, self.epoch = domains, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.domains) * max(len(d) for d in self.domains)

    def __getitem__(self, index) -> dict:
        epoch, i = index if isinstance(index, tuple) else (self.epoch, index)
        k = len(self.domains)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed(self.seed, epoch, i))
            y = i % k
            source = self.domains[y]
            real, name = source[int(torch.randint(len(source), ()))]
            y_ref = int(torch.randint(k, ()))
            refs = self.domains[y_ref]
            ref, _ = refs[int(torch.randint(len(refs), ()))]
            ref2, _ = refs[int(torch.randint(len(refs), ()))]
        return {"real": real, "domain": torch.tensor(y), "ref": ref, "ref2": ref2, "ref_domain": torch.tensor(y_ref),
                "name": name}


def domain_label(names: list[str] | None, name) -> int | None:
    """The label of domain ``name`` among ``names``: an int (or digits) in range, or a name matched
    case-insensitively; None when neither. Without ``names``, any label stands for itself."""
    if isinstance(name, bool):
        return None
    if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
        return int(name) if names is None or 0 <= int(name) < len(names) else None
    lowered = [n.lower() for n in names or ()]
    return lowered.index(str(name).lower()) if str(name).lower() in lowered else None


class MultiDomainData:
    """What a multi-domain dataset plugin shares (see the module docstring). A subclass sets
    ``domain_names`` (a list of str) and defines ``domain(k, split)`` for labels k."""

    #: the values a training sample gives the recipe's graph, and which of them are images
    provides = ("real", "domain", "ref", "ref2", "ref_domain")
    image_values = ("real", "ref", "ref2")
    domain_names: list[str]

    def domain(self, name, split: str) -> Dataset:
        raise NotImplementedError

    def label(self, name) -> int:
        """The label of a domain given by name (case-insensitive) or by label.

        Raises:
            DataError: neither (lists the domains).
        """
        label = domain_label(self.domain_names, name)
        if label is None:
            listed = ", ".join(f"{i} {n}" for i, n in enumerate(self.domain_names))
            raise DataError(f"no domain '{name}'; the domains are {listed}.", key=str(name), code="unknown-domain")
        return label

    def training_samples(self, seed: int = 0) -> DomainSamples:
        """The training samples (:class:`DomainSamples`).

        Raises:
            DataError: a domain has no training images.
        """
        domains = [self.domain(k, "train") for k in range(len(self.domain_names))]
        for k, d in enumerate(domains):
            if len(d) == 0:
                raise DataError(f"domain {self.domain_names[k]} has no training images.", key=str(k), code="no-images")
        return DomainSamples(domains, seed)

    def sample_inputs(self, count: int) -> dict:
        """Fixed inputs for sample grids: one input (the first test image of domain 0) in every
        column, each column a target domain, with a reference image of it (the ``count``-th test
        image, so that another run's grid is comparable); CPU batches. A grid then shows the input
        across the target domains, and across styles where its rows draw style codes."""
        k = len(self.domain_names)
        tests = [self.domain(d, "test") for d in range(k)]
        real = tests[0][0][0]
        ref = torch.stack([t[count % len(t)][0] for t in tests])
        return {"real": real.expand(k, *real.shape).clone(), "domain": torch.zeros(k, dtype=torch.long), "ref": ref,
                "ref2": ref, "ref_domain": torch.arange(k)}
