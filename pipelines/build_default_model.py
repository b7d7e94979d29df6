"""Rebuild the shipped default model ``speechlstm/models/commands.npz`` reproducibly.

    python pipelines/build_default_model.py --data ../shared/data --work runs/default

Stages (each a library call): synthesize speech → build manifests (speaker-disjoint splits) →
train (features cached) → evaluate on held-out speakers → export into the package.

Splits
------
* Speech Commands v0.02 (``speech_commands_v2_half``): speakers split by a salted hash
  (:func:`speechlstm.data.split_by_speaker`): 25 % test, 10 % dev, 65 % train.
* FSDD: speaker ``george`` is held out for test; the other three train (with ``--dev mixed``, the
  default, their takes 45–49 are dev; with ``--dev heldout`` they train and dev is only the
  held-out Speech Commands speakers).  ``--fsdd-test-speaker`` holds out another of the four instead
  (leave-one-speaker-out folds; the manifests then carry the speaker's name), and
  ``--fsdd-train-speakers`` trains on fewer of the other three (``none``, or a list: a learning curve
  over real FSDD speakers; the manifests then carry their names).
* ``speech_commands_sample`` (v0.01, speakers disjoint from v0.02): test only.
* ``arctic_cathy`` (CMU ARCTIC read sentences, one speaker): with ``--arctic N``, N sentences train
  (character-level CTC on real read speech; prompts with digits are skipped); never dev or test.
* Synthetic: training voices never use the espeak-ng accents ``en-029`` and ``en-us-nyc`` nor the
  flite voice ``rms``; the synthetic test set uses only those.

``--teacher MODEL`` (e.g. the shipped ``commands-ensemble``) adds knowledge distillation: the
network also learns that model's frame posteriors (``TrainConfig.teacher``); the teacher was
trained on these same splits, so no test speaker leaks in through it. ``--distill-temperature T``
softens those posteriors (``TrainConfig.distill_temperature``).

``--average-best N`` keeps every epoch's weights and evaluates and exports ``model-avg.npz``, the
mean of the N best epochs (``TrainConfig.average_best``; by ``--select-by``, the dev loss unless
told otherwise), instead of the best epoch alone; ``model.npz`` (the best epoch) is still written beside it.
"""
import json
import os
import shutil
import time

import click
import numpy as np

from speechlstm.alphabet import DIGIT_WORDS
from speechlstm.config import N_MELS, SPEC_MEL_MASK_BANDS
from speechlstm.cli import FiniteRange, PipelineCommand
from speechlstm.data import (SPEECH_COMMANDS_WORDS, read_fsdd, read_speech_commands, read_text_pairs, split_by_speaker,
                             write_manifest)
from speechlstm.synth import ESPEAK_ACCENTS, FLITE_VOICES, espeak_variants, synthesize, voice_pool
from speechlstm.train import TrainConfig

HELD_OUT_ACCENTS = ["en-029", "en-us-nyc"]
HELD_OUT_FLITE = ["rms"]
FSDD_TEST_SPEAKER = "george"
FSDD_DEV_FIRST_TAKE = 45  # takes 45-49 of each training speaker are dev with --dev mixed
EXCLUDED_VARIANTS = {"whisper", "whisperf", "Demonic", "UniRobot", "anikaRobot", "croak"}


def command_sequences(rng, n, max_words=6):
    """Random word sequences of 2..max_words words; 40 % are digit strings."""
    out = []
    for _ in range(n):
        k = int(rng.integers(2, max_words + 1))
        pool = DIGIT_WORDS if rng.random() < 0.4 else SPEECH_COMMANDS_WORDS
        out.append(" ".join(str(w) for w in rng.choice(pool, k)))
    return out


def speech_commands_split(data_root):
    """The Speech Commands v0.02 clips split by speaker as every build, evaluation and yardstick uses
    them: ``{"train", "dev", "test"}`` (test 25 % of the speakers, dev the next 10 %)."""
    return split_by_speaker(read_speech_commands(os.path.join(data_root, "speech_commands_v2_half")), test=0.25, dev=0.10)


def fsdd_train_speakers_option(value, speakers, test_speaker):
    """The FSDD speakers that train, from ``--fsdd-train-speakers``: "" (all but the test speaker),
    "none", or a comma-separated list of speakers other than the test speaker."""
    others = [s for s in speakers if s != test_speaker]
    value = value.strip()
    if not value:
        return others
    if value == "none":
        return []
    names = [x.strip() for x in value.split(",")]
    for name in names:
        if name not in others:
            why = "is the test speaker" if name == test_speaker else "is not an FSDD speaker here"
            raise click.BadParameter(f"{name!r} {why} (the training speakers may be: none or any of "
                                     f"{', '.join(others)})", param_hint="--fsdd-train-speakers")
    if len(set(names)) != len(names):
        raise click.BadParameter(f"a speaker is repeated: {value!r}", param_hint="--fsdd-train-speakers")
    return sorted(names)


