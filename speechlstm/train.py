"""Training: feature cache, length-bucketed batches, Adam with warm-up and decay, clipping,
validation every epoch, early stopping, checkpoints with exact resume, logs and curves.

Exact resume: the batch order and SpecAugment draws of epoch ``e`` come from a generator seeded
with ``(seed, e)``, the kernels are deterministic for a given thread count, and the checkpoint holds
the weights and the full Adam state — so a resumed run continues bit-identically.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import config
from .alphabet import Alphabet
from .augment import Augmenter, spec_augment
from .ctc import ctc_loss
from .data import read_any
from .decoding import greedy_decode
from .device import check_device_name
from .errors import DataError, ModelError, ParameterError, check_int, check_real, error_line, is_int
from .features import FeatureConfig, base_features, compute_stats, normalize_and_stack
from .metrics import wer
from .model import save_model
from .nn import AcousticModel, Adam, _check_dropout, clip_grad_norm, frame_distillation_loss, log_softmax

__all__ = ["TrainConfig", "Trainer", "load_config", "FeatureCache", "load_teacher"]


def check_average_best(n) -> None:
    """``average_best`` is 0 (off) or how many epochs to average, at least two."""
    if not is_int(n) or n < 0 or n == 1:
        raise ParameterError(f"average_best must be 0 (off) or a number of epochs >= 2, got {n!r}")


def epoch_weights_path(out_dir: str, epoch: int) -> str:
    """Where a run with ``average_best`` keeps one epoch's weights: ``<out_dir>/epochs/epoch-NNN.npz``."""
    return os.path.join(out_dir, "epochs", f"epoch-{epoch:03d}.npz")


SPEC_AUGMENT_FREQ = ("cepstra", "mel", "both", "none")  # what a SpecAugment feature mask hides (TrainConfig.spec_augment_freq)
SELECT_BY = ("loss", "wer")  # what picks a run's best epoch on the dev set (TrainConfig.select_by)
# TrainConfig fields a resume fingerprint leaves out at their defaults (Trainer._fingerprint)
_ADDED_LATER = ("ema", "dropout", "select_by", "spec_augment_freq", "spec_augment_cepstra")


def _selection_fields(rec: dict, select_by: str) -> List[str]:
    """The log fields an epoch ranks by, in order: ``dev_loss``, or ``dev_wer`` then ``dev_loss``;
    ``train_loss`` without a dev set."""
    if "dev_loss" not in rec:
        return ["train_loss"]
    return ["dev_wer", "dev_loss"] if select_by == "wer" else ["dev_loss"]


def selection_key(rec: dict, select_by: str = "loss") -> List[float]:
    """How one epoch's log record ranks for ``select_by`` (lower is better): ``[dev loss]``, or
    ``[dev WER, dev loss]`` (WER first, the loss breaking ties); ``[training loss]`` without a dev set."""
    return [rec[k] for k in _selection_fields(rec, select_by)]


def best_epochs(history: List[dict], n: int, select_by: str = "loss") -> Tuple[List[int], str]:
    """The ``n`` best epochs of a run's log (``log.jsonl`` records) by :func:`selection_key` (ties to
    the earlier epoch), in epoch order, and the key they were ranked by (``dev_loss``, ``dev_wer`` or
    ``train_loss``)."""
    ranked = sorted(history, key=lambda r: (selection_key(r, select_by), r["epoch"]))
    return sorted(r["epoch"] for r in ranked[:n]), _selection_fields(history[0], select_by)[0]


def load_teacher(name: str, fcfg: FeatureConfig, alphabet: Alphabet):
    """The model ``name`` (path or shipped name) as a distillation teacher for a run with front end
    ``fcfg`` and ``alphabet``: refuses one whose front end (normalisation aside) or alphabet differs,
    since its frames must line up with the network's, label for label.  Raises :class:`ModelError`
    (unreadable model) or :class:`ParameterError` (it does not fit)."""
    from .model import load_model

    try:
        teacher = load_model(name)
    except ModelError as exc:
        raise ModelError(f"teacher: {exc}") from None
    mine, theirs = fcfg.to_dict(), teacher.features.to_dict()
    mine.pop("cmvn"), theirs.pop("cmvn")  # the teacher normalises its features its own way
    if mine != theirs:
        diff = sorted(k for k in mine if mine[k] != theirs.get(k))
        raise ParameterError(f"teacher {teacher.path}: its feature settings differ from this run's in {diff}")
    if teacher.alphabet != alphabet:
        raise ParameterError(f"teacher {teacher.path}: its alphabet {teacher.alphabet!r} differs from this "
                             f"run's {alphabet!r}")
    return teacher


