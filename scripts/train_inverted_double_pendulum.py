"""Train a source policy on configs/inverted_double_pendulum/nominal.yaml and evaluate it on the source and every target.

python scripts/train_inverted_double_pendulum.py [CONFIG] [--set FIELD=VALUE ...] [--resume RUN_DIR]
"""

from sim2real.cli import run_train_script

if __name__ == "__main__":
    raise SystemExit(run_train_script("inverted_double_pendulum"))
