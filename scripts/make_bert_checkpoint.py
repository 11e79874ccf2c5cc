"""Pretrain chapter 08's small BERT on the pydoc corpus and ship it as checkpoints/bert_pydoc.pt.

    .venv/bin/python scripts/make_bert_checkpoint.py            # the shipped checkpoint (a few CPU minutes)

Masked LM (80-10-10) + next-sentence prediction on sentence pairs of the pydoc topics, without
the topic task's val and test paragraphs; the validation masked-LM loss on pairs from the val
paragraphs is recorded in checkpoints/manifest.json, and tests/test_checkpoints.py checks that
loading the file reproduces it.
"""
import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_lib.bert import BERT, BERTConfig, pretrain, pydoc_pretraining  # noqa: E402
from course_lib.checkpoints import save_checkpoint  # noqa: E402
from course_lib.utils import seed_everything  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps (one batch each)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-nsp", action="store_true", help="masked LM only (RoBERTa's choice)")
    parser.add_argument("--name", default="bert_pydoc")
    args = parser.parse_args(argv)
    seed_everything(args.seed)
    data = pydoc_pretraining(args.steps * args.batch_size, args.batch_size, seed=args.seed)
    config = BERTConfig.small(len(data.vocab))
    model = BERT(config)
    start = time.perf_counter()
    history = pretrain(model, data.train, lr=args.lr, warmup=args.warmup, nsp=not args.no_nsp,
                       val_batches=data.val, progress=True)
    seconds = time.perf_counter() - start
    metrics = {"val_mlm_loss": history.val_loss[-1], "train_loss_last_100": sum(history.step_loss[-100:]) / 100,
               "pretrain_seconds": round(seconds, 1), "steps": args.steps}
    extra = {"config": asdict(config), "vocab": data.vocab.itos,
             "step_loss": [round(x, 4) for x in history.step_loss]}
    entry = save_checkpoint(args.name, model.eval(), metrics, extra=extra,
                            script="scripts/make_bert_checkpoint.py", args=list(argv if argv is not None else sys.argv[1:]))
    print(f"{entry['file']}: {entry['bytes'] / 1e6:.2f} MB, val masked-LM loss {metrics['val_mlm_loss']:.4f}, "
          f"{seconds:.0f} s, sha256 {entry['sha256'][:12]}")
    return entry


if __name__ == "__main__":
    main()
