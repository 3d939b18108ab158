"""``refseg weights download|list``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("weights", help="download or list model weights")
    wsub = p.add_subparsers(dest="weights_action", required=True)
    d = wsub.add_parser("download", help="fetch official weights with sha256 verification")
    d.add_argument("family", choices=["sam", "clip", "sam3"])
    d.add_argument("--model", default=None, help="sam: vit_b|vit_l|vit_h (default vit_b); clip: ViT-B-16")
    d.add_argument("--pretrained", default="openai", help="clip: open_clip pretrained tag")
    d.add_argument(
        "--dest",
        type=Path,
        default=None,
        help="sam, sam3: folder (default $REFSEG_CHECKPOINT_DIR or ./checkpoints)",
    )
    d.add_argument(
        "--token",
        default=None,
        help="sam3: Hugging Face token of an account that accepted facebook/sam3's licence "
        "(default: $HF_TOKEN or the token `hf auth login` stored; the variable keeps it out of "
        "shell history)",
    )
    d.add_argument(
        "--revision", default=None, help="sam3: a branch, tag or commit of facebook/sam3 (default main)"
    )
    d.set_defaults(func=cmd_weights_download)
    ls = wsub.add_parser("list", help="known checkpoints and whether they are present")
    ls.add_argument("--dest", type=Path, default=None)
    ls.set_defaults(func=cmd_weights_list)


def cmd_weights_download(args: argparse.Namespace) -> int:
    from tools.base import default_checkpoint_dir

    if args.family == "sam":
        from checkpoints.download import download_checkpoint

        path = download_checkpoint(args.model or "vit_b", args.dest or default_checkpoint_dir())
        print(f"SAM {args.model or 'vit_b'}: {path} (sha256 verified)")
    elif args.family == "sam3":
        from checkpoints.hub import download_sam3
        from checkpoints.registry import cached_sha256

        path = download_sam3(args.dest or default_checkpoint_dir(), token=args.token, revision=args.revision)
        print(f"SAM 3: {path} (sha256 {cached_sha256(path)}, verified against the hub)")
    else:
        from tools.clip_loading import prepare_clip

        where = prepare_clip(args.model or "ViT-B-16", args.pretrained)
        print(f"CLIP {args.model or 'ViT-B-16'} {args.pretrained}: {where}")
    return 0


def cmd_weights_list(args: argparse.Namespace) -> int:
    from checkpoints.registry import KNOWN_CHECKPOINTS
    from tools.base import default_checkpoint_dir

    dest = args.dest or default_checkpoint_dir()
    for key, ck in KNOWN_CHECKPOINTS.items():
        present = "present" if (dest / ck.filename).exists() else "missing"
        print(f"{key:8} {ck.filename:28} {present:8} {ck.url}")
    from checkpoints.hub import SAM3_FOLDER, SAM3_PAGE, SAM3_WEIGHTS

    sam3 = f"{SAM3_FOLDER}/{SAM3_WEIGHTS}"
    present = "present" if (dest / sam3).exists() else "missing"
    print(f"{'sam3':8} {sam3:28} {present:8} {SAM3_PAGE} (gated)")
    return 0
