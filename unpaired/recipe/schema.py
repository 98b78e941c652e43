"""The recipe schema: every key a recipe may set, with its type and default (OmegaConf structured
configs). ``docs/recipes.md`` explains each section; :mod:`unpaired.recipe.load` merges files into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING


@dataclass
class AugmentSpec:
    type: str = MISSING  # an augmentation plugin name (diffaugment)
    args: Dict[str, Any] = field(default_factory=dict)


@dataclass
class NetworkSpec:
    type: str = MISSING  # a generator or discriminator plugin name
    # generator | discriminator; unset: a discriminator if an adversarial term judges with it
    role: Optional[str] = None
    args: Dict[str, Any] = field(default_factory=dict)
    init: str = "normal"  # an init plugin name, or none (keep the plugin's own weights)
    init_gain: float = 0.02
    # a discriminator: every image it scores goes through this augmentation first (DiffAugment)
    augment: Optional[AugmentSpec] = None
    spectral_norm: bool = False  # spectral normalisation of every Conv/Linear weight (Miyato et al. 2018)


@dataclass
class ImageSpec:
    net: Optional[str] = None  # network applied ...
    input: Any = None  # ... to this image, or to these images (a list: net(a, b))
    output: Optional[str] = None  # the entry of the dict the network returns (named outputs)
    concat: Optional[List[str]] = None  # or: these images concatenated along channels
    random: Optional[str] = None  # or: drawn at random: normal | uniform | integer
    shape: List[int] = field(default_factory=list)  # random: each sample's shape ([] for a label)
    low: Optional[float] = None  # random uniform / integer: [low, high); defaults 0 and 1
    high: Optional[float] = None
    like: Optional[str] = None  # random: as many samples as this value has (default: the data's first)
    shared: bool = False  # random: one draw for the whole batch (UNSB's time step)
    hflip: Optional[str] = None  # or: this image mirrored left-right ...
    where: Optional[str] = None  # ... in the samples where this 0/1 value (N,) is 1 (default: all)
    op: Optional[str] = None  # or: a graph_op plugin run on input, without gradients ...
    networks: List[str] = field(default_factory=list)  # ... with these networks
    args: Dict[str, Any] = field(default_factory=dict)  # ... and these arguments


@dataclass
class LossTerm:
    adversarial: Optional[str] = None  # an adversarial_loss plugin name, or
    consistency: Optional[str] = None  # a consistency_loss plugin name, or
    penalty: Optional[str] = None  # a gradient_penalty plugin name (r1, gp, wgan_gp, zero_gp)
    args: Dict[str, Any] = field(default_factory=dict)
    # a number, or a schedule: {schedule: linear, start: 1, end: 0, length: 1000, per: iteration}
    weight: Any = 1.0
    every: int = 1  # a lazy term: computed on every k-th iteration only, its weight times k
    discriminator: Optional[str] = None  # adversarial, penalty: the discriminator network
    real: Optional[str] = None  # adversarial, discriminator side; penalty: real image
    fake: Optional[str] = None  # adversarial; penalty on interpolates: generated image
    real_label: Optional[str] = None  # a value passed to the discriminator with the real image: D(real, label)
    fake_label: Optional[str] = None  # ... and with the fake one (a domain label)
    pool: int = 0  # adversarial, discriminator side: image-pool size (0 = off)
    # adversarial, penalty: keyword args of the discriminator's calls on the real and on the fake images,
    # {real: {...}, fake: {...}} (e.g. UVCGAN2's queues: {fake: {queue: fake, update_queue: true}})
    discriminator_args: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    input: Optional[str] = None  # consistency: compared image ...
    target: Optional[str] = None  # ... and its target
    network: Optional[str] = None  # a network the loss uses itself (e.g. PatchNCE: the generator's features)
    networks: List[str] = field(default_factory=list)  # several networks the loss uses (a dict by name)
    share: Optional[str] = None  # use this other term's loss module (and its parameters) of the same step
    side: Optional[str] = None  # adversarial: generator | discriminator; unset: discriminator if the step trains it


@dataclass
class OptimizerSpec:
    type: str = "adam"
    args: Dict[str, Any] = field(default_factory=dict)
    groups: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # network or loss term -> args of its own (e.g. {M: {lr: 1e-6}})
    share: Optional[str] = None  # use this earlier step's optimizer (one Adam state for both steps' updates)


@dataclass
class StepSpec:
    networks: List[str] = MISSING
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    losses: Dict[str, Optional[LossTerm]] = field(default_factory=dict)
    every: int = 1  # run on every k-th iteration only (e.g. a generator step every 5 critic steps)
    repeat: int = 1  # run k times per iteration on the same batch
    # make anew the images whose networks an earlier step of this iteration updated (StarGAN v2's
    # steps each run their own passes); off: reuse them as made (CycleGAN's D judges the fakes
    # made before G's update, as the reference does)
    refresh: bool = False


@dataclass
class DataSpec:
    dataset: str = MISSING
    args: Dict[str, Any] = field(default_factory=dict)
    batch_size: int = 1
    num_workers: int = 2
    on_bad_file: str = "error"  # an unreadable training image stops training before it starts; "skip" drops it
    # two-domain data: each sample also gives real_A2 and real_B2, a second random image of each
    # domain drawn independently (UNSB's second sample)
    second_sample: bool = False


@dataclass
class SchedulerSpec:
    type: str = "constant"
    args: Dict[str, Any] = field(default_factory=dict)
    interval: str = "epoch"  # step the schedule after each epoch, or after each iteration


@dataclass
class TrainSpec:
    epochs: int = 200
    max_iterations: Optional[int] = None  # stop after this many iterations (all epochs counted; was max_steps)
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    # auto: bf16 where the device computes it natively, else fp32; bf16 scored within fp32's seed spread
    # on both embedded tasks (docs/quality.md). fp32 is the authors' numerics. Also bf16, fp16 (CUDA only).
    precision: str = "auto"
    channels_last: bool = False
    compile: bool = False
    # one call for several passes of a network at the same depth (a generator's fake and identity
    # images), for networks that declare ``per_sample = True``: faster for small images and batches
    # (the fashion demo), slower at 256x256 (docs/performance.md)
    batch_passes: bool = False
    deterministic: bool = False
    log_every: int = 50  # iterations between loss logs (the only host syncs for logging)
    sample_every: int = 500  # iterations between sample grids (and at the end)
    checkpoint_every: int = 1000  # iterations between checkpoints (and at each epoch's end)
    eval_every: Optional[int] = None  # epochs between evaluations (the eval section, unpaired_evaluate hooks), and at the end
    keep_checkpoints: int = 3
    report: bool = True  # write report.html (losses, samples, metrics) at the end of training
    nan_guard: bool = True
    max_nonfinite: int = 5  # non-finite iterations in a row before training stops


@dataclass
class PluginSpec:
    type: str = MISSING  # a plugin name of the entry's kind
    args: Dict[str, Any] = field(default_factory=dict)


@dataclass
class MetricSpec:
    type: Optional[str] = None  # a metric plugin; unset: the entry's own name (fid: {} is the fid metric)
    args: Dict[str, Any] = field(default_factory=dict)
    directions: List[str] = field(default_factory=list)  # only these directions (unset: all)


@dataclass
class EvalSpec:
    # Entries set to null are deleted. Empty: the recipe asks for no evaluation.
    metrics: Dict[str, Optional[MetricSpec]] = field(default_factory=dict)
    features: Optional[PluginSpec] = None  # a feature_extractor: the space of FID/KID and diversity
    classifier: Optional[PluginSpec] = None  # a classifier judging translations (torchscript: a file)
    classes: Dict[str, Any] = field(default_factory=dict)  # domain (A, B) -> its class, by name or index
    split: str = "test"
    num_images: Optional[int] = None  # the first N images of each domain's split (unset: all)
    batch_size: int = 50
    best: Optional[str] = None  # keep checkpoints/best by this metric: <direction>/<key>, or <key> (mean over directions)
    directions: List[str] = field(default_factory=list)  # unset: every inference direction named <X>to<Y>


@dataclass
class InitFromSpec:
    # A new run's networks start from another run's weights (docs/training.md, unpaired/runs.py).
    path: str = MISSING  # a run directory (its latest checkpoint) or a checkpoint directory
    networks: List[str] = field(default_factory=list)  # these networks only (unset: map's, or every network of the recipe)
    # network -> the source run's network it starts from, when the names differ (UVCGAN2's
    # pretrained {G_AB: encoder, G_BA: encoder}); unset: the same name
    map: Dict[str, str] = field(default_factory=dict)
    sha256: Optional[str] = None  # the weights file's SHA-256: recorded by training; when set, checked


@dataclass
class EmaSpec:
    # An exponential moving average of these networks (plugins/handlers/ema.py): saved, resumed
    # exactly, and used by evaluation, sample grids, translate and export unless told otherwise.
    networks: List[str] = MISSING
    decay: float = 0.999
    start: int = 0  # iterations before averaging begins (a copy until then)
    warmup: bool = False  # ramp the decay up (timm's warm-up)


@dataclass
class Recipe:
    name: str = "run"
    base: Optional[str] = None
    plugins: List[str] = field(default_factory=list)  # extra plugin modules to register
    plugin_dirs: List[str] = field(default_factory=list)  # where they are imported from (the recipe files' folders)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    out_dir: Optional[str] = None  # default runs/<name>
    data: DataSpec = field(default_factory=DataSpec)
    # Entries set to null (e.g. from the command line) are deleted after merging.
    networks: Dict[str, Optional[NetworkSpec]] = field(default_factory=dict)
    images: Dict[str, Optional[ImageSpec]] = field(default_factory=dict)
    steps: Dict[str, Optional[StepSpec]] = field(default_factory=dict)
    train: TrainSpec = field(default_factory=TrainSpec)
    samples: List[str] = field(default_factory=list)  # image names shown in sample grids
    # direction -> a generator, a chain of networks [E, D], or an image of the graph (made from one data image)
    inference: Dict[str, Any] = field(default_factory=dict)
    eval: EvalSpec = field(default_factory=EvalSpec)
    init_from: Optional[InitFromSpec] = None  # start a new run's networks from another run's weights
    # training-event handlers built from plugins of kind handler (e.g. ema), by a name that keys
    # their state in checkpoints; entries set to null are deleted
    handlers: Dict[str, Optional[PluginSpec]] = field(default_factory=dict)
    ema: Optional[EmaSpec] = None  # averaged networks (null: none)


#: Keys whose value is a mapping ("*": every entry), checked before merging so that a wrong shape is
#: named by its key rather than failing deep inside the merge; and the keys that are lists.
MAPPINGS = ("data", "data.args", "networks", "networks.*", "networks.*.args", "images", "images.*", "images.*.args", "steps",
            "steps.*", "steps.*.optimizer", "steps.*.optimizer.args", "steps.*.optimizer.groups", "steps.*.optimizer.groups.*", "steps.*.losses", "steps.*.losses.*", "train",
            "train.scheduler", "train.scheduler.args", "eval", "eval.metrics", "eval.metrics.*", "eval.features",
            "eval.classifier", "eval.classes", "inference", "init_from", "handlers", "handlers.*", "handlers.*.args", "ema")


LISTS = ("plugins", "samples", "ema.networks", "images.*.networks")