@dataclass
class TrainConfig:
    """Everything a training run needs (``speechlstm train --config CONFIG.toml``)."""

    train: List[str] = field(default_factory=list)  # manifests or corpus folders
    dev: List[str] = field(default_factory=list)
    out_dir: str = "runs/model"
    cache_dir: str = ""  # default: <out_dir>/cache
    noise: List[str] = field(default_factory=list)  # folders of background-noise clips
    augment_copies: int = 1  # augmented copies per clip, besides the clean one (a manifest row's "copies" overrides it)
    augment: dict = field(default_factory=dict)  # Augmenter fields (probabilities, ranges)
    features: dict = field(default_factory=dict)  # FeatureConfig fields
    hidden_size: int = 128
    num_layers: int = 2
    bidirectional: bool = True
    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    warmup_steps: int = 300
    lr_decay: float = 0.92  # per epoch after warm-up
    min_lr: float = 5e-5
    clip: float = 5.0
    weight_decay: float = 0.0
    ema: float = 0.0  # decay of an exponential moving average of the weights (e.g. 0.999; 0: off);
    # when on, dev evaluation, model selection and the exported model use the averaged weights
    dropout: float = 0.0  # in training, drop each LSTM layer's output with this probability (0: off)
    patience: int = 5  # epochs without dev improvement before stopping
    select_by: str = "loss"  # what "improvement" and the kept epoch (model.npz) go by: "loss" (dev CTC loss) or
    # "wer" (dev greedy-decoding WER, the loss breaking ties); without a dev set, the training loss
    average_best: int = 0  # N > 0: keep every epoch's weights (<out_dir>/epochs/) and, when training ends, also
    # write model-avg.npz, the mean of the N best epochs by select_by (checkpoint averaging; 0: off)
    spec_augment: bool = True
    spec_augment_freq: str = "cepstra"  # what its two feature masks hide: "cepstra" (up to 3 cepstral indices in
    # every group), "mel" (a band of up to config.SPEC_MEL_MASK_BANDS log-mel bands, set to the normalisation
    # mean through the DCT: SpecAugment's frequency mask proper), "both" (two mel masks, then the time and
    # cepstral masks) or "none" (time masks only)
    spec_augment_cepstra: int = 3  # widest cepstral mask, in cepstral indices (of n_mfcc): each draws a width in [0, this]
    teacher: str = ""  # a model (path or shipped name, an ensemble too) whose frame posteriors the network learns
    # to match beside the CTC loss (knowledge distillation; "": off); same features and alphabet
    distill_weight: float = 1.0  # weight of that term: loss = CTC + distill_weight * Σ_frames KL(teacher ‖ network)
    distill_temperature: float = 1.0  # τ: the teacher's posteriors softened to softmax(log p / τ), the network's scores
    # divided by τ in that term, and the term multiplied by τ² (Hinton et al., 2015); 1: plain KL
    seed: int = 0
    workers: int = 2  # processes computing features
    device: str = "cpu"  # "cpu", "cuda" (numba.cuda LSTM forward and backward) or "auto"
    vocabulary: List[str] = field(default_factory=list)
    name: str = ""
    progress: bool = True

    def __post_init__(self):  # on every construction (config file, code, tune's replace), before any work
        for name in ("hidden_size", "num_layers", "epochs", "batch_size", "patience", "workers"):
            check_int(name, getattr(self, name), 1)
        for name in ("warmup_steps", "augment_copies", "seed"):
            check_int(name, getattr(self, name), 0)
        check_real("lr", self.lr, 0.0, low_open=True)
        check_real("lr_decay", self.lr_decay, 0.0, 1.0, low_open=True)  # per epoch; 1: no decay
        check_real("min_lr", self.min_lr, 0.0)
        check_real("clip", self.clip, 0.0)  # 0: no clipping
        for name in ("bidirectional", "spec_augment", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(f"{name} must be true or false, got {getattr(self, name)!r}")
        check_real("ema", self.ema, 0.0, 1.0, high_open=True)
        check_real("weight_decay", self.weight_decay, 0.0, 1.0)  # decoupled (AdamW): each step shrinks by lr * this
        _check_dropout(self.dropout)
        if not isinstance(self.teacher, str):
            raise ParameterError(f"teacher must be a model path or name, got {self.teacher!r}")
        check_real("distill_weight", self.distill_weight, 0.0, 100.0)
        check_real("distill_temperature", self.distill_temperature, 0.0, 100.0, low_open=True)
        check_average_best(self.average_best)
        if self.spec_augment_freq not in SPEC_AUGMENT_FREQ:
            raise ParameterError(f"spec_augment_freq must be one of {list(SPEC_AUGMENT_FREQ)}, "
                                 f"got {self.spec_augment_freq!r}")
        check_int("spec_augment_cepstra", self.spec_augment_cepstra, 0, config.N_MELS)  # n_mfcc <= n_mels
        if self.select_by not in SELECT_BY:
            raise ParameterError(f"select_by must be one of {list(SELECT_BY)}, got {self.select_by!r}")
        if self.select_by == "wer" and not self.dev:
            raise ParameterError("select_by = 'wer' needs a dev set ('dev' manifests): without one there is no WER "
                                 "to select by")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        flat = {}
        for k, v in d.items():
            if isinstance(v, dict) and k not in ("features", "augment"):
                flat.update(v)  # allow [data], [model], [train] sections
            else:
                flat[k] = v
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(flat) - names)
        if unknown:
            raise ParameterError(f"unknown training config keys: {unknown}")
        cfg = cls(**flat)
        for k in ("train", "dev", "noise"):
            if isinstance(getattr(cfg, k), str):
                setattr(cfg, k, [getattr(cfg, k)])
        if not cfg.train:
            raise ParameterError("training config needs at least one 'train' manifest or folder")
        FeatureConfig.from_dict(cfg.features)  # validate early
        Augmenter.check_fields(cfg.augment)
        check_device_name(cfg.device)  # the GPU itself is looked for when training starts
        return cfg


