"""Train a source policy on configs/half_cheetah/nominal.yaml and evaluate it on the source and every target.

python scripts/train_half_cheetah.py [CONFIG] [--set FIELD=VALUE ...] [--resume RUN_DIR]
"""

from sim2real.cli import run_train_script

if __name__ == "__main__":
    raise SystemExit(run_train_script("half_cheetah"))
