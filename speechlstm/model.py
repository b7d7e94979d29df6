"""Model files and the :class:`Model` object users hold.

A model file is a ``.npz`` archive read with ``allow_pickle=False``:

* ``param/<name>``: every weight, under PyTorch-style names (``lstm.weight_ih_l0`` ...);
* ``stats/mean``, ``stats/std``: global CMVN statistics (only for ``cmvn="global"``);
* ``meta``: UTF-8 JSON (as uint8) — format version, architecture, feature config, alphabet,
  vocabulary, training summary and metrics;
* ``sha256``: hex digest (as uint8) of every other entry (name, dtype, shape and bytes, in name
  order).  A tampered or truncated file fails the check and is refused with a ``ModelError``.

An *ensemble* file (format version 2, written by :func:`combine_models` + :meth:`Model.save`) holds
several networks that share one feature config, alphabet and vocabulary: member ``k``'s weights
are ``param/m<k>/<name>`` and ``meta["members"]`` lists their architectures.  Single-network files
stay version 1, byte for byte what earlier releases wrote.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from .alphabet import Alphabet
from .errors import ModelError, ParameterError
from .features import FeatureConfig, FeatureStats
from .nn import AcousticModel

__all__ = ["Model", "load_model", "save_model", "read_model_file", "combine_models", "average_models",
           "restate_on_stats", "DEFAULT_MODEL", "available_models"]

FORMAT_VERSION = 1  # single-network files
ENSEMBLE_FORMAT_VERSION = 2  # files holding several networks (meta["members"])
MODELS_DIR = os.path.join(os.path.dirname(__file__), "models")
DEFAULT_MODEL = "commands"


def _digest(arrays: Dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype.str).encode())
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _to_bytes_array(s: str) -> np.ndarray:
    return np.frombuffer(s.encode("utf-8"), dtype=np.uint8)


def save_model(path: str, acoustic: Union[AcousticModel, Sequence[AcousticModel]], *, features: FeatureConfig,
               alphabet: Alphabet, stats: Optional[FeatureStats] = None, vocabulary: Optional[List[str]] = None,
               training: Optional[dict] = None, metrics: Optional[dict] = None, name: str = "") -> str:
    """Write a model file (atomically: a temporary file is renamed into place).

    ``acoustic`` is one network, or a list of networks for an ensemble file (one network in a list
    writes a plain single-network file).
    """
    if features.cmvn == "global" and stats is None:
        raise ParameterError('a cmvn="global" model needs its FeatureStats')
    members = [acoustic] if isinstance(acoustic, AcousticModel) else list(acoustic)
    if not members:
        raise ParameterError("save_model needs at least one network")
    if len(members) == 1:
        arrays = {f"param/{k}": np.ascontiguousarray(v, np.float32) for k, v in members[0].params.items()}
    else:
        arrays = {f"param/m{i}/{k}": np.ascontiguousarray(v, np.float32)
                  for i, a in enumerate(members) for k, v in a.params.items()}
    if stats is not None:
        arrays["stats/mean"] = np.asarray(stats.mean, np.float32)
        arrays["stats/std"] = np.asarray(stats.std, np.float32)
    meta = {
        "format": "speechlstm-model",
        "version": FORMAT_VERSION if len(members) == 1 else ENSEMBLE_FORMAT_VERSION,
        "name": name,
        **({"architecture": members[0].config()} if len(members) == 1 else {"members": [a.config() for a in members]}),
        "features": features.to_dict(),
        "alphabet": alphabet.to_list(),
        "vocabulary": list(vocabulary) if vocabulary else None,
        "training": training or {},
        "metrics": metrics or {},
    }
    arrays["meta"] = _to_bytes_array(json.dumps(meta, sort_keys=True))
    arrays["sha256"] = _to_bytes_array(_digest(arrays))
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise ParameterError(f"{path}: cannot write the model file, folder {folder} does not exist")
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
    return path


_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first local header; an empty archive (as np.load checks)


def read_model_file(path: str):
    """Read and verify a model file: returns (meta dict, params dict, stats or None)."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise ModelError(f"{p}: no such model file")
    if os.path.isdir(p):
        raise ModelError(f"{p}: is a directory, not a model file")
    with open(p, "rb") as f:
        head = f.read(4)
    if head not in _ZIP_SIGNATURES:  # anything but a zip archive would reach numpy's pickle refusal
        raise ModelError(f"{p}: not a model file (speechlstm models are .npz archives; this is not one)"
                         if head else f"{p}: empty file, not a model file")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ModelError(f"{p}: not a readable model file ({type(exc).__name__}: {exc})") from None
    if "sha256" not in arrays or "meta" not in arrays:
        raise ModelError(f"{p}: not a speechlstm model file (no meta/sha256 entries)")
    stored = arrays.pop("sha256").tobytes().decode("ascii", "replace")
    if _digest(arrays) != stored:
        raise ModelError(f"{p}: checksum mismatch — the file was modified or is corrupt")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except ValueError as exc:
        raise ModelError(f"{p}: unreadable metadata ({exc})") from None
    if meta.get("format") != "speechlstm-model" or meta.get("version") not in (FORMAT_VERSION, ENSEMBLE_FORMAT_VERSION):
        raise ModelError(f"{p}: unsupported model format {meta.get('format')!r} version {meta.get('version')!r}")
    params = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    stats = FeatureStats(arrays["stats/mean"], arrays["stats/std"]) if "stats/mean" in arrays else None
    return meta, params, stats


