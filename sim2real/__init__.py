"""sim2real: sim-to-real transfer for reinforcement learning on MuJoCo.

Define source and target domains as named dynamics changes (:mod:`sim2real.dynamics`,
:mod:`sim2real.config`), train on the source with stable-baselines3 (:mod:`sim2real.training`) and evaluate
on every target (:mod:`sim2real.evaluation`). The ``sim2real`` command wraps it all.
"""

__version__ = "0.1.0"
