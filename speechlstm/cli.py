"""Command-line interface: thin click commands over the library.

Every failure the library raises on purpose (a :class:`SpeechLSTMError`) and every OS error is
printed as one line on stderr, ``speechlstm: error: <file>: <problem>``, with a non-zero exit and no
traceback unless ``--debug`` is given.
"""
from __future__ import annotations

import sys

import click

from .errors import SpeechLSTMError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (SpeechLSTMError, OSError, MemoryError) as exc:
            if ctx.meta.get("speechlstm.debug"):
                raise
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            click.echo(f"speechlstm: error: {msg}", err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="speechlstm")
@click.pass_context
def main(ctx, debug):
    """Offline speech recognition and keyword spotting (MFCC → LSTM → CTC, on Numba)."""
    ctx.meta["speechlstm.debug"] = debug


@main.command()
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Output .npy file.")
@click.option("--cmvn", type=click.Choice(["utterance", "none"]), default="utterance", show_default=True,
              help="Mean/variance normalisation (utterance: two bounded-memory passes).")
@click.option("--stack", type=int, default=None, help="Frames stacked per output frame.")
@click.option("--subsample", type=int, default=None, help="Keep one stacked frame in N.")
def features(file, out, cmvn, stack, subsample):
    """Write MFCC+Δ+ΔΔ model features of FILE to a .npy array [n_frames, dim], in bounded memory."""
    from .features import FeatureConfig, file_features

    kw = {"cmvn": cmvn}
    if stack is not None:
        kw["stack"] = stack
    if subsample is not None:
        kw["subsample"] = subsample
    cfg = FeatureConfig(**kw)
    file_features(file, cfg, out=out)
    import numpy as np

    arr = np.load(out, mmap_mode="r")
    click.echo(f"{file}: {arr.shape[0]} frames x {arr.shape[1]} features -> {out}")


if __name__ == "__main__":  # pragma: no cover
    main()