class Model:
    """A loaded recognizer: acoustic model(s) + feature config + alphabet + vocabulary.

    Use :func:`load_model` to get one.  ``transcribe``, ``classify``, ``spot`` and ``stream`` are defined in
    :mod:`speechlstm.transcribe`.  An ensemble (several networks, see :func:`combine_models`) has
    them all in ``members``; ``classify`` sums each candidate's log-likelihood over the members,
    ``transcribe``/``spot``/``log_probs`` use the frame-wise mean of their posteriors.
    """

    def __init__(self, acoustic: Union[AcousticModel, Sequence[AcousticModel]], features: FeatureConfig,
                 alphabet: Alphabet, *, stats: Optional[FeatureStats] = None, vocabulary: Optional[List[str]] = None,
                 meta: Optional[dict] = None, path: Optional[str] = None, device: str = "cpu"):
        members = [acoustic] if isinstance(acoustic, AcousticModel) else list(acoustic)
        if not members:
            raise ParameterError("a Model needs at least one network")
        self.members = [a.eval() for a in members]
        self.features = features
        self.alphabet = alphabet
        self.stats = stats
        self.vocabulary = list(vocabulary) if vocabulary else None
        self.meta = meta or {}
        self.path = path
        self.device = device

    @property
    def acoustic(self) -> AcousticModel:
        """The network of a single-network model (an ensemble has several: see ``members``)."""
        if len(self.members) != 1:
            raise ParameterError(f"{self.name}: an ensemble of {len(self.members)} networks has no single "
                                 "acoustic model; use .members")
        return self.members[0]

    @property
    def name(self) -> str:
        return self.meta.get("name") or (os.path.basename(self.path) if self.path else "model")

    @property
    def streaming(self) -> bool:
        return len(self.members) == 1 and not self.members[0].lstm.bidirectional

    def save(self, path: str, **extra) -> str:
        kw = dict(features=self.features, alphabet=self.alphabet, stats=self.stats, vocabulary=self.vocabulary,
                  training=self.meta.get("training"), metrics=self.meta.get("metrics"), name=self.meta.get("name", ""))
        kw.update(extra)
        return save_model(path, self.members, **kw)

    def info(self) -> dict:
        """What is inside, JSON-ready (``architecture`` is the first network's; ``members`` lists
        every network's)."""
        archs = [a.config() for a in self.members]
        return {
            "name": self.name, "path": self.path, "parameters": sum(a.num_parameters() for a in self.members),
            "architecture": archs[0], "members": archs, "features": self.features.to_dict(),
            "alphabet": "".join(self.alphabet.symbols), "vocabulary": self.vocabulary, "streaming": self.streaming,
            "training": self.meta.get("training", {}), "metrics": self.meta.get("metrics", {}),
        }

    # defined in transcribe.py
    from .transcribe import transcribe, classify, spot, stream, log_probs, member_log_probs  # noqa: E402,F401


