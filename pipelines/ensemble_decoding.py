"""How an ensemble should transcribe: WER of its first network alone, of the frame-wise mixture of
its networks' posteriors (what ``Model.transcribe`` does), and of n-best rescoring (each network's
and the mixture's 8 best vocabulary-restricted beams, re-ranked by the sum of the networks' CTC
log-likelihoods, as ``Model.classify`` scores candidates).

    python pipelines/ensemble_decoding.py --model ENSEMBLE.npz --data test_synth.jsonl
"""
import json

import click
from speechlstm.data import read_manifest
from speechlstm.decoding import BeamSearchDecoder
from speechlstm.errors import SpeechLSTMError, error_line
from speechlstm.kws import NO_SPEECH, classify_scores
from speechlstm.metrics import wer
from speechlstm.model import load_model
from speechlstm.transcribe import mix_log_probs


@click.command()
@click.option("--model", "model_path", required=True, help="Ensemble model file.")
@click.option("--data", required=True, help="Manifest with reference texts.")
@click.option("--n-best", default=8, show_default=True, type=click.IntRange(1, 64))
def main(model_path, data, n_best):
    try:
        e = load_model(model_path)
        rows = read_manifest(data)
    except (SpeechLSTMError, OSError) as exc:
        raise click.ClickException(error_line(exc)) from None
    if len(e.members) < 2:
        raise click.BadParameter(f"{model_path}: holds one network, not an ensemble", param_hint="--model")
    dec = BeamSearchDecoder(e.alphabet, beam_width=16, words=e.vocabulary)

    def best(lp):
        b = dec.decode_beams(lp, n_best=1)
        return b[0].text if b else ""

    refs, first, mix, resc, failed = [], [], [], [], 0
    for r in rows:
        try:
            lps, _ = e.member_log_probs(r["path"])
        except (SpeechLSTMError, OSError) as exc:  # one bad file is reported and skipped, the rest go on
            click.echo(f"ensemble_decoding: skipped {error_line(exc, r['path'])}", err=True)
            failed += 1
            continue
        mixed = mix_log_probs(lps)
        refs.append(r["text"])
        first.append(best(lps[0]))
        mix.append(best(mixed))
        cands = {b.text or NO_SPEECH for lp in [*lps, mixed] for b in dec.decode_beams(lp, n_best=n_best)}
        top = classify_scores(lps, sorted(cands), e.alphabet)[0]["text"]
        resc.append("" if top == NO_SPEECH else top)
    print(json.dumps({"utterances": len(refs), "networks": len(e.members), "wer_first_network": round(wer(refs, first), 4),
                      "wer_mixture": round(wer(refs, mix), 4), "wer_nbest_rescoring": round(wer(refs, resc), 4),
                      "failures": failed}))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
