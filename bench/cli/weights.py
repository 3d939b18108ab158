"""``refseg weights download|list``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("weights", help="download or list model weights")
    wsub = p.add_subparsers(dest="weights_action", required=True)
    d = wsub.add_parser("download", help="fetch official weights with sha256 verification")
    d.add_argument("family", choices=["sam", "clip"], help="which model's weights")
    d.add_argument("--model", default=None, help="sam: vit_b|vit_l|vit_h (default vit_b); clip: ViT-B-16")
    d.add_argument("--pretrained", default="openai", help="clip: open_clip pretrained tag")
    d.add_argument("--dest", type=Path, default=None, help="sam: folder (default ./checkpoints)")
    d.set_defaults(func=cmd_weights_download)
    ls = wsub.add_parser("list", help="known checkpoints and whether they are present")
    ls.add_argument(
        "--dest",
        type=Path,
        default=None,
        help="SAM weights folder (default: $REFSEG_CHECKPOINT_DIR or ./checkpoints)",
    )
    ls.set_defaults(func=cmd_weights_list)


def cmd_weights_download(args: argparse.Namespace) -> int:
    from tools.base import default_checkpoint_dir

    if args.family == "sam":
        from checkpoints.download import download_checkpoint

        path = download_checkpoint(args.model or "vit_b", args.dest or default_checkpoint_dir())
        print(f"SAM {args.model or 'vit_b'}: {path} (sha256 verified)")
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
    return 0
