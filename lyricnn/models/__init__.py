"""What computes logits: the cells, MXNet's fused kernel, scratch and Gluon models, the
interface ``logits, state = lm(X, state)``."""