def _assign(model: AcousticModel, values: dict) -> None:
    """Copy ``values`` into the model's parameter arrays in place (the optimizer holds those arrays)."""
    for k, v in model.params.items():
        v[...] = values[k]


def load_config(path: str) -> TrainConfig:
    import tomllib

    if not os.path.isfile(path):
        raise DataError(f"{path}: no such config file")
    try:
        with open(path, "rb") as f:
            d = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not valid TOML (not UTF-8 text)") from None
    base = os.path.dirname(os.path.abspath(path))
    try:
        cfg = TrainConfig.from_dict(d)
    except (ParameterError, TypeError) as exc:
        raise DataError(f"{path}: {exc}") from None

    def rel(p):
        return p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))

    cfg.train, cfg.dev, cfg.noise = [rel(p) for p in cfg.train], [rel(p) for p in cfg.dev], [rel(p) for p in cfg.noise]
    cfg.out_dir = rel(cfg.out_dir)
    if cfg.teacher and os.path.exists(rel(cfg.teacher)):  # a path beside the config; else a shipped name
        cfg.teacher = rel(cfg.teacher)
    if cfg.cache_dir:
        cfg.cache_dir = rel(cfg.cache_dir)
    return cfg


# ------------------------------------------------------------------------------------------------
# feature cache
# ------------------------------------------------------------------------------------------------
def _save_ragged(path: str, name: str, parts: List[np.ndarray], **extra) -> None:
    """Write arrays of different lengths (along axis 0) as one ``.npz``: ``name`` holds them
    concatenated, ``offsets`` where each starts; written to a temporary file, then renamed."""
    tmp = path + ".tmp.npz"
    np.savez(tmp, **{name: np.concatenate(parts)}, offsets=np.cumsum([0] + [p.shape[0] for p in parts]), **extra)
    os.replace(tmp, path)


def _load_ragged(path: str, name: str, *extra: str):
    """The arrays :func:`_save_ragged` wrote (a list), followed by the ``extra`` entries named."""
    with np.load(path, allow_pickle=False) as z:
        data, offs = z[name], z["offsets"]
        more = [z[k] for k in extra]
    return ([data[offs[i]:offs[i + 1]] for i in range(len(offs) - 1)], *more)


def _load_noise(folders: Sequence[str], sr: int) -> List[np.ndarray]:
    from .audio import load_audio
    from .config import AUDIO_EXTENSIONS

    clips = []
    for d in folders:
        for root, _, files in os.walk(d):
            for f in sorted(files):
                if f.lower().endswith(AUDIO_EXTENSIONS):
                    clips.append(load_audio(os.path.join(root, f), sr=sr))
    return clips


_WORKER = {}


def _init_worker(noise_folders, sr, augment):
    _WORKER["noise"] = _load_noise(noise_folders, sr)
    _WORKER["augment"] = augment


def _features_job(args):
    """Base features (MFCC + deltas, not normalised or stacked) of one clip and augmentation copy."""
    path, copy, seed, cfg_dict = args
    from .audio import load_audio

    cfg = FeatureConfig.from_dict(cfg_dict)
    try:
        y = load_audio(path, sr=cfg.sample_rate)
    except Exception as exc:  # reported, the clip is skipped
        return None, error_line(exc, path)
    warp = 1.0
    if copy > 0:
        rng = np.random.default_rng([seed, copy, int(hashlib.sha1(path.encode()).hexdigest()[:8], 16)])
        aug = Augmenter(noise_clips=_WORKER.get("noise", []), sr=cfg.sample_rate, **_WORKER.get("augment", {}))
        y = aug(y, rng)
        warp = aug.draw_warp(rng)
    base = base_features(y, cfg, warp=warp)
    return base, None


_FILE_DIGESTS: Dict[Tuple[str, int, int], str] = {}


def file_digest(path: str) -> str:
    """A digest of the bytes of the file at ``path`` ("-" if it cannot be read), remembered in this
    process per (path, size, modification time), so a file is read once however often it is asked for."""
    try:
        st = os.stat(path)
    except OSError:
        return "-"
    k = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if k not in _FILE_DIGESTS:
        try:
            with open(path, "rb") as f:
                _FILE_DIGESTS[k] = hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()
        except OSError:
            return "-"
    return _FILE_DIGESTS[k]