def fsdd_split(rows, test_speaker, train_speakers):
    """(test, dev, train) rows of FSDD: the test speaker's clips; the training speakers' takes
    45-49; their other takes.  Speakers in neither role are left out."""
    def take(r):
        return int(os.path.basename(r["path"])[:-4].split("_")[2])

    trainers = set(train_speakers)
    test = [r for r in rows if r["speaker"] == test_speaker]
    mine = [r for r in rows if r["speaker"] in trainers]
    return test, [r for r in mine if take(r) >= FSDD_DEV_FIRST_TAKE], [r for r in mine if take(r) < FSDD_DEV_FIRST_TAKE]


def build_variants():
    """The installed espeak-ng variants the builds draw from (all but :data:`EXCLUDED_VARIANTS`)."""
    return [v for v in espeak_variants() if v not in EXCLUDED_VARIANTS]


def synthetic_voices(rng):
    """(training voices, held-out test voices), drawn from ``rng`` (the build then draws its texts
    from the same generator, so the order matters for reproducing the shipped model)."""
    variants = build_variants()
    train_voices = voice_pool(rng, 400, espeak_accents=[a for a in ESPEAK_ACCENTS if a not in HELD_OUT_ACCENTS],
                              espeak_variant_names=variants,
                              flite_names=[v for v in FLITE_VOICES if v not in HELD_OUT_FLITE])
    test_voices = voice_pool(rng, 60, espeak_accents=HELD_OUT_ACCENTS, espeak_variant_names=variants,
                             flite_names=HELD_OUT_FLITE)
    return train_voices, test_voices


def with_copies(rows, which, n):
    """``rows`` with ``n`` augmented copies (the row's ``copies`` field) for each row whose path is among
    ``which``'s; the others as they were."""
    paths = {r["path"] for r in which}
    return [dict(r, copies=n) if r["path"] in paths else r for r in rows]


L1_SEED_OFFSET = 10_000  # the foreign-accented set's seed is the build's plus this: the other sets stay as they were
L1_VOICES = 150  # foreign-accented voices drawn for it


def l1_synthetic_set(work, seed, n_single_per_word, n_sequences, workers):
    """Words and command sequences in foreign-accented English (engine "espeak-ng-l1": the first
    languages of espeak-ng's foreign-English voices, :data:`speechlstm.synth.L1_ACCENTS`), rendered
    under ``work/synth_l1``; their own generator, so the build's other synthetic sets do not change."""
    rng = np.random.default_rng(seed + L1_SEED_OFFSET)
    voices = voice_pool(rng, L1_VOICES, espeak_accents=[], espeak_variant_names=build_variants(), flite_names=[],
                        l1_share=1.0)
    texts = [w for w in SPEECH_COMMANDS_WORDS for _ in range(n_single_per_word)] + command_sequences(rng, n_sequences)
    return synthesize(texts, os.path.join(work, "synth_l1"), voices=voices, seed=seed + L1_SEED_OFFSET, workers=workers)


REAL_SEQ_SEED_OFFSET = 20_000  # the joined real sequences' generator: the build's seed plus this
REAL_SEQ_MAX_WORDS = 6  # words per joined real sequence, at most


def real_sequence_set(rows, n, seed, out_dir, *, max_words=REAL_SEQ_MAX_WORDS):
    """``n`` multi-word recordings in real voices: each joins 2..``max_words`` single-word clips of one speaker
    (:func:`speechlstm.augment.join_clips`), the speaker drawn in proportion to their clips, the clips without
    repeats. Only rows with a one-word transcript take part (no ``_silence_``). Written under ``out_dir`` as
    16-bit WAVs (rewritten each time: the same rows and seed give the same bytes) and returned as manifest
    rows; empty when no speaker has two clips.

    Corpora of isolated words never show a network more than one real word at a time; the shipped networks,
    trained that way, heard five Speech Commands clips of one speaker joined as one word (README, "Pauses and
    real multi-word speech").
    """
    import soundfile as sf

    from speechlstm.audio import load_audio
    from speechlstm.augment import join_clips

    by_speaker = {}
    for r in rows:
        if len(r["text"].split()) == 1:
            by_speaker.setdefault(r["speaker"], []).append(r)
    speakers = sorted(s for s, rs in by_speaker.items() if len(rs) >= 2)
    if not speakers or n <= 0:
        return []
    weight = np.array([len(by_speaker[s]) for s in speakers], np.float64)
    share = weight / weight.sum()
    rng = np.random.default_rng([seed, REAL_SEQ_SEED_OFFSET])
    os.makedirs(out_dir, exist_ok=True)
    cache, out = {}, []
    for i in range(n):
        spk = speakers[int(rng.choice(len(speakers), p=share))]
        mine = by_speaker[spk]
        k = int(rng.integers(2, min(max_words, len(mine)) + 1))
        picks = [mine[j] for j in rng.choice(len(mine), k, replace=False)]
        clips = []
        for r in picks:
            if r["path"] not in cache:
                cache[r["path"]] = load_audio(r["path"], sr=16000)
            clips.append(cache[r["path"]])
        y = join_clips(clips, rng)
        path = os.path.abspath(os.path.join(out_dir, f"seq_{i:05d}.wav"))
        sf.write(path, np.clip(y, -1, 1), 16000, subtype="PCM_16")
        out.append({"path": path, "text": " ".join(r["text"] for r in picks), "speaker": spk,
                    "duration": round(y.size / 16000, 3), "joined": [r["path"] for r in picks]})
    return out


