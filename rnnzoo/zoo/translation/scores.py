"""Corpus BLEU and chrF with sacrebleu 2.x (rnn-critical-review §5.2: higher is better).

BLEU = B * exp(1/N sum_n log p_n), N = 4, p_n the modified n-gram precisions and B the
brevity penalty (§5.2); sacrebleu computes it on detokenised text with its own `13a`
tokenisation, so scores are comparable across systems, and says how in a signature string.
"""

import sacrebleu


def score_translations(hypotheses, references):
    """`{"bleu", "chrf", "bleu_signature", "chrf_signature"}` of `hypotheses` against one reference each."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references; give one each")
    if not references:
        raise ValueError("no test sentences to score; the corpus's test split is empty")
    bleu, chrf = sacrebleu.BLEU(), sacrebleu.CHRF()
    return {
        "bleu": bleu.corpus_score(hypotheses, [references]).score,
        "chrf": chrf.corpus_score(hypotheses, [references]).score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }
