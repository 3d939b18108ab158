"""SAM 3's tokenizer, built offline from the CLIP BPE vocabulary that open_clip ships.

SAM 3's text encoder is a CLIP text transformer with CLIP's byte-level BPE vocabulary
(49,408 tokens: 256 bytes, the same 256 with the end-of-word mark, 48,894 merges, then
``<|startoftext|>`` and ``<|endoftext|>``), and ``Sam3Processor`` pads every prompt to 32
tokens. open_clip carries that vocabulary as ``bpe_simple_vocab_16e6.txt.gz`` in its own
package, so the tokenizer is a ``transformers.CLIPTokenizer`` built from that file: nothing
is downloaded, and a machine that has never seen the hub tokenizes exactly as
``Sam3Processor.from_pretrained("facebook/sam3")`` would.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path
from typing import TYPE_CHECKING

from tools.errors import ConfigError

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

CONTEXT_LENGTH = 32  # Sam3Processor: padding="max_length", max_length=32
VOCAB_SIZE = 49408
BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
_MERGES = VOCAB_SIZE - 2 * 256 - 2  # the file holds more merges than CLIP uses


def bpe_vocabulary_path() -> Path:
    """open_clip's copy of the CLIP BPE merges.

    Raises:
        ConfigError: open_clip is installed without it.
    """
    import open_clip

    path = Path(open_clip.__file__).parent / BPE_FILE
    if not path.is_file():
        raise ConfigError(f"open_clip has no {BPE_FILE} at {path}; reinstall open-clip-torch")
    return path


def clip_vocabulary(path: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's token ids and BPE merges from the merges file (as open_clip's tokenizer reads it)."""
    from open_clip.tokenizer import bytes_to_unicode

    with gzip.open(path) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = [(a, b) for a, b in (line.split() for line in lines[1 : _MERGES + 1])]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    if len(tokens) != VOCAB_SIZE:
        raise ConfigError(f"{path} gives a vocabulary of {len(tokens)} tokens, expected {VOCAB_SIZE}")
    return {token: i for i, token in enumerate(tokens)}, merges


@functools.lru_cache(maxsize=1)
def sam3_tokenizer() -> CLIPTokenizer:
    """The tokenizer SAM 3 uses, built from local files only (one per process)."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocabulary(bpe_vocabulary_path())
    # The BPE model takes merges as pairs (CLIPTokenizer's annotation says strings).
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CONTEXT_LENGTH)  # type: ignore[arg-type]