SYNTH_DEV_SEED = 2026  # seed of the held-out-voice synthetic dev set (no build's test set uses it)
SYNTH_DEV_VOICES = 60  # voices drawn for it


def synthetic_dev_set(work, n=300, *, seed=SYNTH_DEV_SEED, workers=2):
    """``n`` command sequences rendered by new draws of the held-out voices (the accents and flite
    voice of the synthetic test set, which no build trains on), written under ``work/synth_dev``.

    The dev set of "A word prior for command sequences" (docs/experiments.md): its texts and voices'
    rates and pitches are new draws, but its accents and variants are the test set's population, as
    the Speech Commands dev speakers are the test speakers' — a dev set, not a second test set.
    """
    variants = build_variants()
    voices = voice_pool(np.random.default_rng(seed), SYNTH_DEV_VOICES, espeak_accents=HELD_OUT_ACCENTS,
                        espeak_variant_names=variants, flite_names=HELD_OUT_FLITE)
    texts = command_sequences(np.random.default_rng(seed), n)
    return synthesize(texts, os.path.join(work, "synth_dev"), voices=voices, seed=seed, workers=workers)


def held_out_voice(speaker):
    """Whether a manifest row's ``speaker`` (``engine:voice[+variant]:rR:pP``, :attr:`Voice.speaker`)
    is one of the held-out synthetic voices."""
    parts = str(speaker).split(":")
    if len(parts) < 2:
        return False
    voice = parts[1].split("+")[0]
    return (parts[0] == "espeak-ng" and voice in HELD_OUT_ACCENTS) or (parts[0] == "flite" and voice in HELD_OUT_FLITE)


def synthetic_sets(work, seed, n_single_per_word, n_sequences, n_test, workers):
    rng = np.random.default_rng(seed)
    train_voices, test_voices = synthetic_voices(rng)
    texts = [w for w in SPEECH_COMMANDS_WORDS for _ in range(n_single_per_word)] + command_sequences(rng, n_sequences)
    train = synthesize(texts, os.path.join(work, "synth"), voices=train_voices, seed=seed, workers=workers)
    test_texts = command_sequences(np.random.default_rng(seed + 1), n_test)
    test = synthesize(test_texts, os.path.join(work, "synth_test"), voices=test_voices, seed=seed + 1,
                      workers=workers)
    return train, test


NOISE_SEED = 0  # the noise-only clips are one set, whatever the build's seed


def noise_clips(work, n=150):
    """Noise-only clips with empty transcripts (white/pink at random levels), as silence examples:
    the same ``n`` clips for every seed and every order of builds (until 2026-12-07 each build drew
    them from its own seed but kept files already there, so a work folder held the clips of
    whichever seed it built first).  Files already there are kept, so the feature cache stays valid."""
    import soundfile as sf

    from speechlstm.augment import pink_noise, white_noise

    d = os.path.join(work, "noise_only")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(NOISE_SEED)
    out = []
    for i in range(n):
        y = (pink_noise if i % 2 else white_noise)(16000, rng) * float(10 ** rng.uniform(-3.5, -1))
        p = os.path.abspath(os.path.join(d, f"noise_{i:04d}.wav"))
        if not os.path.exists(p):
            sf.write(p, np.clip(y, -1, 1), 16000, subtype="PCM_16")
        out.append({"path": p, "text": "", "speaker": f"noise-{i}", "duration": 1.0})
    return out


def check_training_options(augment: dict, **train) -> None:
    """The trainer's own checks of the build's training options (``TrainConfig`` fields), run before any
    synthesis: a bad value is a usage error naming the setting and the value, not a failure when
    training starts."""
    from speechlstm.augment import Augmenter
    from speechlstm.errors import ParameterError

    try:
        Augmenter.check_fields(augment)
        TrainConfig(train=["(options)"], dev=["(options)"], **train)  # a build always has a dev set
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from None


def train_fields(*, hidden, layers, unidirectional, epochs, patience, copies, ema, dropout, lr, batch_size,
                 weight_decay, select_by, teacher, distill_weight, distill_temperature, average_best, freq_masks,
                 cepstral_mask_max, workers, seed) -> dict:
    """The build's training options as ``TrainConfig`` fields (all but the manifests, folders, features and
    augmentation): the one mapping shared by the up-front check in ``main`` and the run in ``build_network``,
    so an option cannot be checked under one name and trained under another."""
    return dict(hidden_size=hidden, num_layers=layers, bidirectional=not unidirectional, epochs=epochs,
                patience=patience, augment_copies=copies, ema=ema, dropout=dropout, lr=lr, batch_size=batch_size,
                weight_decay=weight_decay, select_by=select_by, teacher=teacher, distill_weight=distill_weight,
                distill_temperature=distill_temperature, average_best=average_best, spec_augment_freq=freq_masks,
                spec_augment_cepstra=cepstral_mask_max, workers=workers, seed=seed,
                vocabulary=list(SPEECH_COMMANDS_WORDS), name="commands-stream" if unidirectional else "commands")


def augment_fields(p_telephone, p_trim, trim_max, p_hum, p_vtlp=0.0, vtlp_max=0.1, p_trim_end=0.0, p_trim_vowel=0.0):
    """Augmenter settings; the newer fields only when used, so older runs keep their cache keys."""
    d = {"p_telephone": p_telephone}
    if p_trim:
        d.update(p_trim=p_trim, trim_s=[0.0, trim_max])
    if p_trim_end:
        d["p_trim_end"] = p_trim_end
    if p_trim_vowel:
        d["p_trim_vowel"] = p_trim_vowel
    if p_hum:
        d["p_hum"] = p_hum
    if p_vtlp:
        d.update(p_vtlp=p_vtlp, vtlp=[1.0 - vtlp_max, 1.0 + vtlp_max])
    return d


@click.command(cls=PipelineCommand)
@click.option("--data", "data_root", default="../shared/data", show_default=True, help="Folder with the corpora.")
@click.option("--work", default="runs/default", show_default=True, help="Working folder (synthesis, cache, runs).")
@click.option("--epochs", default=30, show_default=True)
@click.option("--patience", type=click.IntRange(min=1), default=6, show_default=True,
              help="Epochs without a better dev loss before training stops (a stopped run resumes with a larger value).")
@click.option("--hidden", default=128, show_default=True)
@click.option("--layers", default=2, show_default=True)
@click.option("--unidirectional", is_flag=True, help="Train the streaming (unidirectional, global CMVN) variant.")
@click.option("--cmvn", type=click.Choice(["utterance", "global"]), default=None,
              help="Feature normalisation: each clip by its own mean and deviation, or by the training set's "
                   "(robust to clips cut tightly around the word, as FSDD's are).  [default: utterance; global "
                   "with --unidirectional]")
@click.option("--singles", default=60, show_default=True, help="Synthetic renders per vocabulary word.")
@click.option("--sequences", default=3000, show_default=True, help="Synthetic word sequences.")
@click.option("--l1-singles", type=click.IntRange(min=0), default=0, show_default=True,
              help="Foreign-accented synthetic renders per vocabulary word (espeak-ng speaking English through "
                   "German, Greek, French ... voices), besides --singles.")
@click.option("--l1-sequences", type=click.IntRange(min=0), default=0, show_default=True,
              help="Foreign-accented synthetic word sequences, besides --sequences.")
@click.option("--real-sequences", type=click.IntRange(min=0), default=0, show_default=True,
              help="Multi-word recordings in real voices added to training: 2-6 single-word training clips of one "
                   "speaker (Speech Commands, FSDD) joined, each cut to its speech with some of its own sound "
                   "around it (0: none).")
@click.option("--copies", default=2, show_default=True, help="Augmented copies per clip.")
@click.option("--sc-copies", type=click.IntRange(min=0), default=None,
              help="Augmented copies per Speech Commands training clip (real speakers; default: --copies).")
@click.option("--sc-other-copies", type=click.IntRange(min=0), default=None,
              help="Augmented copies per Speech Commands training clip of a word other than the ten commands "
                   "(its _unknown_ clips: 3-14 real takes per word against ~160 per command; default: --sc-copies).")
@click.option("--fsdd-copies", type=click.IntRange(min=0), default=None,
              help="Augmented copies per FSDD training clip (real 8 kHz digits of the training speakers; "
                   "default: --copies).")
@click.option("--fmax", default=4000.0, type=FiniteRange(), show_default=True,
              help="Highest mel frequency (Hz): 4000 makes 8 kHz (telephone, FSDD) and 16 kHz audio look alike.")
@click.option("--n-mfcc", type=click.IntRange(min=1), default=None,
              help="Cepstra kept per frame (each with its two deltas; at most the 40 mel bands, which 40 keeps "
                   "whole).  [default: the front end's 13]")
