"""``refseg weights download|list``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.cli.help import show_default
from bench.options import ModelOptions


def add_parser(sub: Any) -> None:
    p = sub.add_parser("weights", help="download or list model weights (SAM checkpoints, CLIP)")
    wsub = p.add_subparsers(dest="weights_action", required=True)
    d = wsub.add_parser("download", help="fetch official weights with sha256 verification")
    d.add_argument("family", choices=["sam", "clip", "sam3"], help="which model's weights")
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
    ls = wsub.add_parser(
        "list",
        help="the SAM (and SAM 3) checkpoints and the CLIP weights the models use, and whether they are here",
        description="Each SAM checkpoint of the registry and SAM 3's (file, present or missing, where "
        "it comes from) and the CLIP weights of --clip-model/--clip-pretrained (where open_clip fetches "
        "them, and the cached file). No network.",
    )
    ls.add_argument(
        "--dest",
        type=Path,
        default=None,
        help="SAM weights folder (default: $REFSEG_CHECKPOINT_DIR or ./checkpoints)",
    )
    clip = ls.add_argument("--clip-model", default=None, help="the open_clip model to look up")
    tag = ls.add_argument("--clip-pretrained", default=None, help="its pretrained tag")
    show_default(clip, ModelOptions, "clip_model")
    show_default(tag, ModelOptions, "clip_pretrained")
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
    from tools.clip_loading import clip_weights

    dest = args.dest or default_checkpoint_dir()
    for key, ck in KNOWN_CHECKPOINTS.items():
        present = "present" if (dest / ck.filename).exists() else "missing"
        print(f"{key:10} {ck.filename:28} {present:8} {ck.url}")
    from checkpoints.hub import SAM3_FOLDER, SAM3_PAGE, SAM3_WEIGHTS

    sam3 = f"{SAM3_FOLDER}/{SAM3_WEIGHTS}"
    present = "present" if (dest / sam3).exists() else "missing"
    print(f"{'sam3':10} {sam3:28} {present:8} {SAM3_PAGE} (gated)")
    print(f"(SAM files in {dest}; `refseg weights download sam --model vit_b` fetches one)")
    model = args.clip_model or ModelOptions.clip_model
    tag = args.clip_pretrained or ModelOptions.clip_pretrained
    source, cached = clip_weights(model, tag)
    name = f"clip {model}/{tag}"
    print(f"{name:39} {'present' if cached else 'missing':8} {source}")
    print(
        f"(CLIP weights in open_clip's cache: {cached})"
        if cached
        else f"(`refseg weights download clip --model {model} --pretrained {tag}` fetches them into "
        "open_clip's cache)"
    )
    return 0
