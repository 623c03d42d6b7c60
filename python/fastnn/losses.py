"""Loss descriptions for `Sequential.compile`. Plain names ("softmax_cross_entropy",
"binary_cross_entropy", "mse", "mae") need no object; the sampled softmax has settings."""

from __future__ import annotations

from typing import Any

from fastnn._checks import flag, integer
from fastnn.ops.sampled import SAMPLERS


class SampledSoftmax:
    """Sampled softmax for very many classes: each training step scores the true class and
    `num_sampled` negatives drawn (without replacement, shared by the batch) from a log-uniform
    (Zipf: class 0 most frequent) or uniform distribution, with logits corrected by the log of
    each class's expected count, as TensorFlow's ``sampled_softmax_loss``. Only the sampled
    columns of the last layer are computed and updated from the loss; evaluate and predict use
    the full softmax. Use ``correct_true_logit=False`` to leave the true class's logit
    uncorrected (learns rare classes of Zipf-distributed data faster in our tests).

    ``compile(loss="sampled_softmax")`` means ``SampledSoftmax()`` (64 negatives, log-uniform).
    """

    name = "sampled_softmax"

    def __init__(self, num_sampled: int = 64, sampler: str = "log_uniform", unique: bool = True,
                 subtract_log_q: bool = True, remove_accidental_hits: bool = True,
                 correct_true_logit: bool = True) -> None:
        self.num_sampled = integer(num_sampled, "num_sampled", 1)
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler: expected one of {', '.join(SAMPLERS)}, got {sampler!r}")
        self.sampler = sampler
        self.unique = flag(unique, "unique")
        self.subtract_log_q = flag(subtract_log_q, "subtract_log_q")
        self.remove_accidental_hits = flag(remove_accidental_hits, "remove_accidental_hits")
        self.correct_true_logit = flag(correct_true_logit, "correct_true_logit")

    def get_config(self) -> dict[str, Any]:
        return {"num_sampled": self.num_sampled, "sampler": self.sampler, "unique": self.unique,
                "subtract_log_q": self.subtract_log_q,
                "remove_accidental_hits": self.remove_accidental_hits,
                "correct_true_logit": self.correct_true_logit}

    def __repr__(self) -> str:
        return "SampledSoftmax(" + ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()) + ")"