def _same_stats(a: Optional[FeatureStats], b: Optional[FeatureStats]) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a.mean, b.mean)
                                         and np.array_equal(a.std, b.std))


def restate_on_stats(model: "Model", stats: FeatureStats, *, name: str = "") -> "Model":
    """The same recognizer, expecting features normalised by other global CMVN statistics.

    Global CMVN maps each base feature affinely, ``x_k = (x - m_k) / s_k``, and the network's input
    repeats base frames (stacking replicates edge frames; nothing is padded with zeros), so its first
    layer can absorb the change of statistics exactly in real arithmetic: for ``x_1 = (x - m_1) / s_1``,
    ``W x_k + b = (W * s_1/s_k) x_1 + (b + W (m_1 - m_k)/s_k)``.  That lets networks trained on
    different training sets' statistics share one front end (:func:`combine_models`).

    Parameters
    ----------
    model : Model
        a ``cmvn="global"`` model (every network of an ensemble is restated).
    stats : FeatureStats
        the statistics the returned model normalises with, ``mean``/``std`` of shape
        ``(model.features.base_dim,)``.
    name : str
        the new model's name (default: the old one's).

    Returns
    -------
    Model
        new networks (computed in float64, stored as float32 like every model file); same feature config, alphabet
        and vocabulary.  Its outputs match the old model's up to float rounding.
    """
    cfg = model.features
    if cfg.cmvn != "global" or model.stats is None:
        raise ParameterError(f"{model.name}: only a cmvn=\"global\" model can be restated on other statistics "
                             f"(its cmvn is {cfg.cmvn!r})")
    mean, std = np.asarray(stats.mean), np.asarray(stats.std)
    if mean.shape != (cfg.base_dim,) or std.shape != (cfg.base_dim,):
        raise ParameterError(f"stats have shapes {mean.shape}/{std.shape}, the model's front end has "
                             f"{cfg.base_dim} base features")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise ParameterError("stats must be finite with every std > 0")
    own_m, own_s = np.asarray(model.stats.mean, np.float64), np.asarray(model.stats.std, np.float64)
    scale = np.tile(std.astype(np.float64) / own_s, cfg.stack)  # per input column
    shift = np.tile((mean.astype(np.float64) - own_m) / own_s, cfg.stack)
    members = []
    for a in model.members:
        out = AcousticModel(**_network_kwargs(a.config()))
        for k, v in out.params.items():
            v[...] = a.params[k]
        lstm = out.lstm
        for d in range(lstm.num_directions):
            w_name, _, b_name, _ = lstm._names(0, d)
            w = np.asarray(a.lstm.params[w_name], np.float64)
            lstm.params[b_name][...] = np.asarray(a.lstm.params[b_name], np.float64) + w @ shift
            lstm.params[w_name][...] = w * scale[None, :]
        members.append(out)
    meta = {**model.meta, "name": name or model.meta.get("name", "")}
    return Model(members, cfg, model.alphabet, stats=FeatureStats(mean.astype(np.float32), std.astype(np.float32)),
                 vocabulary=model.vocabulary, meta=meta, path=None, device=model.device)


