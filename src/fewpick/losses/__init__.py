"""Loss functions: positive-unlabeled (PU) objectives for the Topaz-class picker."""

from fewpick.losses.pu import PU_METHODS, ge_binomial_penalty, pu_loss

__all__ = ["PU_METHODS", "ge_binomial_penalty", "pu_loss"]