class FeatureCache:
    """Base features (MFCC+Δ+ΔΔ, un-normalised, un-stacked) of a manifest, computed once with a
    process pool and stored in one ``.npz`` per (rows, feature config, augmentation) key.

    A row counts by its path, text and the bytes of its file (:func:`file_digest`), not by the file's
    modification time: a corpus copied anew (same files, same paths) keeps its cache, a file whose
    bytes change gets new features.  (Until 2026-12-07 the key held the size and modification time,
    so caches written before then are not found and are computed once more.)
    """

    def __init__(self, cache_dir: str, cfg: FeatureConfig, *, workers: int = 2, noise: Sequence[str] = (),
                 seed: int = 0, progress: bool = True, augment: Optional[dict] = None):
        self.dir = cache_dir
        self.cfg = cfg
        self.workers = workers
        self.noise = list(noise)
        self.seed = seed
        self.progress = progress
        self.augment = dict(augment or {})
        Augmenter.check_fields(self.augment)  # validate now, not in the worker processes
        os.makedirs(cache_dir, exist_ok=True)

    @staticmethod
    def _copies(rows, copies: int) -> List[int]:
        """Augmented copies per row: the row's ``copies`` field where it has one, else ``copies``."""
        out = []
        for r in rows:
            c = r.get("copies", copies)
            if not is_int(c, 0):
                raise DataError(f"{r['path']}: 'copies' must be a non-negative integer, got {c!r}")
            out.append(int(c))
        return out

    def _key(self, rows, copies) -> str:
        h = hashlib.sha256()
        base_cfg = self.cfg.replace(cmvn="none")
        h.update(json.dumps([base_cfg.to_dict(), copies, self.seed, sorted(self.noise), self.augment],
                            sort_keys=True).encode())
        for r in rows:
            h.update(f"{r['path']}|{r['text']}|{file_digest(r['path'])}".encode())
            if "copies" in r:  # only then, so caches written before the field existed stay valid
                h.update(f"|copies={r['copies']}".encode())
        return h.hexdigest()[:20]

    def get(self, rows: List[dict], copies: int = 0):
        """Returns (list of base feature arrays, list of texts, list of rows) for the clean clips
        and ``copies`` augmented copies of each (a row's own ``copies`` field overrides it)."""
        n_copies = self._copies(rows, copies)
        path = os.path.join(self.dir, f"feats-{self._key(rows, copies)}.npz")
        if os.path.exists(path):
            feats, idx = _load_ragged(path, "X", "row_index")
            return feats, [rows[i]["text"] for i in idx], [rows[i] for i in idx]
        from tqdm import tqdm

        pairs = [(i, c) for c in range(max(n_copies, default=0) + 1) for i in range(len(rows)) if c <= n_copies[i]]
        owner = [i for i, _ in pairs]
        cfg_dict = self.cfg.replace(cmvn="none").to_dict()
        jobs = [(rows[i]["path"], c, self.seed, cfg_dict) for i, c in pairs]
        feats, idx, errors = [], [], []
        with ProcessPoolExecutor(max_workers=max(1, self.workers), initializer=_init_worker,
                                 initargs=(self.noise, self.cfg.sample_rate, self.augment)) as ex:
            it = ex.map(_features_job, jobs, chunksize=16)
            if self.progress:
                it = tqdm(it, total=len(jobs), desc="features", unit="clip")
            for i, (f, err) in zip(owner, it):
                if err:
                    errors.append(err)
                else:
                    feats.append(f)
                    idx.append(i)
        errors = list(dict.fromkeys(errors))  # a bad file fails alike for each of its copies: once
        for e in errors[:10]:
            print(f"speechlstm: warning: {e} (skipped)", file=sys.stderr)
        if len(errors) > 10:
            print(f"speechlstm: warning: {len(errors) - 10} more clips skipped", file=sys.stderr)
        if not feats:
            raise DataError("no usable clips in the training data")
        _save_ragged(path, "X", feats, row_index=np.array(idx))
        return feats, [rows[i]["text"] for i in idx], [rows[i] for i in idx]


