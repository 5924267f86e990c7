"""The typed schema of conf/: every knob's type (checked by Hydra as it composes) and range (checked right after).

Each group's yaml extends its node here through its defaults list (`defaults: [schema, _self_]`), so a value of
the wrong type (`train.max_steps=abc`) or a misspelled key is refused while Hydra composes. What a type cannot
say (`data.height` a multiple of 8, `validation.noise_mix` in [0, 1], a file that must exist) is each field's
`Rule`, checked by `validate` before any model is loaded, and by `check_value` for one value, e.g. the ends of
a searched range. Every refusal is one line naming the key, the value and what is accepted.

Library code never sees these classes: entrypoints pass plain values on (OmegaConf.to_container).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from functools import lru_cache
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, get_args, get_origin, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")  # as tav.models.loading reads them
SCORE_NAMES = ("text_alignment", "frame_consistency", "style_probe", "style_probe_worst", "warp_error", "flicker",
               "style_margin", "style_margin_worst", "world_style", "world_subject",
               "world_motion_error")  # what tav.metrics.ClipScorer computes (world_*: with world_truth)
WORLD_SCORE_NAMES = tuple(name for name in SCORE_NAMES if name.startswith("world_"))


class ConfigError(ValueError):
    """A setting that is refused; its message is one line naming the key, the value and what is accepted."""


@dataclass(frozen=True)
class Rule:
    """What a knob accepts beyond its type: a test and the words that say it."""

    accepts: Callable[[Any], bool]
    text: str


def at_least(low: float, what: str = "an integer") -> Rule:
    return Rule(lambda v: v >= low, f"{what} >= {low}")


def above(low: float) -> Rule:
    return Rule(lambda v: v > low, f"a number > {low}")


def between(low: float, high: float, high_open: bool = False) -> Rule:
    if high_open:
        return Rule(lambda v: low <= v < high, f"a number in [{low}, {high})")
    return Rule(lambda v: low <= v <= high, f"a number in [{low}, {high}]")


def one_of(*choices: str) -> Rule:
    return Rule(lambda v: v in choices, "one of " + ", ".join(choices))


NOT_EMPTY = Rule(lambda v: bool(str(v).strip()), "a non-empty string")
WORDS = Rule(lambda v: len(v) > 0 and all(str(x).strip() for x in v), "a non-empty list of non-empty strings")
SEEDS = Rule(lambda v: len(v) > 0 and all(x >= 0 for x in v), "a non-empty list of integers >= 0")
PIXELS = Rule(lambda v: v >= 8 and v % 8 == 0, "a multiple of 8, at least 8 (pixels; the VAE works on 8x8 blocks)")
GUIDANCE = Rule(lambda v: v >= 1, "a number >= 1 (exactly 1 turns classifier-free guidance off)")
COMPILE = Rule(lambda v: isinstance(v, bool) or v == "auto",
               "true, false or auto (auto: compiled in a sweep's trials, eager in a single run and on a CPU)")


def _lr_scheduler(name: str) -> bool:
    from diffusers.optimization import SchedulerType

    return name in {s.value for s in SchedulerType}


LR_SCHEDULER = Rule(_lr_scheduler, "a diffusers.optimization scheduler name (constant, constant_with_warmup, "
                                   "linear, cosine, cosine_with_restarts, polynomial, ...)")


def knob(default: Any, rule: Rule | None = None) -> Any:
    """A dataclass field with its Rule (lists and dicts get a factory, as dataclasses require)."""
    metadata = {"rule": rule} if rule else {}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class StyleLoraConfig:
    path: str = knob(MISSING, NOT_EMPTY)  # a LoRA file (diffusers/peft or kohya/A1111 format)
    scale: float = 1.0  # its weight when fused into the base model


@dataclass
class ModelConfig:
    # "world", "tiny", a cached hub id, a diffusers folder or a .safetensors/.ckpt file
    source: str = knob(MISSING, NOT_EMPTY)
    config: Optional[str] = None  # a single file's diffusers layout: a cached hub id or a local folder
    style_loras: List[StyleLoraConfig] = field(default_factory=list)  # fused into the base model before tuning


@dataclass
class DataConfig:
    video: Optional[str] = None  # an mp4; null = the shipped demo clip
    prompt: str = knob(MISSING, NOT_EMPTY)
    n_frames: int = knob(8, at_least(1))
    start: int = knob(0, at_least(0))
    stride: int = knob(1, at_least(1))
    height: int = knob(512, PIXELS)
    width: int = knob(512, PIXELS)


@dataclass
class TrainConfig:
    learning_rate: float = knob(3e-5, above(0))
    max_steps: int = knob(500, at_least(1))
    lr_scheduler: str = knob("constant", LR_SCHEDULER)
    lr_warmup_steps: int = knob(0, at_least(0))
    weight_decay: float = knob(1e-2, at_least(0, "a number"))
    adam_beta1: float = knob(0.9, between(0, 1, high_open=True))
    adam_beta2: float = knob(0.999, between(0, 1, high_open=True))
    adam_eps: float = knob(1e-8, above(0))
    max_grad_norm: float = knob(1.0, above(0))
    mixed_precision: str = knob("no", one_of("no", "fp16", "bf16"))
    gradient_checkpointing: bool = False
    frozen_dtype: str = knob("fp32", one_of("fp32", "bf16", "fp16"))
    compile: Any = knob(False, COMPILE)  # bool or "auto": a type OmegaConf cannot say, so the rule checks it
    compile_mode: str = knob("regional", one_of("regional", "full"))
    seed: int = knob(33, at_least(0))
    trainable_modules: List[str] = knob(["attn1.to_q", "attn2.to_q", "attn_temp"], WORDS)
    lora_rank: int = knob(0, at_least(0))
    device: str = knob("auto", one_of("auto", "cuda", "cpu"))


@dataclass
class ValidationConfig:
    every_n_steps: int = knob(100, at_least(1))
    prompts: List[str] = knob([], WORDS)
    seeds: List[int] = knob([33], SEEDS)
    inversion_steps: int = knob(50, at_least(1))
    sampling_steps: int = knob(50, at_least(1))
    guidance_scale: float = knob(12.5, GUIDANCE)
    noise_mix: float = knob(0.0, between(0, 1))
    invert_once: bool = False
    batch_size: int = knob(1, at_least(0))  # 0: as many clips as fit in free GPU memory, at most 8 (and a preview's)
    preview_steps: int = knob(0, at_least(0))  # 0: every validation renders the full panel
    preview_seeds: int = knob(1, at_least(1))
    keep_best_k: int = knob(2, at_least(1))
    fps: int = knob(8, at_least(1))


@dataclass
class ScorerConfig:
    model: str = knob("ViT-L-14", NOT_EMPTY)
    pretrained: Optional[str] = "openai"
    random_weights: bool = False
    seed: int = 0
    cache_dir: Optional[str] = None
    precision: str = knob("auto", one_of("auto", "fp32", "fp16", "bf16"))
    batch_size: int = knob(32, at_least(1))
    consistency: str = knob("all_pairs", one_of("all_pairs", "consecutive"))
    target_style: str = knob("a clip art illustration", NOT_EMPTY)
    source_style: str = knob("a photograph", NOT_EMPTY)
    style_reference_dir: Optional[str] = None
    flow_threads: int = knob(8, at_least(1))
    world_truth: bool = False  # also score with the toy world's ground truth (world_style, world_subject, ...)


@dataclass
class MetricsConfig:
    scorer: ScorerConfig = field(default_factory=ScorerConfig)
    score_weights: Dict[str, float] = knob({})  # score name -> weight; names checked in _check_metrics


@dataclass
class LoggerConfig:
    enabled: bool = True
    project: str = knob("tav-sweep", NOT_EMPTY)
    entity: Optional[str] = None
    mode: str = knob("auto", one_of("auto", "online", "offline", "disabled"))
    dir: Optional[str] = None
    tags: List[str] = knob([])
    log_videos: bool = True


@dataclass
class PromptsConfig:
    overlap: Optional[float] = knob(None, between(0, 1))
    source_subject: Optional[str] = knob(None, NOT_EMPTY)  # the caption's subject words; needed with an overlap
    source_style: str = ""
    edit_subjects: List[str] = knob([], WORDS)
    target_style: str = ""


@dataclass
class TrialConfig:
    storage: Optional[str] = None
    study_name: Optional[str] = None
    number: Optional[int] = knob(None, at_least(0))
    heartbeat_interval: int = knob(60, at_least(1, "a number of seconds"))
    artifact_dir: Optional[str] = None


@dataclass
class TavConfig:
    """The root of train.yaml and sweep.yaml."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    metrics: Optional[MetricsConfig] = None  # no metrics group: clips are rendered, not scored
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    trial: TrialConfig = field(default_factory=TrialConfig)
    output_dir: str = "${hydra:runtime.output_dir}"


