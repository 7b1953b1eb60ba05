"""Train a source policy on configs/block_push/nominal.yaml and evaluate it on the source and every target.

python scripts/train_block_push.py [CONFIG] [--set FIELD=VALUE ...] [--resume RUN_DIR]
"""

from sim2real.cli import run_train_script

if __name__ == "__main__":
    raise SystemExit(run_train_script("block_push"))