def build_environment() -> dict:
    """What a training run ran on: Python and library versions, the BLAS, the CPU and thread count.
    Runs repeat bit for bit only on the same of these, so a model records them (``speechlstm info``)."""
    import platform
    from importlib import metadata

    import numba

    from .linalg import blas_backend, cpuinfo_field

    env = {"python": platform.python_version()}
    for pkg in ("numpy", "numba", "llvmlite", "scipy", "librosa", "soundfile"):
        try:
            env[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            env[pkg] = None
    env.update({"blas": blas_backend(), "cpu": cpuinfo_field("model name") or platform.processor() or "unknown",
                "cpu_family_model": "/".join(cpuinfo_field(k) or "?" for k in ("cpu family", "model")),
                "threads": numba.get_num_threads()})
    # the CPU Numba compiles its kernels for, and the kernels OpenBLAS picked: one "AMD EPYC" model name has
    # covered Zen 4 and Zen 5 machines, whose code (FMA, vector widths) rounds differently
    try:
        import llvmlite.binding as llvm

        env["numba_target_cpu"] = llvm.get_host_cpu_name()
    except Exception:  # pragma: no cover - llvmlite always has it; a record is no reason to fail a run
        env["numba_target_cpu"] = None
    try:
        from threadpoolctl import threadpool_info

        env["openblas"] = sorted({f"{i.get('version')} {i.get('architecture')}" for i in threadpool_info()
                                  if i.get("internal_api") == "openblas"})
    except Exception:  # pragma: no cover
        env["openblas"] = None
    return env


# ------------------------------------------------------------------------------------------------
# trainer
# ------------------------------------------------------------------------------------------------
class Trainer:
    def __init__(self, cfg: TrainConfig, *, alphabet: Optional[Alphabet] = None):
        self.cfg = cfg
        self.alphabet = alphabet or Alphabet()
        self.fcfg = FeatureConfig.from_dict(cfg.features)
        os.makedirs(cfg.out_dir, exist_ok=True)
        self.cache = FeatureCache(cfg.cache_dir or os.path.join(cfg.out_dir, "cache"), self.fcfg,
                                  workers=cfg.workers, noise=cfg.noise, seed=cfg.seed, progress=cfg.progress,
                                  augment=cfg.augment)
        self.log_path = os.path.join(cfg.out_dir, "log.jsonl")
        self.ckpt_path = os.path.join(cfg.out_dir, "checkpoint.npz")
        self.best_path = os.path.join(cfg.out_dir, "model.npz")
        self.average_path = os.path.join(cfg.out_dir, "model-avg.npz")

    # -- data -------------------------------------------------------------------------------------
    def _rows(self, sources):
        rows = []
        for s in sources:
            rows.extend(read_any(s))
        return rows

    def prepare(self):
        t0 = time.time()
        teacher = self._load_teacher() if self.cfg.teacher else None  # a bad teacher fails before any work
        train_rows = self._rows(self.cfg.train)
        dev_rows = self._rows(self.cfg.dev) if self.cfg.dev else []
        for r in train_rows + dev_rows:
            self.alphabet.encode(r["text"], normalize=False)  # fails early on stray characters
        base_train, self.train_texts, _ = self.cache.get(train_rows, self.cfg.augment_copies)
        self.teacher_probs = self._teacher_posteriors(teacher, base_train, train_rows) if teacher else None
        base_dev, self.dev_texts, _ = self.cache.get(dev_rows, 0) if dev_rows else ([], [], [])
        self.stats = compute_stats(base_train) if self.fcfg.cmvn == "global" else None
        self.train_x = [normalize_and_stack(b, self.fcfg, stats=self.stats) for b in base_train]
        self.train_scale = (self._feature_scales(base_train) if self.cfg.spec_augment_freq in ("mel", "both")
                            else None)
        self.dev_x = [normalize_and_stack(b, self.fcfg, stats=self.stats) for b in base_dev]
        self.train_y = [self.alphabet.encode(t, normalize=False) for t in self.train_texts]
        self.dev_y = [self.alphabet.encode(t, normalize=False) for t in self.dev_texts]
        self.prepare_seconds = time.time() - t0
        self.train_audio_seconds = sum(x.shape[0] for x in self.train_x) * float(self.fcfg.frame_period)

    def _feature_scales(self, base_train) -> List[np.ndarray]:
        """Per clip, the deviation each model feature was divided by in normalisation [dim] (mel masks
        act on the cepstra before it): the training set's for global CMVN, the clip's own for
        per-utterance CMVN, ones without normalisation.  Clips share one array where they can."""
        stack = self.fcfg.stack
        if self.fcfg.cmvn == "none":
            return [np.ones(self.fcfg.dim)] * len(base_train)
        if self.fcfg.cmvn == "global":
            return [np.tile(self.stats.std.astype(np.float64), stack)] * len(base_train)
        return [np.tile(compute_stats([b]).std.astype(np.float64), stack) for b in base_train]

    def _augment(self, xs, idx, rng):
        """SpecAugment of one batch's features ``xs`` (clips ``idx`` of the training set).  With "both", each
        clip's mel masks are drawn and applied first (no time masks), then its time and cepstral masks; with
        "none", its time masks alone."""
        mode, n = self.cfg.spec_augment_freq, self.fcfg.n_mfcc
        out = []
        for x, i in zip(xs, idx):
            if mode in ("mel", "both"):
                x = spec_augment(x, rng, time_masks=0 if mode == "both" else 2, n_cepstra=n,
                                 mel_bands=self.fcfg.n_mels, max_features=config.SPEC_MEL_MASK_BANDS,
                                 scale=self.train_scale[i])
            if mode != "mel":
                x = spec_augment(x, rng, n_cepstra=n, feature_masks=0 if mode == "none" else 2,
                                 max_features=self.cfg.spec_augment_cepstra)
            out.append(x)
        return out

    def _load_teacher(self):
        """The teacher model (:func:`load_teacher`), its file's SHA-256 in ``teacher_sha``."""
        teacher = load_teacher(self.cfg.teacher, self.fcfg, self.alphabet)
        with open(teacher.path, "rb") as f:
            self.teacher_sha = hashlib.file_digest(f, "sha256").hexdigest()
        return teacher

    def _teacher_posteriors(self, teacher, base_train, train_rows) -> List[np.ndarray]:
        """The teacher's frame posteriors of every training utterance (its ensemble's mixture, softened
        at ``distill_temperature`` in float64), on the features before SpecAugment, as float16; cached
        on disk beside the features."""
        from tqdm import tqdm

        from .transcribe import mix_log_probs

        tau = float(self.cfg.distill_temperature)
        soften = "" if tau == 1.0 else f"|temperature={tau!r}"  # τ = 1 keeps the key older caches were written under
        key = hashlib.sha256(f"{self.teacher_sha}|{self.cache._key(train_rows, self.cfg.augment_copies)}{soften}".encode())
        path = os.path.join(self.cache.dir, f"teacher-{key.hexdigest()[:20]}.npz")
        if os.path.exists(path):
            return _load_ragged(path, "P")[0]
        xs = [normalize_and_stack(b, teacher.features, stats=teacher.stats) for b in base_train]
        out: List[Optional[np.ndarray]] = [None] * len(xs)
        order = np.argsort([x.shape[0] for x in xs], kind="stable")
        bs = 64
        for s in tqdm(range(0, len(xs), bs), desc="teacher", unit="batch", disable=not self.cfg.progress):
            idx = order[s:s + bs]
            X, _, il, _ = self._pad([xs[i] for i in idx], [np.zeros(1, np.int64)] * len(idx))
            lps = np.stack([a.log_probs(X, il)[0] for a in teacher.members], axis=1)  # [B, M, T, C]
            for j, i in enumerate(idx):
                lp = mix_log_probs(lps[j, :, : il[j]])
                if tau != 1.0:
                    lp = log_softmax(lp.astype(np.float64) / tau)
                out[i] = np.exp(lp).astype(np.float16)
        _save_ragged(path, "P", out)
        return out

    def _batches(self, n_items: int, lengths: np.ndarray, epoch: int) -> List[np.ndarray]:
        rng = np.random.default_rng([self.cfg.seed, epoch])
        jitter = rng.uniform(0, 3, n_items)
        order = np.argsort(lengths + jitter, kind="stable")
        bs = self.cfg.batch_size
        batches = [order[i:i + bs] for i in range(0, n_items, bs)]
        perm = rng.permutation(len(batches))
        return [batches[i] for i in perm]

    @staticmethod
    def _pad(xs, ys):
        B = len(xs)
        T = max(x.shape[0] for x in xs)
        S = max(1, max(len(y) for y in ys))
        X = np.zeros((B, T, xs[0].shape[1]), np.float32)
        Y = np.zeros((B, S), np.int64)
        il = np.array([x.shape[0] for x in xs])
        tl = np.array([len(y) for y in ys])
        for i, (x, y) in enumerate(zip(xs, ys)):
            X[i, : x.shape[0]] = x
            Y[i, : len(y)] = y
        return X, Y, il, tl

    def _lr(self, step: int, epoch: int) -> float:
        c = self.cfg
        if step < c.warmup_steps:
            return c.lr * (step + 1) / c.warmup_steps
        return max(c.min_lr, c.lr * c.lr_decay ** epoch)

    # -- evaluation -------------------------------------------------------------------------------
    def evaluate(self, model: AcousticModel, xs, ys, texts, batch_size: int = 64) -> dict:
        model.eval()
        tot, n = 0.0, 0
        order = np.argsort([x.shape[0] for x in xs])
        out_hyps = [None] * len(xs)
        for s in range(0, len(xs), batch_size):
            idx = order[s:s + batch_size]
            X, Y, il, tl = self._pad([xs[i] for i in idx], [ys[i] for i in idx])
            logits, _ = model.forward(X, il)
            loss, _ = ctc_loss(logits, Y, il, tl)
            finite = np.isfinite(loss)
            tot += float(loss[finite].sum())
            n += int(finite.sum())
            lp = log_softmax(logits)
            for j, i in enumerate(idx):
                out_hyps[i] = greedy_decode(lp[j, : il[j]], self.alphabet)
        model.train()
        acc = float(np.mean([h == t for h, t in zip(out_hyps, texts)])) if texts else float("nan")
        return {"loss": tot / max(n, 1), "wer": wer(texts, out_hyps), "accuracy": acc}

    # -- run ------------------------------------------------------------------------------------
    def run(self, *, resume: bool = False) -> dict:
        from .linalg import training_blas

        with training_blas():  # "auto" trains on MKL wherever it is installed
            return self._run(resume)

    def _run(self, resume: bool) -> dict:
        from tqdm import tqdm

        c = self.cfg
        self.prepare()
        model = AcousticModel(self.fcfg.dim, c.hidden_size, len(self.alphabet), num_layers=c.num_layers,
                              bidirectional=c.bidirectional, seed=c.seed, dropout=c.dropout).to(c.device)
        opt = Adam(model.params, lr=c.lr, weight_decay=c.weight_decay)
        state = {"epoch": 0, "step": 0, "best": [math.inf], "best_epoch": -1, "bad_epochs": 0, "history": [],
                 "cpu_seconds": 0.0}
        ema = {k: v.copy() for k, v in model.params.items()} if c.ema else None
        fingerprint = self._fingerprint()
        state["fingerprint"] = fingerprint
        if resume and os.path.exists(self.ckpt_path):
            state = self._load_checkpoint(model, opt, fingerprint, ema)
        elif os.path.exists(self.log_path) and not resume:
            os.remove(self.log_path)
        lengths = np.array([x.shape[0] for x in self.train_x])
        n_params = model.num_parameters()
        while state["epoch"] < c.epochs and state["bad_epochs"] < c.patience:
            epoch = state["epoch"]
            rng = np.random.default_rng([c.seed, epoch, 1])
            model.dropout_rng = np.random.default_rng([c.seed, epoch, 2])  # per epoch: resume stays exact
            batches = self._batches(len(self.train_x), lengths, epoch)
            t0, cpu0 = time.time(), time.process_time()
            frames, tot_loss, n_utt, tot_kd = 0, 0.0, 0, 0.0
            bar = tqdm(batches, desc=f"epoch {epoch + 1}/{c.epochs}", unit="batch", disable=not c.progress)
            for bidx in bar:
                xs = [self.train_x[i] for i in bidx]
                if c.spec_augment:
                    xs = self._augment(xs, bidx, rng)
                X, Y, il, tl = self._pad(xs, [self.train_y[i] for i in bidx])
                model.zero_grad()
                logits, _ = model.forward(X, il)
                loss, grad = ctc_loss(logits, Y, il, tl)
                finite = np.isfinite(loss)
                B = len(bidx)
                if self.teacher_probs is not None:
                    P = np.zeros(logits.shape, np.float32)
                    for j, i in enumerate(bidx):
                        P[j, : il[j]] = self.teacher_probs[i]
                    kd, kd_grad = frame_distillation_loss(logits, P, il, temperature=c.distill_temperature)
                    grad += c.distill_weight * kd_grad
                    tot_kd += float(kd.sum())
                model.backward(grad / B, input_grad=False)
                clip_grad_norm(model.grads, c.clip)
                opt.step(model.grads, lr=self._lr(state["step"], epoch))
                if ema is not None:
                    for k, v in model.params.items():
                        e = ema[k]
                        e *= c.ema
                        e += (1.0 - c.ema) * v
                state["step"] += 1
                frames += int(il.sum())
                tot_loss += float(loss[finite].sum())
                n_utt += int(finite.sum())
                bar.set_postfix(loss=f"{tot_loss / max(n_utt, 1):.3f}", fps=f"{frames / (time.time() - t0):.0f}")
            bar.close()
            if ema is not None:  # evaluate (and export) the averaged weights; training goes on from the raw ones
                raw = {k: v.copy() for k, v in model.params.items()}
                _assign(model, ema)
            dev = self.evaluate(model, self.dev_x, self.dev_y, self.dev_texts) if self.dev_x else {}
            state["cpu_seconds"] += time.process_time() - cpu0
            rec = {"epoch": epoch + 1, "step": state["step"], "train_loss": tot_loss / max(n_utt, 1),
                   "lr": self._lr(state["step"], epoch), "seconds": time.time() - t0,
                   "frames_per_second": frames / (time.time() - t0)}
            if self.teacher_probs is not None:
                rec["train_distill"] = tot_kd / max(len(self.train_x), 1)
            rec.update({f"dev_{k}": v for k, v in dev.items()})
            state["history"].append(rec)
            with open(self.log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            metric = selection_key(rec, c.select_by)
            best = state["best"] if isinstance(state["best"], list) else [state["best"]]  # a checkpoint from before select_by
            if metric < best:
                state.update(best=metric, best_epoch=epoch + 1, bad_epochs=0)
                self._export(model, state, n_params)
            else:
                state["bad_epochs"] += 1
            if c.average_best:
                self._export(model, state, n_params, path=self._epoch_path(epoch + 1))
            if ema is not None:
                _assign(model, raw)
            state["epoch"] = epoch + 1
            self._save_checkpoint(model, opt, state, ema)
            self._plot(state["history"])
            if c.progress:
                print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in rec.items()}))
        if c.average_best and state["history"]:
            state["averaged_epochs"] = self._export_average(state["history"])
        return state

    def _epoch_path(self, epoch: int) -> str:
        return epoch_weights_path(self.cfg.out_dir, epoch)

    def _export_average(self, history) -> List[int]:
        """Write model-avg.npz: the mean weights of the ``average_best`` best epochs by ``select_by``
        (:func:`best_epochs`; ties to the earlier epoch).  Returns those epochs."""
        from .model import average_models, load_model

        epochs, key = best_epochs(history, self.cfg.average_best, self.cfg.select_by)
        paths = [self._epoch_path(e) for e in epochs]
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            raise DataError(f"{missing[0]}: no weights saved for that epoch (was the run started without "
                            "average_best?); cannot write the averaged model")
        snapshots = [load_model(p) for p in paths]
        m = average_models(snapshots, name=self.cfg.name) if len(snapshots) > 1 else snapshots[0]
        training = {k: v for k, v in snapshots[-1].meta.get("training", {}).items() if k not in ("dev", "best_epoch")}
        m.meta["training"] = {**training, "averaged_epochs": epochs, "averaged_by": key}
        m.meta["metrics"] = {}
        m.save(self.average_path)
        return epochs

    def _fingerprint(self) -> str:
        """What a resumed run must share with the checkpoint: config (less epochs and display
        settings) and the training data."""
        d = dataclasses.asdict(self.cfg)
        for k in ("epochs", "patience", "progress", "workers", "out_dir", "cache_dir", "device", "average_best"):
            d.pop(k, None)
        defaults = {f.name: f.default for f in dataclasses.fields(self.cfg)}
        for k in _ADDED_LATER:  # at their defaults, runs keep the fingerprint they had before the option existed;
            if d.get(k) == defaults[k]:  # otherwise they count (another select_by ranks epochs differently, ...)
                d.pop(k)
        if d.pop("teacher", ""):  # the teacher's contents count, not where it lies
            d["teacher_sha256"] = self.teacher_sha
        else:
            d.pop("distill_weight", None)
        if d.get("distill_temperature") == 1.0 or "teacher_sha256" not in d:  # as before the option existed
            d.pop("distill_temperature", None)
        h = hashlib.sha256(json.dumps(d, sort_keys=True).encode())
        h.update(str(len(self.train_x)).encode())
        h.update(str(sum(x.shape[0] for x in self.train_x)).encode())
        return h.hexdigest()[:16]

    def _export(self, model, state, n_params, path: Optional[str] = None):
        c = self.cfg
        training = {"epochs": state["epoch"] + 1, "best_epoch": state["best_epoch"], "parameters": n_params,
                    "train_utterances": len(self.train_x), "train_audio_hours": round(self.train_audio_seconds / 3600, 3),
                    "config": {k: v for k, v in dataclasses.asdict(c).items() if k not in ("progress",)},
                    "dev": {k: v for k, v in (state["history"][-1] if state["history"] else {}).items()}}
        if c.teacher:
            training["teacher_sha256"] = self.teacher_sha
        training["environment"] = build_environment()
        if path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        save_model(path or self.best_path, model, features=self.fcfg, alphabet=self.alphabet, stats=self.stats,
                   vocabulary=c.vocabulary or None, training=training, name=c.name)

    def _save_checkpoint(self, model, opt, state, ema=None):
        arrays = {f"param/{k}": v for k, v in model.params.items()}
        arrays.update({f"opt/{k}": v for k, v in opt.state_dict().items()})
        arrays.update({f"ema/{k}": v for k, v in (ema or {}).items()})
        arrays["state"] = np.frombuffer(json.dumps(state).encode(), np.uint8)
        tmp = self.ckpt_path + ".tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, self.ckpt_path)

    def _load_checkpoint(self, model, opt, fingerprint, ema=None):
        with np.load(self.ckpt_path, allow_pickle=False) as z:
            state = json.loads(z["state"].tobytes().decode())
            if state.get("fingerprint") != fingerprint:
                raise DataError(f"{self.ckpt_path}: the checkpoint was made with another configuration or data; "
                                f"use a new out_dir (or delete the checkpoint) to start afresh")
            _assign(model, {k: z[f"param/{k}"] for k in model.params})
            opt.load_state_dict({k[4:]: z[k] for k in z.files if k.startswith("opt/")})
            for k, v in (ema or {}).items():
                v[...] = z[f"ema/{k}"]
            return state

    def _plot(self, history):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ep = [h["epoch"] for h in history]
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
        ax[0].plot(ep, [h["train_loss"] for h in history], label="train")
        if "dev_loss" in history[0]:
            ax[0].plot(ep, [h["dev_loss"] for h in history], label="dev")
            ax[1].plot(ep, [h["dev_wer"] for h in history], label="dev WER")
            ax[1].set_ylim(bottom=0)
        ax[0].set_xlabel("epoch")
        ax[0].set_ylabel("CTC loss")
        ax[0].legend()
        ax[1].set_xlabel("epoch")
        if "dev_loss" in history[0]:
            ax[1].legend()
        fig.tight_layout()
        fig.savefig(os.path.join(self.cfg.out_dir, "curve.png"), dpi=80)
        plt.close(fig)