GROUPS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "validation": ValidationConfig,
          "metrics": MetricsConfig, "logger": LoggerConfig}


def register(store: ConfigStore | None = None) -> None:
    """Store the root as `schema` and each group's node as `<group>/schema`, which conf/'s yaml extend."""
    store = store or ConfigStore.instance()
    store.store(name="schema", node=TavConfig, provider="tav")
    for group, node in GROUPS.items():
        store.store(group=group, name="schema", node=node, provider="tav")


register()


# --- checking values -------------------------------------------------------------------------------------

def show(value: Any) -> str:
    """A value as the user would type it on the command line."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return value if value.strip() else repr(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(show(v) for v in value) + "]"
    return str(value)


@dataclass(frozen=True)
class Setting:
    """One leaf of the schema: the dataclass holding it, its field name, its resolved type and its Rule."""

    node: type
    name: str
    hint: Any
    rule: Rule | None

    @property
    def optional(self) -> bool:
        return type(None) in get_args(self.hint)


def _inner_dataclass(hint: Any) -> type | None:
    """The dataclass a field nests (itself or Optional of it); a list of dataclasses is a leaf."""
    if get_origin(hint) in (list, List):
        return None
    return next((t for t in (hint, *get_args(hint)) if isinstance(t, type) and is_dataclass(t)), None)


@lru_cache(maxsize=None)
def settings(node: type = TavConfig, prefix: str = "") -> dict[str, Setting]:
    """Every leaf key of the schema ("train.max_steps") and its Setting."""
    found = {}
    hints = get_type_hints(node)
    for f in fields(node):
        inner = _inner_dataclass(hints[f.name])
        if inner is not None:
            found.update(settings(inner, f"{prefix}{f.name}."))
        else:
            found[prefix + f.name] = Setting(node, f.name, hints[f.name], f.metadata.get("rule"))
    return found


TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
              List[str]: "a list of strings", Dict[str, float]: "a mapping of names to numbers"}


def accepted(key: str) -> str:
    """What `key` accepts, in words ("" for a key the schema does not know)."""
    setting = settings().get(key)
    if setting is None:
        return ""
    bare = next((t for t in get_args(setting.hint) if t is not type(None)), None) if setting.optional else setting.hint
    text = setting.rule.text if setting.rule else TYPE_WORDS.get(bare, str(bare))
    return text + (" or null" if setting.optional else "")


def check_value(key: str, value: Any, name: str | None = None) -> None:
    """Raise ConfigError (one line) unless `value` is accepted for the config key `key`, e.g. the end of a
    searched range. `name` is how the user spelled the key, when not as in the config. Keys the schema does not
    hold (config groups, hydra.*) are left to Hydra."""
    setting = settings().get(key)
    if setting is None:
        return
    name = name or key
    if value is None and not setting.optional:
        raise ConfigError(f"{name} is empty (null); {name} takes {accepted(key)}")
    typed = OmegaConf.structured(setting.node)
    try:
        typed[setting.name] = value  # OmegaConf's own conversion and type check, as at composition
    except OmegaConfBaseException as error:
        reason = str(error).splitlines()[0]
        raise ConfigError(f"{name}={show(value)} is not accepted ({reason}); {name} takes {accepted(key)}") from None
    checked = typed[setting.name]
    if checked is not None and setting.rule is not None and not setting.rule.accepts(checked):
        raise ConfigError(f"{name}={show(value)} is not accepted; {name} takes {accepted(key)}")


# --- checking a composed config ------------------------------------------------------------------------------

def _get(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, throw_on_missing=False)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _check_model(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg.model, "source"):
        raise ConfigError("model.source is not set; set model.source=/path/file.safetensors (model=single_file), "
                          "a diffusers folder or a cached hub id, or choose model=world|tiny|sd14|sd15")
    source = cfg.model.source
    path = Path(source).expanduser()
    if path.suffix in SINGLE_FILE_SUFFIXES:
        if path.is_dir():
            raise ConfigError(f"model.source={source} is a directory, not a single-file checkpoint; set "
                              "model.source=/path/file.safetensors, or point it at a diffusers folder without the suffix")
        if not path.is_file():
            raise ConfigError(f"model.source={source} does not exist; set model.source=/path/file.safetensors")
        if path.suffix == ".safetensors":  # its header, read as the loader reads it
            from tav.models.single_file import read_shapes

            try:
                read_shapes(path)
            except ValueError as error:
                raise ConfigError(f"model.source={error}") from None
    elif source.startswith((".", "/", "~")) and not path.is_dir():
        raise ConfigError(f"model.source={source} does not exist; set it to a diffusers model folder, a "
                          f"{'/'.join(SINGLE_FILE_SUFFIXES)} file, a cached hub id, world or tiny")
    elif path.is_dir() and not (path / "model_index.json").is_file():
        raise ConfigError(f"model.source={source} is not a diffusers model folder (no model_index.json); point it "
                          "at a folder saved with save_pretrained, a cached hub id or a .safetensors/.ckpt file")


def _check_model_cached(cfg: DictConfig) -> None:
    """A hub id is in the Hugging Face cache: nothing is downloaded. (_check_model judges files and folders.)"""
    source = cfg.model.source
    path = Path(source).expanduser()
    if source in ("tiny", "world") or path.suffix in SINGLE_FILE_SUFFIXES or path.exists():
        return
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(source, "model_index.json")
    except ValueError:  # not a hub id either
        cached = None
    if not isinstance(cached, str):
        raise ConfigError(f"model.source={source} is not in the Hugging Face cache, and nothing is downloaded here; "
                          f"download it first (hf download {source}) or set model.source to a local folder or file")


def _check_style_loras(cfg: DictConfig) -> None:
    from tav.models.style_lora import check_style_loras

    try:
        check_style_loras(_get(cfg, "model.style_loras"))
    except (ValueError, OSError) as error:
        raise ConfigError(str(error)) from None


def check_video(video: str | None) -> None:
    """Raise ConfigError unless `video` (data.video) is a file, or null for the demo clip."""
    if video is None:
        return
    path = Path(video).expanduser()
    if path.is_dir():
        raise ConfigError(f"data.video={video} is a directory, not a video file; set data.video=/path/clip.mp4")
    if not path.is_file():
        raise ConfigError(f"data.video={video} does not exist; set data.video=/path/clip.mp4 (null: the demo clip)")


def check_clip(data: Mapping[str, Any]) -> None:
    """Raise ConfigError unless data.video (null: the demo clip) is a file that opens and holds the frames that
    data.start, data.stride and data.n_frames pick."""
    from tav.data.demo import DEMO_VIDEO
    from tav.data.video import open_video

    check_video(data.get("video"))
    try:
        open_video(data.get("video") or DEMO_VIDEO, data["n_frames"], data["start"], data["stride"])
    except (ValueError, OSError) as error:
        raise ConfigError(str(error)) from None


def _check_precision(cfg: DictConfig) -> None:
    # Without autocast a half weight would meet fp32 activations in the same op.
    if cfg.train.frozen_dtype != "fp32" and cfg.train.mixed_precision == "no":
        raise ConfigError(f"train.frozen_dtype={cfg.train.frozen_dtype} needs train.mixed_precision=bf16 or fp16, "
                          "got no; set both, or train.frozen_dtype=fp32")


def _check_device(cfg: DictConfig) -> None:
    if cfg.train.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("train.device=cuda, but torch sees no CUDA device; set train.device=cpu or auto")


def _check_prompts(cfg: DictConfig) -> None:
    if cfg.prompts.overlap is None and not cfg.validation.prompts:
        raise ConfigError("validation.prompts=[] renders nothing; give at least one prompt, or set prompts.overlap "
                          "to build them from prompts.edit_subjects")


def _check_metrics(cfg: DictConfig) -> None:
    metrics = cfg.get("metrics")
    if not metrics:
        return
    scorer = metrics.scorer
    if not scorer.random_weights and not scorer.pretrained and scorer.model != "world":
        raise ConfigError("metrics.scorer.pretrained=null with random_weights=false; set metrics.scorer.pretrained "
                          "to an open_clip tag or a weights file, or metrics.scorer.random_weights=true")
    unknown = sorted(set(metrics.score_weights) - set(SCORE_NAMES))
    if unknown:
        raise ConfigError(f"metrics.score_weights.{unknown[0]} names no score; metrics.score_weights takes weights "
                          f"of {', '.join(SCORE_NAMES)}")
    truths = sorted(name for name in metrics.score_weights if name in WORLD_SCORE_NAMES)
    if truths and not scorer.world_truth:
        raise ConfigError(f"metrics.score_weights weights {truths}, which need metrics.scorer.world_truth=true (the "
                          "toy world's ground truth); set it, or drop those weights")
    margins = sorted({"style_margin", "style_margin_worst"} & set(metrics.score_weights))
    if margins and scorer.style_reference_dir is None:
        raise ConfigError(f"metrics.score_weights weights {margins}, which need metrics.scorer.style_reference_dir; "
                          "set it to a folder of target-style images, or drop those weights")


def check_metrics_files(cfg: DictConfig) -> None:
    """The scorer's CLIP weights and style references, where this machine should have them."""
    metrics = cfg.get("metrics")
    if not metrics:
        return
    scorer = metrics.scorer
    if scorer.pretrained and not scorer.random_weights and scorer.model != "world":  # else the run would stop there
        from tav.metrics.backbone import find_weights

        try:
            find_weights(scorer.model, scorer.pretrained, scorer.cache_dir)
        except FileNotFoundError as error:
            raise ConfigError(str(error)) from None
    if scorer.style_reference_dir is not None and not Path(scorer.style_reference_dir).expanduser().is_dir():
        raise ConfigError(f"metrics.scorer.style_reference_dir={scorer.style_reference_dir} is not a folder; set it "
                          "to a folder of target-style images, or null")