@click.option("--p-telephone", default=0.3, type=FiniteRange(), show_default=True, help="Share of augmented copies band-limited to 8 kHz.")
@click.option("--p-trim", default=0.0, type=FiniteRange(), show_default=True,
              help="Share of augmented copies whose speech onset is clipped (tightly trimmed corpora).")
@click.option("--trim-max", default=0.08, type=FiniteRange(), show_default=True, help="Longest onset clip (s).")
@click.option("--p-trim-end", type=FiniteRange(0, 1), default=0.0, show_default=True,
              help="Share of augmented copies whose silence after the speech is cut (with --p-trim: clips cut "
                   "tightly at both ends, as FSDD's are).")
@click.option("--p-trim-vowel", type=FiniteRange(0, 1), default=0.0, show_default=True,
              help="Share of augmented copies cut where the vowel begins (the first 10 ms frame within 10 dB of "
                   "the loudest), so the word's first consonant is gone whole, as in many FSDD clips.")
@click.option("--p-hum", default=0.0, type=FiniteRange(), show_default=True, help="Share of augmented copies given tonal hum.")
@click.option("--p-vtlp", type=FiniteRange(0, 1), default=0.0, show_default=True,
              help="Share of augmented copies given a vocal-tract-length warp of the spectrum.")
@click.option("--vtlp-max", type=FiniteRange(0, 0.5), default=0.1, show_default=True,
              help="Largest warp: factors drawn uniformly from 1 ± this.")
@click.option("--freq-masks", type=click.Choice(["cepstra", "mel", "both", "none"]), default="cepstra",
              show_default=True,
              help="What SpecAugment's two frequency masks hide in training: up to 3 cepstral indices, a band of "
                   f"up to {SPEC_MEL_MASK_BANDS} of the {N_MELS} mel bands under the cepstra (SpecAugment's "
                   "frequency mask proper), both (two of each), or nothing (time masks only).")
@click.option("--cepstral-mask-max", type=click.IntRange(0, N_MELS), default=3, show_default=True,
              help="Widest of the cepstral frequency masks (with --freq-masks cepstra or both), in cepstral "
                   "indices (of --n-mfcc): each mask draws a width from 0 to this.")
@click.option("--dev", "dev_mode", type=click.Choice(["mixed", "heldout"]), default="mixed", show_default=True,
              help="mixed: dev = held-out Speech Commands speakers + FSDD takes 45-49 of the training speakers + "
                   "200 synthetic renders (how the shipped model was chosen); heldout: dev = only the Speech "
                   "Commands speakers held out of training, the other two parts train.")
@click.option("--arctic", default=0, show_default=True,
              help="ARCTIC sentences (arctic_cathy) added to training: real read speech, any words (0: none).")
@click.option("--ema", default=0.0, type=FiniteRange(), show_default=True,
              help="Decay of the weights' moving average used for selection and export (e.g. 0.999; 0: off).")
@click.option("--dropout", default=0.0, type=FiniteRange(), show_default=True,
              help="Dropout on each LSTM layer's output in training (0: off).")
@click.option("--lr", type=FiniteRange(0, min_open=True), default=TrainConfig.lr, show_default=True,
              help=f"Adam's peak learning rate (reached after {TrainConfig.warmup_steps} warm-up steps; then "
                   f"x{TrainConfig.lr_decay} per epoch, down to {TrainConfig.min_lr:g}).")
@click.option("--batch-size", type=click.IntRange(min=1), default=TrainConfig.batch_size, show_default=True,
              help="Training clips per step (length-bucketed batches).")
@click.option("--weight-decay", type=FiniteRange(0, 1), default=0.0, show_default=True,
              help="Decoupled weight decay (AdamW): each step shrinks every weight by lr x this (0: off).")
@click.option("--select-by", type=click.Choice(["loss", "wer"]), default="loss", show_default=True,
              help="What early stopping and the kept epoch go by on the dev set: its CTC loss, or its greedy WER "
                   "(the loss breaking ties).")
@click.option("--teacher", default="",
              help="A model (path or shipped name, e.g. commands-ensemble) whose frame posteriors each network "
                   "learns beside the CTC loss (knowledge distillation; same front end and alphabet).")
@click.option("--distill-weight", type=FiniteRange(0, 100), default=1.0, show_default=True,
              help="Weight of the distillation term (with --teacher).")
@click.option("--distill-temperature", type=FiniteRange(0, 100, min_open=True), default=1.0, show_default=True,
              help="Temperature of the distillation term (with --teacher): the teacher's posteriors softened to "
                   "softmax(log p / T), the network's scores divided by T, the term times T^2 (1: plain KL).")