def _check_same_front_end(models: Sequence["Model"], *, stats_may_differ: bool = False) -> None:
    """Refuse models that do not share the first one's feature config, CMVN statistics (unless
    ``stats_may_differ``: global-CMVN models can be restated), alphabet, vocabulary and device
    (what an ensemble or a weight average needs)."""
    first = models[0]
    for m in models[1:]:
        if m.features.to_dict() != first.features.to_dict():
            raise ParameterError(f"{m.name}: its feature config differs from {first.name}'s")
        if m.alphabet.to_list() != first.alphabet.to_list():
            raise ParameterError(f"{m.name}: its alphabet differs from {first.name}'s")
        if (m.vocabulary or None) != (first.vocabulary or None):
            raise ParameterError(f"{m.name}: its vocabulary differs from {first.name}'s")
        if not (_same_stats(m.stats, first.stats) or (stats_may_differ and first.features.cmvn == "global")):
            raise ParameterError(f"{m.name}: its CMVN statistics differ from {first.name}'s")
    devices = {m.device for m in models}
    if len(devices) != 1:
        raise ParameterError(f"the models are on different devices: {sorted(devices)}")


def combine_models(models: Sequence["Model"], *, name: str = "") -> Model:
    """One model from several trained on the same front end: an ensemble.

    Parameters
    ----------
    models : sequence of Model
        at least two; every one with the same feature config, alphabet and vocabulary, and the
        same CMVN statistics — except that ``cmvn="global"`` models with other statistics are
        restated on the first model's (:func:`restate_on_stats`; exact up to float rounding).
        Ensembles among them contribute all their networks.
    name : str
        the new model's name.

    Returns
    -------
    Model
        holding every network; its metrics are empty (evaluate it anew) and its ``training`` entry
        lists the members' training summaries (and, under ``restated_on_first_stats``, the names of
        the models restated).  Save it with :meth:`Model.save`.
    """
    models = list(models)
    if len(models) < 2:
        raise ParameterError(f"an ensemble needs at least two models, got {len(models)}")
    first = models[0]
    _check_same_front_end(models, stats_may_differ=True)
    restated = [m.name for m in models[1:] if not _same_stats(m.stats, first.stats)]
    nets = [restate_on_stats(m, first.stats) if not _same_stats(m.stats, first.stats) else m for m in models]
    seen = {}
    for i, a in enumerate(a for m in nets for a in m.members):
        key = _digest({k: np.asarray(v) for k, v in a.params.items()})
        if key in seen:
            raise ParameterError(f"networks {seen[key] + 1} and {i + 1} are identical: an ensemble of copies "
                                 "costs more and scores the same")
        seen[key] = i
    meta = {"name": name, "training": {"members": [{"name": m.name, "path": m.path, **m.meta.get("training", {})}
                                                   for m in models]}, "metrics": {}}
    if restated:
        meta["training"]["restated_on_first_stats"] = restated
    return Model([a for m in nets for a in m.members], first.features, first.alphabet, stats=first.stats,
                 vocabulary=first.vocabulary, meta=meta, device=first.device)


def average_models(models: Sequence["Model"], *, name: str = "") -> Model:
    """One network whose every weight is the mean of several networks' (checkpoint averaging).

    Meant for snapshots of one training run (e.g. the epochs with the lowest dev loss, as
    ``TrainConfig.average_best`` writes them): networks of one trajectory sit in one basin, so their
    mean is a network too, at a single network's cost.  Independently trained networks do not — their
    units are not aligned — so combine those with :func:`combine_models` instead.

    Parameters
    ----------
    models : sequence of Model
        at least two single-network models with the same architecture, feature config, CMVN
        statistics, alphabet and vocabulary.
    name : str
        the new model's name.

    Returns
    -------
    Model
        one network (weights averaged in float64, stored as float32); its metrics are empty
        (evaluate it anew) and its ``training`` entry lists the averaged models' summaries.
    """
    models = list(models)
    if len(models) < 2:
        raise ParameterError(f"averaging needs at least two models, got {len(models)}")
    for m in models:
        if len(m.members) != 1:
            raise ParameterError(f"{m.name}: an ensemble of {len(m.members)} networks cannot be averaged "
                                 "(average single networks, then combine)")
    _check_same_front_end(models)
    first = models[0].acoustic
    for m in models[1:]:
        if m.acoustic.config() != first.config():
            raise ParameterError(f"{m.name}: its architecture {m.acoustic.config()} differs from "
                                 f"{models[0].name}'s {first.config()}")
    out = AcousticModel(**_network_kwargs(first.config()))
    for k, v in out.params.items():
        v[...] = np.mean([np.asarray(m.acoustic.params[k], np.float64) for m in models], axis=0)
    meta = {"name": name, "training": {"averaged": [{"name": m.name, "path": m.path, **m.meta.get("training", {})}
                                                    for m in models]}, "metrics": {}}
    return Model(out, models[0].features, models[0].alphabet, stats=models[0].stats,
                 vocabulary=models[0].vocabulary, meta=meta, device=models[0].device)