def check_weight_file(path: Path, fix: str) -> None:
    """Raise ValueError naming `path` when it is missing, truncated or not a safetensors file; `fix` says what
    to do about it."""
    from safetensors import safe_open

    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; {fix}")
    try:
        with safe_open(str(path), "pt") as weights:
            weights.keys()
    except Exception as error:  # safetensors raises its own SafetensorError, or OSError when unreadable
        raise ValueError(f"{path} is corrupt or truncated ({error}); {fix}") from None


def check_writable(folder: str | Path, key: str) -> None:
    """Raise ConfigError unless `folder` exists as a writable folder or can be created."""
    path = Path(folder).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{key}={folder} cannot be created: {existing} is a file; set {key} to a writable folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}={folder} is not writable ({existing} is read-only to this user); set {key} to a "
                          "writable folder")


def _check_world_scoring(cfg: DictConfig) -> None:
    """The toy world's scorer (its CLIP, its ground truth) knows only the toy world's clips."""
    metrics = cfg.get("metrics")
    if not metrics or cfg.model.source == "world":
        return
    if metrics.scorer.world_truth or metrics.scorer.model == "world":
        raise ConfigError(f"metrics=world scores with the toy world's CLIP and ground truth, which say nothing of "
                          f"model.source={cfg.model.source} (experiment=demo, the default, selects metrics=world); add "
                          "experiment=tav_paper (the official recipe, metrics=default), or choose metrics=default "
                          "(metrics=tiny for a CPU check)")