@click.option("--average-best", type=click.IntRange(min=0), default=0, show_default=True,
              help="Checkpoint averaging: keep every epoch's weights and evaluate/export the mean of the N epochs "
                   "with the lowest dev loss (<run>/model-avg.npz) instead of the best epoch alone (0: off).")
@click.option("--fsdd-test-speaker", default=FSDD_TEST_SPEAKER, show_default=True,
              help="The FSDD speaker held out for test (the other three train); another than george makes a "
                   "leave-one-speaker-out fold, its manifests named after the speaker.")
@click.option("--fsdd-train-speakers", default="",
              help="Which other FSDD speakers train: comma-separated names, or 'none' (default: all three "
                   "that are not held out). Fewer than three names the manifests after them.")
@click.option("--seed", default=0, show_default=True)
@click.option("--seeds", default="",
              help="Comma-separated seeds (overrides --seed): one network per seed, each trained like a single "
                   "build in <run-name>s<seed>/, then combined into one ensemble model in <run-name>/, which is "
                   "evaluated and exported (the synthetic test set is the last seed's).")
@click.option("--run-name", default="", help="Run folder under --work (default: bi or uni).")
@click.option("--workers", default=2, show_default=True)
@click.option("--export", "export_name", default="commands", show_default=True,
              help="Name under speechlstm/models/ ('' to skip exporting).")
def main(data_root, work, epochs, patience, hidden, layers, unidirectional, cmvn, singles, sequences, l1_singles, l1_sequences, real_sequences, copies, sc_copies, sc_other_copies, fsdd_copies, fmax, n_mfcc, p_telephone, p_trim, trim_max,
         p_trim_end, p_trim_vowel, p_hum, p_vtlp, vtlp_max, freq_masks, cepstral_mask_max, dev_mode, arctic, ema, dropout, lr, batch_size, weight_decay, select_by, teacher, distill_weight, distill_temperature, average_best,
         fsdd_test_speaker, fsdd_train_speakers, seed, seeds, run_name, workers, export_name):
    t_start = time.time()
    try:
        seed_list = [int(x) for x in seeds.replace(",", " ").split()] if seeds else [seed]
    except ValueError:
        raise click.BadParameter(f"not a comma-separated list of integers: {seeds!r}", param_hint="--seeds") from None
    from speechlstm.errors import ParameterError

    check_training_options(  # now, not after hours of synthesis and features
        augment_fields(p_telephone, p_trim, trim_max, p_hum, p_vtlp, vtlp_max, p_trim_end, p_trim_vowel),
        **train_fields(hidden=hidden, layers=layers, unidirectional=unidirectional, epochs=epochs, patience=patience,
                       copies=copies, ema=ema, dropout=dropout, lr=lr, batch_size=batch_size,
                       weight_decay=weight_decay, select_by=select_by, teacher="", distill_weight=distill_weight,
                       distill_temperature=distill_temperature, average_best=average_best, freq_masks=freq_masks,
                       cepstral_mask_max=cepstral_mask_max, workers=workers, seed=min(seed_list)))
    if unidirectional and cmvn == "utterance":
        raise click.BadParameter("a streaming (unidirectional) model cannot normalise by the whole clip; "
                                 "use --cmvn global", param_hint="--cmvn")
    features = {"cmvn": cmvn or ("global" if unidirectional else "utterance"), "fmax": fmax}
    if n_mfcc is not None:
        features["n_mfcc"] = n_mfcc
    from speechlstm.features import FeatureConfig

    try:
        fcfg = FeatureConfig.from_dict(features)
    except ParameterError as exc:
        raise click.BadParameter(str(exc), param_hint="--n-mfcc" if "n_mfcc" in str(exc) else "--fmax") from None
    if teacher:  # a teacher that cannot be read, or whose front end is not this run's, fails now
        from speechlstm.alphabet import Alphabet
        from speechlstm.errors import ModelError
        from speechlstm.train import load_teacher

        try:
            load_teacher(teacher, fcfg, Alphabet())
        except (ModelError, ParameterError) as exc:
            raise click.BadParameter(str(exc), param_hint="--teacher") from None
    if len(set(seed_list)) != len(seed_list):
        raise click.BadParameter(f"a seed is repeated: {seeds!r}", param_hint="--seeds")
    run_name = run_name or ("uni" if unidirectional else "bi")
    os.makedirs(work, exist_ok=True)  # after every check: a refused command leaves nothing behind
    opts = dict(data_root=data_root, work=work, epochs=epochs, patience=patience, hidden=hidden, layers=layers,
                unidirectional=unidirectional, singles=singles, sequences=sequences, l1_singles=l1_singles,
                l1_sequences=l1_sequences, real_sequences=real_sequences, copies=copies,
                sc_copies=sc_copies, sc_other_copies=sc_other_copies, fsdd_copies=fsdd_copies, features=features, p_telephone=p_telephone,
                p_trim=p_trim, trim_max=trim_max, p_trim_end=p_trim_end, p_trim_vowel=p_trim_vowel, p_hum=p_hum, p_vtlp=p_vtlp, vtlp_max=vtlp_max, freq_masks=freq_masks, cepstral_mask_max=cepstral_mask_max, dev_mode=dev_mode,
                arctic=arctic, ema=ema, dropout=dropout, lr=lr, batch_size=batch_size, weight_decay=weight_decay,
                select_by=select_by, teacher=teacher, distill_weight=distill_weight,
                distill_temperature=distill_temperature, average_best=average_best, fsdd_test_speaker=fsdd_test_speaker,
                fsdd_train_speakers=fsdd_train_speakers, workers=workers)
    network_file = "model-avg.npz" if average_best else "model.npz"  # what each seed contributes
    if len(seed_list) == 1:
        m, run_dir = build_network(seed=seed_list[0], run_dir=os.path.join(work, run_name), **opts)
        model_path = os.path.join(run_dir, network_file)
    else:
        from speechlstm.model import combine_models, load_model

        members = []
        for s in seed_list:
            m, member_dir = build_network(seed=s, run_dir=os.path.join(work, f"{run_name}s{s}"), **opts)
            members.append(load_model(os.path.join(member_dir, network_file)))
        run_dir = os.path.join(work, run_name)
        os.makedirs(run_dir, exist_ok=True)
        model_path = combine_models(members, name=members[0].name).save(os.path.join(run_dir, "model.npz"))
        print(f"combined {len(members)} networks (seeds {', '.join(map(str, seed_list))}) into {model_path}")
    train_seconds = time.time() - t_start
    # 4. evaluation on held-out speakers
    from speechlstm.evaluate import evaluate_model_suite

    metrics = evaluate_model_suite(model_path, m, os.path.join(run_dir, "eval"))
    metrics["build_wall_seconds"] = round(time.time() - t_start, 1)
    metrics["train_wall_seconds"] = round(train_seconds, 1)
    print(json.dumps(metrics, indent=2))
    # 5. export
    if export_name:
        from speechlstm.model import MODELS_DIR, load_model

        model = load_model(model_path)
        os.makedirs(MODELS_DIR, exist_ok=True)
        out = model.save(os.path.join(MODELS_DIR, f"{export_name}.npz"), metrics=metrics, name=export_name)
        print(f"exported {out}")


