"""The deterministic half of golden-set mode: how much of the expected answer's vocabulary the
answer shares, as a token-set F1.

Both texts are cut into content words as the heuristic judge cuts them
(``evals.judges.heuristic.content_words``: lowercase runs of letters and digits, stop words and
one-letter words dropped, a plural ``s`` dropped), and each becomes a set. With A the answer's
set and E the expected answer's:

    precision = |A ∩ E| / |A|      recall = |A ∩ E| / |E|
    F1 = 2 · precision · recall / (precision + recall)

0 when either set is empty or they share nothing; rounded to 4 decimals. Word order, repeats and
stop words do not count: "Concur, then your manager" and "your manager then Concur" score 1.0.
"""

from __future__ import annotations

from evals.judges.heuristic import content_words


def token_set_f1(answer: str, expected: str) -> float:
    found, wanted = set(content_words(answer)), set(content_words(expected))
    shared = len(found & wanted)
    if not shared:
        return 0.0
    precision, recall = shared / len(found), shared / len(wanted)
    return round(2 * precision * recall / (precision + recall), 4)