# Checks that read several keys or the machine; each runs only when none of its keys is searched. The third field
# says the check reads this machine (files, CUDA): a sweep's dry run, planned on one machine for another, skips those.
CROSS_CHECKS: list[tuple[tuple[str, ...], Callable[[DictConfig], None], bool]] = [
    (("model.source", "model.config"), _check_model, True),
    (("model.style_loras",), _check_style_loras, True),
    (("model.source", "metrics"), _check_world_scoring, False),
    (("data.video", "data.n_frames", "data.start", "data.stride"), lambda cfg: check_clip(cfg.data), True),
    (("train.frozen_dtype", "train.mixed_precision"), _check_precision, False),
    (("train.device",), _check_device, True),
    (("prompts.overlap", "validation.prompts"), _check_prompts, False),
    (("metrics",), _check_metrics, False),
    (("metrics",), check_metrics_files, True),
    (("model.source",), _check_model_cached, True),
]


def _check_no_extra_keys(cfg: DictConfig, node: type = TavConfig, prefix: str = "") -> None:
    """Keys added with `+key=value` (Hydra opens the struct for them) that no code would read."""
    own = OmegaConf.select(cfg, prefix.rstrip(".")) if prefix else cfg
    if not isinstance(own, DictConfig):
        return
    hints = get_type_hints(node)
    names = [f.name for f in fields(node)]
    for key in own:
        if key == "hydra" and not prefix:
            continue
        if key not in names:
            raise ConfigError(f"{prefix}{key} is not a setting (added with +?); drop it, or check the spelling "
                              f"against tav/config_schema.py ({prefix.rstrip('.') or 'the root'} holds "
                              f"{', '.join(names)})")
        inner = _inner_dataclass(hints[key])
        if inner is not None:
            _check_no_extra_keys(cfg, inner, f"{prefix}{key}.")


def validate(cfg: DictConfig, searched: Collection[str] = (), machine: bool = True) -> None:
    """Raise ConfigError (one line) for the first setting of the composed `cfg` that is not accepted.

    Keys in `searched` are skipped: a sweep checks their ranges instead (check_value on each end). With
    `machine=False` the checks that read this machine (the files named, CUDA) are skipped."""
    _check_no_extra_keys(cfg)
    groups = {key.split(".")[0] for key in searched}
    for key, setting in settings().items():
        if key in searched or setting.rule is None or OmegaConf.select(cfg, key.split(".")[0]) is None:
            continue
        parent, _, leaf = key.rpartition(".")
        if OmegaConf.is_missing(OmegaConf.select(cfg, parent), leaf):
            if key == "model.source":
                _check_model(cfg)
            raise ConfigError(f"{key} is not set (???); set {key}=<{accepted(key)}>")
        check_value(key, _get(cfg, key))
    for keys, check, reads_machine in CROSS_CHECKS:
        if (machine or not reads_machine) and not any(k in searched or k in groups for k in keys):
            check(cfg)


def check_sweep(distributions: Mapping[str, Any], fixed: Mapping[str, str] | None = None,
                config: DictConfig | None = None, machine: bool = True) -> None:
    """Everything a sweep can check before its first trial; raises ConfigError (one line). The searched ranges'
    ends and choices and the fixed values against the schema; given the sweep's composed `config`, its other
    settings (as `validate`) and, with `machine`, the files they name and its folder (hydra.sweep.dir)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for key, distribution in distributions.items():
        ends = list(getattr(distribution, "choices", ())) or [distribution.low, distribution.high]
        for end in ends:
            try:
                check_value(key, end)
            except ConfigError as error:
                raise ConfigError(f"search space '{key}' reaches outside what it accepts: {error}") from None
    for key, text in (fixed or {}).items():
        check_value(key, OverridesParser.create().parse_overrides([f"{key}={text}"])[0].value())
    if config is not None:
        validate(config, searched=[*distributions, *(fixed or {})], machine=machine)
        sweep_dir = OmegaConf.select(config, "hydra.sweep.dir")
        if sweep_dir and machine:
            check_writable(sweep_dir, "hydra.sweep.dir")