def build_network(*, data_root, work, epochs, patience, hidden, layers, unidirectional, singles, sequences, copies,
                  sc_copies, sc_other_copies, features, p_telephone, p_trim, trim_max, p_trim_end, p_hum, p_vtlp, vtlp_max, dev_mode,
                  arctic, ema, dropout, teacher, distill_weight, seed, run_dir, workers,
                  fsdd_test_speaker=FSDD_TEST_SPEAKER, fsdd_train_speakers="", average_best=0, weight_decay=0.0,
                  select_by="loss", p_trim_vowel=0.0, distill_temperature=1.0, l1_singles=0, l1_sequences=0,
                  fsdd_copies=None, freq_masks="cepstra", cepstral_mask_max=3, lr=TrainConfig.lr,
                  batch_size=TrainConfig.batch_size, real_sequences=0):
    """Stages 1-3 for one seed: synthesis, manifests, training into ``run_dir`` (resumed if it has
    a checkpoint).  Returns (manifest paths, run_dir)."""
    from speechlstm.train import Trainer

    fsdd = read_fsdd(os.path.join(data_root, "fsdd"))
    speakers = sorted({r["speaker"] for r in fsdd})
    if fsdd_test_speaker not in speakers:  # before anything is synthesized
        raise click.BadParameter(f"{fsdd_test_speaker!r} is not an FSDD speaker here (they are: {', '.join(speakers)})",
                                 param_hint="--fsdd-test-speaker")
    fsdd_trainers = fsdd_train_speakers_option(fsdd_train_speakers, speakers, fsdd_test_speaker)
    # 1. synthesis
    syn_train, syn_test = synthetic_sets(work, seed, singles, sequences, 300, workers)
    syn_l1 = l1_synthetic_set(work, seed, l1_singles, l1_sequences, workers) if l1_singles or l1_sequences else []
    # 2. manifests
    sc = speech_commands_split(data_root)
    fsdd_test, fsdd_dev, fsdd_train = fsdd_split(fsdd, fsdd_test_speaker, fsdd_trainers)
    fold = "" if fsdd_test_speaker == FSDD_TEST_SPEAKER else f"-fsdd{fsdd_test_speaker}"
    all_trainers = len(fsdd_trainers) == len(speakers) - 1
    trained_by = "" if all_trainers else f"-fsddtrain-{'-'.join(fsdd_trainers) or 'none'}"
    noise_only = noise_clips(work)
    arctic_rows = []
    if arctic:
        arctic_rows = [r for r in read_text_pairs(os.path.join(data_root, "arctic_cathy"), speaker="cathy")
                       if not any(ch.isdigit() for ch in r["text"])][:arctic]
    sample = read_speech_commands(os.path.join(data_root, "speech_commands_sample"))
    m = {}
    rng = np.random.default_rng(seed)
    dev_idx = set(rng.choice(len(syn_train), min(200, len(syn_train) // 10), replace=False).tolist())
    syn_dev = [r for i, r in enumerate(syn_train) if i in dev_idx]
    syn_train = [r for i, r in enumerate(syn_train) if i not in dev_idx]
    if dev_mode == "heldout":  # select only on speakers training never hears
        train_rows, dev_rows, sfx = syn_train + syn_dev + sc["train"] + fsdd_train + fsdd_dev + noise_only, sc["dev"], "-heldout"
    else:
        train_rows, dev_rows, sfx = syn_train + sc["train"] + fsdd_train + noise_only, sc["dev"] + fsdd_dev + syn_dev, ""
    if sc_copies is not None and sc_copies != copies:  # a row's "copies" overrides augment_copies
        train_rows = with_copies(train_rows, sc["train"], sc_copies)
        sfx = f"{sfx}-sc{sc_copies}"
    if sc_other_copies is not None and sc_other_copies != (copies if sc_copies is None else sc_copies):
        train_rows = with_copies(train_rows, [r for r in sc["train"] if r.get("label") == "_unknown_"], sc_other_copies)
        sfx = f"{sfx}-other{sc_other_copies}"
    if fsdd_copies is not None and fsdd_copies != copies:
        train_rows = with_copies(train_rows, fsdd_train + fsdd_dev, fsdd_copies)
        sfx = f"{sfx}-fsddc{fsdd_copies}"
    if arctic_rows:
        train_rows, sfx = train_rows + arctic_rows, f"{sfx}-arctic{len(arctic_rows)}"
    if syn_l1:
        train_rows, sfx = train_rows + syn_l1, f"{sfx}-l1w{l1_singles}s{l1_sequences}"
    if real_sequences:  # the training speakers' own word clips, joined (never a dev or test speaker's)
        real = [r for r in sc["train"] + fsdd_train + (fsdd_dev if dev_mode == "heldout" else []) if r["text"]]
        joined = real_sequence_set(real, real_sequences, seed, os.path.join(work, f"real_seq{fold}{trained_by}", f"s{seed}"))
        train_rows, sfx = train_rows + joined, f"{sfx}-real{real_sequences}"
    sfx += fold + trained_by
    m["train"] = write_manifest(train_rows, os.path.join(work, f"train{sfx}.jsonl"))
    m["dev"] = write_manifest(dev_rows, os.path.join(work, f"dev{sfx}.jsonl"))
    m["test_sc"] = write_manifest(sc["test"], os.path.join(work, "test_sc_v2.jsonl"))
    m["test_sample"] = write_manifest(sample, os.path.join(work, "test_sc_sample.jsonl"))
    m["test_fsdd"] = write_manifest(fsdd_test, os.path.join(work, f"test_fsdd{fold}.jsonl"))
    m["test_synth"] = write_manifest(syn_test, os.path.join(work, "test_synth.jsonl"))
    noise_dir = os.path.join(work, "bg_noise")
    os.makedirs(noise_dir, exist_ok=True)
    for r in sc["train"]:
        if r.get("label") == "_silence_":
            dst = os.path.join(noise_dir, os.path.basename(r["path"]))
            if not os.path.exists(dst):
                shutil.copy(r["path"], dst)
    print(json.dumps({k: sum(1 for _ in open(v)) for k, v in m.items()}))
    # 3. training
    cfg = TrainConfig(train=[m["train"]], dev=[m["dev"]], out_dir=run_dir, cache_dir=os.path.join(work, "cache"),
                      noise=[noise_dir], features=features,
                      augment=augment_fields(p_telephone, p_trim, trim_max, p_hum, p_vtlp, vtlp_max, p_trim_end, p_trim_vowel),
                      **train_fields(hidden=hidden, layers=layers, unidirectional=unidirectional, epochs=epochs,
                                     patience=patience, copies=copies, ema=ema, dropout=dropout, lr=lr,
                                     batch_size=batch_size, weight_decay=weight_decay, select_by=select_by,
                                     teacher=teacher, distill_weight=distill_weight,
                                     distill_temperature=distill_temperature, average_best=average_best,
                                     freq_masks=freq_masks, cepstral_mask_max=cepstral_mask_max, workers=workers,
                                     seed=seed))
    Trainer(cfg).run(resume=True)
    return m, run_dir

if __name__ == "__main__":
    main()