def _network_kwargs(arch: dict) -> dict:
    return dict(input_size=arch["input_size"], hidden_size=arch["hidden_size"], num_classes=arch["num_classes"],
                num_layers=arch["num_layers"], bidirectional=arch["bidirectional"])


def available_models() -> List[str]:
    """Names of the models shipped inside the package."""
    if not os.path.isdir(MODELS_DIR):
        return []
    return sorted(f[:-4] for f in os.listdir(MODELS_DIR) if f.endswith(".npz"))


def _resolve(name_or_path: Optional[str]) -> str:
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    p = os.fspath(name_or_path)
    if os.path.sep in p or p.endswith(".npz") or os.path.exists(p):
        return p
    cand = os.path.join(MODELS_DIR, p + ".npz")
    if os.path.exists(cand):
        return cand
    raise ModelError(f"{p}: no such model (shipped models: {', '.join(available_models()) or 'none'})")


def load_model(name_or_path: Optional[str] = None, *, device: str = "cpu") -> Model:
    """Load a model by shipped name (default: the commands model) or path.

    Parameters
    ----------
    name_or_path : str or None
    device : {"cpu", "cuda", "auto"}
        "auto" picks CUDA when a GPU is present.
    """
    from .device import resolve_device

    dev = resolve_device(device)
    path = _resolve(name_or_path)
    meta, params, stats = read_model_file(path)
    try:
        if "members" in meta:
            archs = meta["members"]
            if not isinstance(archs, list) or len(archs) < 2:
                raise ModelError(f"{path}: an ensemble file must list at least two members")
            prefixes = [f"m{i}/" for i in range(len(archs))]
        else:
            archs, prefixes = [meta["architecture"]], [""]
        members = [_build_network(path, arch, params, prefix) for arch, prefix in zip(archs, prefixes)]
        features = FeatureConfig.from_dict(meta["features"])
        alphabet = Alphabet.from_list(meta["alphabet"])
    except (KeyError, TypeError, ParameterError) as exc:
        raise ModelError(f"{path}: malformed model metadata ({exc})") from None
    for arch in archs:
        if arch["num_classes"] != len(alphabet):
            raise ModelError(f"{path}: {arch['num_classes']} outputs but {len(alphabet)} alphabet labels")
        if arch["input_size"] != features.dim:
            raise ModelError(f"{path}: input size {arch['input_size']} != feature dim {features.dim}")
    return Model(members, features, alphabet, stats=stats, vocabulary=meta.get("vocabulary"), meta=meta,
                 path=path, device=dev)


def _build_network(path: str, arch: dict, params: Dict[str, np.ndarray], prefix: str) -> AcousticModel:
    """One network of a model file: architecture ``arch``, weights ``params[prefix + name]``."""
    acoustic = AcousticModel(**_network_kwargs(arch))
    missing = sorted(prefix + k for k in acoustic.params if prefix + k not in params)
    if missing:
        raise ModelError(f"{path}: missing weights {missing[:3]}")
    for k, v in acoustic.params.items():
        w = params[prefix + k]
        if w.shape != v.shape:
            raise ModelError(f"{path}: weight {prefix + k} has shape {w.shape}, expected {v.shape}")
        v[...] = w
    return acoustic
